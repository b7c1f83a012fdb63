"""Corrections in place, through HTTP on a real store (the demo photos and dlib's 68 points): after a
save in the editor, the machine set's review and set page show the corrected face, marked "corrected
by NAME", the counters count it, and the editor's back link returns to the item. A human set's queue
tells its author what they may and may not rate."""

import html
import json
import re
from urllib.parse import parse_qs, urlparse

import pytest

from app.db import connect
from tests.conftest import login
from tests.review_data import seed, user_ids
from tests.svg_paths import drawn_points


@pytest.fixture
def store(app):
    db = connect(app.config["DATABASE"])
    sets = seed(db, user_ids(db))
    db.close()
    return sets


def _client(app, username):
    c = app.test_client()
    assert login(c, username).status_code == 302
    return c


def _item_id(page: str) -> int:
    return int(re.search(r'data-annotation-id="(\d+)"', page).group(1))


def _row(app, ann_id):
    db = connect(app.config["DATABASE"])
    try:
        return next(iter(db.query("SELECT * FROM annotations WHERE id = ?", [ann_id])))
    finally:
        db.close()


def _correct(client, ann, dx=0.02):
    """Save a correction of machine annotation `ann` as the editor does: point 30 moved right."""
    points = json.loads(ann["points"])
    points[30] = [points[30][0] + dx, points[30][1], 1]
    body = {
        "image_id": ann["image_id"],
        "kind": ann["kind"],
        "faces": [
            {
                "key": f"m{ann['id']}",
                "origin_id": ann["id"],
                "box": [ann["x0"], ann["y0"], ann["x1"], ann["y1"]],
                "points": points,
            }
        ],
    }
    r = client.post("/edit/save", json=body)
    assert r.status_code == 200, r.get_data(as_text=True)
    return points


def test_a_correction_is_shown_in_place_in_review_and_on_the_set_page(app, store):
    rev = _client(app, "rev")
    set_id = store["landmarks68"]
    first = rev.get(f"/review/{set_id}").get_data(as_text=True)
    ann_id = _item_id(first)
    # The edit link carries the way back to this very item.
    edit = html.unescape(re.search(r'data-edit-url="([^"]+)"', first).group(1))
    assert edit.startswith(f"/edit/annotation/{ann_id}?next=")
    back = parse_qs(urlparse(edit).query)["next"][0]
    assert back.startswith(f"/review/{set_id}?") and f"item={ann_id}" in back
    editor = rev.get(edit).get_data(as_text=True)
    assert 'id="ed-back"' in editor and html.escape(back) in editor

    ann = _row(app, ann_id)
    db = connect(app.config["DATABASE"])
    size = db.execute("SELECT width, height FROM images WHERE id = ?", [ann["image_id"]]).fetchone()
    db.close()
    before = drawn_points(first)
    moved = _correct(rev, ann)

    # Back from the editor: the same item, drawn with the corrected points and marked.
    page = rev.get(back).get_data(as_text=True)
    assert _item_id(page) == ann_id
    assert "corrected by rev" in page and "1 corrected" in page
    assert "bad by rev" in page  # the machine row is rated bad by the correction, as before
    after = drawn_points(page)
    assert len(after) == len(before) == 68
    w, h = size
    assert after[30] == pytest.approx((moved[30][0] * w, moved[30][1] * h), abs=0.06)
    assert after[30] != pytest.approx(before[30], abs=0.5)
    assert after[:30] == before[:30]
    assert 'class="ann current bad corrected"' in page

    # The set page: the thumbnail is marked and drawn corrected; the header counts it.
    set_page = rev.get(f"/sets/{set_id}").get_data(as_text=True)
    assert "1 corrected" in set_page
    cell = re.search(
        rf'<li class="thumb bad corrected" data-annotation-id="{ann_id}">(.*?)</li>', set_page, re.S
    )
    assert cell, "the corrected thumbnail is not marked"
    assert "bad · corrected by rev" in cell.group(1)
    assert drawn_points(cell.group(1))[30] == pytest.approx((moved[30][0] * w, moved[30][1] * h), abs=0.06)

    # Another reviewer sees the same, by name; the queue of unrated items has moved past it.
    admin = _client(app, "admin")
    shown = admin.get(f"/review/{set_id}?item={ann_id}").get_data(as_text=True)
    assert "corrected by rev" in shown
    assert _item_id(admin.get(f"/review/{set_id}").get_data(as_text=True)) != ann_id

    # Deleting the face in the editor: "removed by", the model's drawing shown.
    r = admin.post(
        "/edit/save",
        json={
            "image_id": ann["image_id"],
            "kind": ann["kind"],
            "faces": [{"id": _correction_id(app, ann_id), "version": 1, "deleted": True}],
        },
    )
    assert r.status_code == 200, r.get_data(as_text=True)
    shown = admin.get(f"/review/{set_id}?item={ann_id}").get_data(as_text=True)
    assert "removed by rev" in shown and drawn_points(shown) == before and "1 corrected" in shown


