"""What keeps the pages fast at Open Images size, checked without timing anything: set pages walk a
covering index from the nearer end and tile the set exactly; the dashboard reads the kept counters;
bench_scale's store builder and the benchmark scripts run."""

import random
import subprocess
import sys

import pytest

from app.db import now
from app.paths import REPO_ROOT
from app.sets.pages import AFTER_KEY, page_sql, set_page
from app.sets.queries import create_set, list_sets


@pytest.fixture
def big_set(db):
    """A set of 53 annotations on 20 images (ids in random order), 3 deleted."""
    rng = random.Random(5)
    images = [f"{rng.getrandbits(64):016x}" for _ in range(20)]
    db.conn.executemany(
        "INSERT INTO images (id, split, width, height, created_at) VALUES (?, 'train', 640, 480, ?)",
        [(i, now()) for i in images],
    )
    set_id = create_set(db, "many", "face_box", "model")
    db.conn.executemany(
        "INSERT INTO annotations (set_id, image_id, kind, x0, y0, x1, y1, created_at, deleted)"
        " VALUES (?, ?, 'face_box', 0.1, 0.1, 0.2, 0.2, ?, ?)",
        [(set_id, rng.choice(images), now(), int(k in (3, 17, 40))) for k in range(56)],
    )
    db.conn.commit()
    return set_id


def test_set_pages_tile_the_set_in_order_from_either_end(db, big_set):
    expected = [
        r[0]
        for r in db.execute(
            "SELECT id FROM annotations WHERE set_id = ? AND deleted = 0 ORDER BY image_id, id", [big_set]
        )
    ]
    assert len(expected) == 53
    for per_page in (1, 4, 7, 60):
        pages = -(-53 // per_page)
        got = [a["id"] for p in range(1, pages + 1) for a in set_page(db, big_set, p, per_page)]
        assert got == expected, per_page
        assert set_page(db, big_set, pages + 1, per_page) == []


def test_set_pages_by_key_forward_and_back(db, big_set):
    pages, after = [], None
    while rows := set_page(db, big_set, 1, 6, after=after):
        pages.append([a["id"] for a in rows])
        after = (rows[-1]["image_id"], rows[-1]["id"])
    assert [i for p in pages for i in p] == [
        a["id"] for p in range(1, 10) for a in set_page(db, big_set, p, 6)
    ]
    first = set_page(db, big_set, 1, 6, after=None)
    back = set_page(db, big_set, 1, 6, before=(first[0]["image_id"], first[0]["id"]))
    assert back == []
    last = pages[-1]
    prev = set_page(db, big_set, 1, 6, before=(set_page(db, big_set, 9, 6)[0]["image_id"], last[0]))
    assert [a["id"] for a in prev] == pages[-2]


def test_set_page_links_carry_keys(admin_client, db, big_set):
    from app.sets import views

    views.PER_PAGE, old = 6, views.PER_PAGE
    try:
        html = admin_client.get(f"/sets/{big_set}").get_data(as_text=True)
        assert "page 1 of 9" in html
        import re

        nxt = re.search(r'href="([^"]*after=[^"]*)"', html).group(1).replace("&amp;", "&")
        html2 = admin_client.get(nxt).get_data(as_text=True)
        assert "page 2 of 9" in html2
        assert html2.count('<li class="thumb') == 6
        assert admin_client.get(f"/sets/{big_set}?after=nonsense").status_code == 400
    finally:
        views.PER_PAGE = old


def test_set_page_and_dashboard_queries_use_indexes(db, big_set):
    plan = " ".join(
        r[3]
        for r in db.execute(
            "EXPLAIN QUERY PLAN " + page_sql("", "DESC"),
            [big_set, 60, 1000],
        )
    )
    assert "COVERING INDEX annotations_set_page" in plan and "TEMP B-TREE" not in plan
    plan = " ".join(
        r[3]
        for r in db.execute(
            "EXPLAIN QUERY PLAN " + page_sql(AFTER_KEY, "ASC"),
            [big_set, "8", 5, 60, 0],
        )
    )
    # A seek to the key (image_id > ?), not a walk from the start of the set.
    assert "COVERING INDEX annotations_set_page" in plan and "image_id>?" in plan
    # The dashboard's counts are the trigger-kept counters, not a count over annotations.
    row = next(s for s in list_sets(db) if s["id"] == big_set)
    assert (row["total"], row["good"], row["bad"], row["unrated"]) == (53, 0, 0, 53)


@pytest.mark.parametrize("script", ["bench_scale.py", "bench_cluster.py"])
def test_bench_scripts_have_help(script):
    r = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / script), "--help"], capture_output=True, text=True
    )
    assert r.returncode == 0 and "usage" in r.stdout


def test_bench_scale_store_is_consistent(tmp_path):
    """The generated store satisfies the schema: counters match, parents exist, ids are 16 hex."""
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    try:
        import bench_scale
    finally:
        sys.path.remove(str(REPO_ROOT / "scripts"))
    db_file = tmp_path / "s" / "oiap.sqlite3"
    bench_scale.build_store(db_file, 300, 800)
    import sqlite3

    c = sqlite3.connect(db_file)
    try:
        for set_id, n, g, b in c.execute("SELECT id, n_total, n_good, n_bad FROM annotation_sets"):
            assert (n, g, b) == c.execute(
                "SELECT count(*), coalesce(sum(rating IS 'good'), 0), coalesce(sum(rating IS 'bad'), 0)"
                " FROM annotations WHERE set_id = ? AND deleted = 0",
                [set_id],
            ).fetchone()
        assert c.execute("SELECT count(*) FROM annotations").fetchone()[0] == 800
        assert c.execute("SELECT count(*) FROM images WHERE length(id) != 16").fetchone()[0] == 0
        assert (
            c.execute(
                "SELECT count(*) FROM annotations p LEFT JOIN annotations b ON b.id = p.parent_id"
                " WHERE p.kind = 'face_landmarks68' AND (b.id IS NULL OR b.kind != 'face_box'"
                " OR b.image_id != p.image_id)"
            ).fetchone()[0]
            == 0
        )
        assert c.execute("PRAGMA foreign_key_check").fetchall() == []
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        c.close()
