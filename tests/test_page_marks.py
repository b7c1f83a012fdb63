"""Set pages opened by number through marks (app/sets/page_marks.py): with a small mark spacing,
every page equals the plain OFFSET page after inserts, deletes, deleted flips, moves between sets and
bulk imports; ratings keep the marks; stale marks are never used."""

import random

import pytest

from app.annotations.rows import annotation_row, insert_annotation, insert_counted_by_batch, rate
from app.db import immediate, now
from app.imports import openimages
from app.sets import page_marks
from app.sets.pages import FROM_KEY, page_sql, set_page
from app.sets.queries import create_set
from tests.openimages_csv import FACE, PERSON
from tests.test_import_counters import _meta

EVERY = 24  # marks every 24 rows: a 3 000-row set has 125 of them
PER_PAGE = 7


@pytest.fixture(autouse=True)
def rebuild_at_once(monkeypatch):
    """Stale marks are rebuilt on the next jump (the throttle has its own test)."""
    monkeypatch.setattr(page_marks, "REBUILD_AFTER_S", 0)


def _insert(db, set_id: int, images: list[str], n: int, rng: random.Random) -> None:
    db.conn.executemany(
        "INSERT INTO annotations (set_id, image_id, kind, x0, y0, x1, y1, created_at, deleted)"
        " VALUES (?, ?, 'face_box', 0.1, 0.1, 0.2, 0.2, ?, ?)",
        [(set_id, rng.choice(images), now(), int(rng.random() < 0.05)) for _ in range(n)],
    )
    db.conn.commit()


@pytest.fixture
def sets(db):
    """Two sets on 400 images: 'a' with ~3 000 live rows, 'b' with ~76 (too few for marks); returns (a, b, images, rng)."""
    rng = random.Random(11)
    images = [f"{rng.getrandbits(64):016x}" for _ in range(400)]
    db.conn.executemany(
        "INSERT INTO images (id, split, width, height, created_at) VALUES (?, 'train', 640, 480, ?)",
        [(i, now()) for i in images],
    )
    a = create_set(db, "marked", "face_box", "model")
    b = create_set(db, "other", "face_box", "model")
    _insert(db, a, images, 3150, rng)
    _insert(db, b, images, 80, rng)
    return a, b, images, rng


def _plain(db, set_id: int) -> list[int]:
    return [
        r[0]
        for r in db.execute(
            "SELECT id FROM annotations WHERE set_id = ? AND deleted = 0 ORDER BY image_id, id", [set_id]
        )
    ]


def _version(db, set_id: int) -> int:
    return db.execute("SELECT layout_version FROM annotation_sets WHERE id = ?", [set_id]).fetchone()[0]


def _marks_version(db, set_id: int) -> int | None:
    row = db.execute(
        "SELECT max(version) FROM set_page_marks WHERE set_id = ? AND every = ?", [set_id, EVERY]
    ).fetchone()
    return row[0]