def _correction_id(app, ann_id):
    db = connect(app.config["DATABASE"])
    try:
        return db.execute("SELECT id FROM annotations WHERE origin_id = ?", [ann_id]).fetchone()[0]
    finally:
        db.close()


def test_the_corrected_counter_follows_the_rows(app, store):
    db = connect(app.config["DATABASE"])
    set_id = store["landmarks68"]
    ids = [
        r[0] for r in db.execute("SELECT id FROM annotations WHERE set_id = ? ORDER BY id LIMIT 2", [set_id])
    ]
    db.close()
    rev = _client(app, "rev")
    for ann_id in ids:
        _correct(rev, _row(app, ann_id))
    db = connect(app.config["DATABASE"])
    try:
        count = lambda: db.execute(  # noqa: E731
            "SELECT n_corrected FROM annotation_sets WHERE id = ?", [set_id]
        ).fetchone()[0]
        assert count() == 2
        # A second human row for the same origin (a fetched set's copy) does not count twice.
        human = db.execute("SELECT id FROM annotations WHERE origin_id = ?", [ids[0]]).fetchone()[0]
        db.execute(
            "INSERT INTO annotations (set_id, image_id, kind, x0, y0, x1, y1, points, origin_id, created_at)"
            " SELECT set_id, image_id, kind, x0, y0, x1, y1, points, origin_id, created_at FROM annotations"
            " WHERE id = ?",
            [human],
        )
        db.conn.commit()
        assert count() == 2
        db.execute("DELETE FROM annotations WHERE origin_id = ?", [ids[0]])
        db.conn.commit()
        assert count() == 1
        # The counter equals what the rows say (as the migration computes it for an existing store).
        assert (
            count()
            == db.execute(
                "SELECT count(DISTINCT h.origin_id) FROM annotations h JOIN annotations m ON m.id = h.origin_id"
                " WHERE m.set_id = ?",
                [set_id],
            ).fetchone()[0]
        )
    finally:
        db.close()


def test_a_human_sets_queue_tells_its_author_what_they_may_rate(app, store):
    set_id = store["human"]
    admin, rev = _client(app, "admin"), _client(app, "rev")
    # admin made 6 of its 10 annotations, rev 4: each is offered the other's.
    page = admin.get(f"/review/{set_id}").get_data(as_text=True)
    assert "(6 yours: another reviewer rates them)" in page
    for _ in range(4):
        ann_id = _item_id(page)
        assert _row(app, ann_id)["created_by"] == _user(app, "rev")
        page = admin.post(
            f"/review/{set_id}/rate",
            data={"annotation_id": ann_id, "value": "good"},
            headers={"HX-Request": "true", "HX-Target": "review-item"},
        ).get_data(as_text=True)
    assert "data-annotation-id" not in page
    assert "Nothing left for you to review here" in page
    assert "6 unrated annotations here are yours: another reviewer rates them" in page
    assert "claimed by another reviewer" not in page and "6 unrated of 10" in page
    # While rev has one of admin's on screen, admin is told so.
    held = _item_id(rev.get(f"/review/{set_id}").get_data(as_text=True))
    assert _row(app, held)["created_by"] == _user(app, "admin")
    page = admin.get(f"/review/{set_id}").get_data(as_text=True)
    assert "1 are on another reviewer's screen right now" in page
    # rev is offered admin's six, and is told none of them are theirs.
    assert "yours" not in rev.get(f"/review/{set_id}?item={held}").get_data(as_text=True)


def _user(app, name):
    db = connect(app.config["DATABASE"])
    try:
        return db.execute("SELECT id FROM users WHERE username = ?", [name]).fetchone()[0]
    finally:
        db.close()