def _assert_exact(db, set_id: int, pages: list[int] | None = None) -> None:
    """The given pages (default: all, and one past the end) equal the plain ORDER BY ... OFFSET pages."""
    expected = _plain(db, set_id)
    n_pages = -(-len(expected) // PER_PAGE)
    for p in pages or range(1, n_pages + 2):
        got = [a["id"] for a in set_page(db, set_id, p, PER_PAGE, mark_every=EVERY)]
        assert got == expected[(p - 1) * PER_PAGE : p * PER_PAGE], f"set {set_id} page {p}"


def test_every_page_by_number_equals_the_plain_offset_page(db, sets):
    a, b, _, _ = sets
    assert _marks_version(db, a) is None
    _assert_exact(db, a)
    # The first jump stored the marks at the set's version; the small set got none.
    assert _marks_version(db, a) == _version(db, a)
    n_live = len(_plain(db, a))
    assert db.execute("SELECT count(*) FROM set_page_marks WHERE set_id = ?", [a]).fetchone()[0] == -(
        -n_live // EVERY
    )
    _assert_exact(db, b)
    assert _marks_version(db, b) is None
    # Pages of other sizes from the same marks.
    for per_page in (1, 60, 500):
        expected = _plain(db, a)
        for p in (1, 2, 13, -(-n_live // per_page)):
            got = [x["id"] for x in set_page(db, a, p, per_page, mark_every=EVERY)]
            assert got == expected[(p - 1) * per_page : p * per_page]


def test_pages_stay_exact_after_every_kind_of_change(db, sets):
    a, b, images, rng = sets
    _assert_exact(db, a)
    changes = [
        # An insert with the single-row path, early in page order.
        lambda: insert_annotation(
            db,
            annotation_row(set_id=a, image_id=min(images), kind="face_box", box=(0.1, 0.1, 0.3, 0.3)),
        ),
        lambda: db.execute("DELETE FROM annotations WHERE id = ?", [_plain(db, a)[5]]),
        lambda: db.execute("UPDATE annotations SET deleted = 1 WHERE id = ?", [_plain(db, a)[40]]),
        lambda: db.execute(
            "UPDATE annotations SET deleted = 0 WHERE id = (SELECT min(id) FROM annotations"
            " WHERE set_id = ? AND deleted = 1)",
            [a],
        ),
        lambda: db.execute("UPDATE annotations SET set_id = ? WHERE id = ?", [b, _plain(db, a)[2]]),
        lambda: db.execute("UPDATE annotations SET set_id = ? WHERE id = ?", [a, _plain(db, b)[0]]),
        lambda: db.execute(
            "UPDATE annotations SET image_id = ? WHERE id = ?", [max(images), _plain(db, a)[1]]
        ),
    ]
    for change in changes:
        before = _version(db, a)
        change()
        db.conn.commit()
        assert _version(db, a) > before
        _assert_exact(db, a)
        assert _marks_version(db, a) == _version(db, a)
        _assert_exact(db, b)


def test_the_bulk_insert_path_bumps_the_version(db, sets):
    a, b, images, rng = sets
    _assert_exact(db, a)
    before = _version(db, a), _version(db, b)
    sql = (
        "INSERT INTO annotations (set_id, image_id, kind, x0, y0, x1, y1, created_at)"
        " VALUES (?, ?, 'face_box', 0.1, 0.1, 0.2, 0.2, ?)"
    )
    with immediate(db):
        n = insert_counted_by_batch(db, sql, {a: [(a, rng.choice(images), now()) for _ in range(50)], b: []})
    assert n == 50
    assert _version(db, a) > before[0] and _version(db, b) == before[1]  # nothing added to b
    _assert_exact(db, a)


def test_import_openimages_pages_stay_exact(db, tmp_path, monkeypatch):
    monkeypatch.setattr(openimages, "BATCH", 97)
    openimages.import_openimages(
        db, _meta(tmp_path / "one", 300, 4), splits=["train"], classes=f"{FACE},{PERSON}"
    )
    sets_ = [r[0] for r in db.execute("SELECT id FROM annotation_sets ORDER BY n_total DESC")]
    assert len(_plain(db, sets_[0])) >= EVERY * page_marks.MIN_MARKS
    versions = {s: _version(db, s) for s in sets_}
    for s in sets_:
        _assert_exact(db, s)
    openimages.import_openimages(
        db, _meta(tmp_path / "two", 300, 5, seed=8), splits=["train"], classes=f"{FACE},{PERSON}"
    )
    assert any(_version(db, s) > versions[s] for s in sets_)
    for s in sets_:
        _assert_exact(db, s)


def test_ratings_do_not_invalidate_the_marks(db, sets):
    a, _, _, _ = sets
    _assert_exact(db, a, [200])
    version = _version(db, a)
    admin = db.execute("SELECT id FROM users WHERE username = 'admin'").fetchone()[0]
    for ann in _plain(db, a)[:30]:
        rate(db, ann, admin, "good")
    assert _version(db, a) == version == _marks_version(db, a)


def test_stale_marks_are_never_used(db, sets):
    a, _, _, _ = sets
    _assert_exact(db, a, [300])
    version = _version(db, a)
    # Corrupt the stored marks (each points one row further): at the set's version they are used...
    db.execute(
        "UPDATE set_page_marks SET (image_id, annotation_id) = (SELECT a.image_id, a.id FROM annotations a"
        " WHERE a.set_id = ? AND a.deleted = 0 AND (a.image_id, a.id) > (set_page_marks.image_id,"
        " set_page_marks.annotation_id) ORDER BY a.image_id, a.id LIMIT 1) WHERE set_id = ?",
        [a, a],
    )
    db.conn.commit()
    with pytest.raises(AssertionError):
        _assert_exact(db, a, [300])
    # ... and once the set changes (a row added far after page 300) they are stale: never used again.
    db.execute("UPDATE annotations SET deleted = 1 WHERE id = ?", [_plain(db, a)[-1]])
    db.conn.commit()
    assert _version(db, a) > version
    _assert_exact(db, a)


def test_a_reused_set_id_does_not_inherit_marks(db, sets):
    a, _, _, _ = sets
    _assert_exact(db, a, [100])
    db.execute("DELETE FROM annotations WHERE set_id = ?", [a])
    db.execute("DELETE FROM annotation_sets WHERE id = ?", [a])
    db.conn.commit()
    assert db.execute("SELECT count(*) FROM set_page_marks WHERE set_id = ?", [a]).fetchone()[0] == 0


def test_marks_built_in_a_read_transaction_are_not_stored(db, sets):
    a, _, _, _ = sets
    db.conn.execute("BEGIN")
    _assert_exact(db, a, [50])
    db.conn.execute("COMMIT")
    assert _marks_version(db, a) is None


def test_mark_walk_and_jump_seek_the_covering_index(db, sets):
    for sql in (
        page_marks._HOP,
        page_sql(FROM_KEY, "ASC"),
    ):
        n = sql.count("?")
        plan = " ".join(r[3] for r in db.execute("EXPLAIN QUERY PLAN " + sql, [1, "a", 1, 1, 1][:n]))
        assert "COVERING INDEX annotations_set_page" in plan and "image_id>?" in plan, plan
        assert "TEMP B-TREE" not in plan


def test_concurrent_jumps_and_writes_leave_right_marks(app, db, sets):
    """Readers on their own connections jump while a writer adds rows: no errors, and the marks that
    stay stored at the set's version are exactly what a fresh walk builds."""
    import threading

    from app.db import connect

    a, _, images, rng = sets
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader(seed: int) -> None:
        conn = connect(app.config["DATABASE"])
        r = random.Random(seed)
        try:
            while not stop.is_set():
                page = r.randint(1, 400)
                rows = set_page(conn, a, page, PER_PAGE, mark_every=EVERY)
                assert len(rows) <= PER_PAGE
        except BaseException as e:  # reported by the main thread
            errors.append(e)
        finally:
            conn.close()

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    writer = connect(app.config["DATABASE"])
    for _ in range(15):
        with immediate(writer):
            writer.execute(
                "INSERT INTO annotations (set_id, image_id, kind, created_at) VALUES (?, ?, 'face_box', ?)",
                [a, rng.choice(images), now()],
            )
    writer.close()
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors
    _assert_exact(db, a, [1, 150, 300])
    stored = [
        (r[0], r[1])
        for r in db.execute(
            "SELECT image_id, annotation_id FROM set_page_marks WHERE set_id = ? AND every = ? ORDER BY mark",
            [a, EVERY],
        )
    ]
    assert _marks_version(db, a) == _version(db, a)
    assert stored == page_marks.build_marks(db, a, EVERY)


def test_stale_marks_younger_than_the_throttle_give_plain_pages(db, sets, monkeypatch):
    a, _, _, _ = sets
    _assert_exact(db, a, [100])
    version = _version(db, a)
    monkeypatch.setattr(page_marks, "REBUILD_AFTER_S", 3600)
    db.execute("DELETE FROM annotations WHERE id = ?", [_plain(db, a)[0]])
    db.conn.commit()
    # Every page is still exact (skipped from the nearer end), and the young marks are not rebuilt.
    _assert_exact(db, a)
    assert _marks_version(db, a) == version < _version(db, a)
    # Once they are old enough, the next jump rebuilds them.
    db.execute("UPDATE set_page_marks SET built_at = built_at - 3600 WHERE set_id = ?", [a])
    db.conn.commit()
    _assert_exact(db, a, [100])
    assert _marks_version(db, a) == _version(db, a)
