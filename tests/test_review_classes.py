"""Review and set pages by class: the class filter (kept in the URL and in the links), counts per
class, "all boxes of this class in this image are good" with one undo, on a real store of the demo
photos with object boxes of two classes."""

import re

import pytest

from app.db import immediate
from app.review import queries
from app.sets.class_pages import class_page, class_page_sql
from app.sets.queries import get_set_with_model
from tests.objects_seed import HEAD, PERSON, seed_objects
from tests.review_data import user_ids

HX = {"HX-Request": "true", "HX-Target": "review-item"}


@pytest.fixture
def objects(app, db):
    return seed_objects(db)


def shown_id(html: str) -> int | None:
    m = re.search(r'id="review-item"[^>]*data-annotation-id="(\d+)"', html)
    return int(m.group(1)) if m else None


def label_of(db, ann_id: int) -> str:
    return db.execute("SELECT label FROM annotations WHERE id = ?", [ann_id]).fetchone()[0]


def test_queue_filtered_by_class_offers_only_that_class(reviewer_client, objects, db):
    set_id = objects["set_id"]
    page = reviewer_client.get(f"/review/{set_id}?label={PERSON}").get_data(as_text=True)
    # Unfiltered, the lowest score comes first: a Person box (scores 0.6-) before heads (0.9-).
    first = shown_id(page)
    assert label_of(db, first) == PERSON
    page = reviewer_client.get(f"/review/{set_id}?label={HEAD}").get_data(as_text=True)
    seen = []
    html = page
    n_heads = sum(1 for b in objects["boxes"] if b["label"] == HEAD)
    for _ in range(n_heads):
        ann = shown_id(html)
        seen.append(ann)
        cursor = re.search(r'name="cursor" value="([^"]+)"', html).group(1)
        html = reviewer_client.post(
            f"/review/{set_id}/rate",
            data={"annotation_id": ann, "cursor": cursor, "value": "good", "label": HEAD},
            headers=HX,
        ).get_data(as_text=True)
    assert {label_of(db, a) for a in seen} == {HEAD}
    assert len(set(seen)) == n_heads
    # Every head is rated: the filtered queue is empty although Person boxes are left.
    assert shown_id(html) is None
    # The empty queue names the class filter (and offers to clear it).
    assert "The queue shows only: <strong>class Human head</strong>" in html
    assert (
        db.execute(
            "SELECT count(*) FROM annotations WHERE set_id = ? AND label = ? AND rating IS NULL",
            [set_id, PERSON],
        ).fetchone()[0]
        == n_heads
    )


def test_class_filter_shows_names_and_counts_and_stays_in_links(reviewer_client, objects, db):
    set_id = objects["set_id"]
    n = sum(1 for b in objects["boxes"] if b["label"] == HEAD)
    page = reviewer_client.get(f"/review/{set_id}?label={HEAD}").get_data(as_text=True)
    assert f'<option value="{HEAD}" selected>Human head ({n} unrated of {n})</option>' in page
    assert f'<option value="{PERSON}" >Person ({n} unrated of {n})</option>' in page
    assert '<dd class="class-name">Human head</dd>' in page
    enc = "label=%2Fm%2F04hgtk"
    # skip, the editor's link and its way back (next=) all keep the class.
    skip = re.search(r'hx-get="([^"]*cursor=[^"]*)"', page).group(1)
    assert enc in skip
    edit = re.search(r'data-edit-url="([^"]+)"', page).group(1)
    assert "label%3D%252Fm%252F04hgtk" in edit
    assert f'name="label" value="{HEAD}"' in page


def test_bad_class_is_refused_by_name(reviewer_client, objects):
    r = reviewer_client.get(f"/review/{objects['set_id']}?label=Person")
    assert r.status_code == 400
    assert "/m/0k4j" in r.get_data(as_text=True) and "Person" in r.get_data(as_text=True)


def test_all_boxes_of_this_class_are_good_and_one_undo_takes_them_back(reviewer_client, objects, db):
    set_id = objects["set_id"]
    # The photo with the most faces: several heads and persons on one image.
    by_image: dict[str, list] = {}
    for b in objects["boxes"]:
        by_image.setdefault(b["image_id"], []).append(b)
    image_id, boxes = max(by_image.items(), key=lambda kv: len(kv[1]))
    heads = [b["id"] for b in boxes if b["label"] == HEAD]
    persons = [b["id"] for b in boxes if b["label"] == PERSON]
    assert len(heads) >= 3
    page = reviewer_client.get(f"/review/{set_id}?item={heads[0]}").get_data(as_text=True)
    assert 'data-key="c"' in page and "All Human head boxes here good" in page

    def ratings(ids):
        marks = ",".join("?" * len(ids))
        return [
            r[0] for r in db.execute(f"SELECT rating FROM annotations WHERE id IN ({marks}) ORDER BY id", ids)
        ]

    form = {"annotation_id": heads[0], "cursor": f"0:{heads[0]}"}
    # More than the box on screen: it asks first and rates nothing.
    html = reviewer_client.post(f"/review/{set_id}/class-good", data=form, headers=HX).get_data(as_text=True)
    assert f"press c again to rate all {len(heads)} good" in html
    assert f"Yes, all {len(heads)} Human head boxes good" in html
    assert shown_id(html) == heads[0]
    assert ratings(heads) == [None] * len(heads)
    form["confirm"] = str(len(heads))
    html = reviewer_client.post(f"/review/{set_id}/class-good", data=form, headers=HX).get_data(as_text=True)
    assert f"Rated {len(heads)} Human head boxes on image {image_id} good" in html
    assert ratings(heads) == ["good"] * len(heads)
    assert ratings(persons) == [None] * len(persons)
    # One action, one undo.
    reviewer_client.post(f"/review/{set_id}/undo", data={"annotation_id": shown_id(html) or ""}, headers=HX)
    assert ratings(heads) == [None] * len(heads)


def test_class_good_skips_boxes_claimed_by_another_reviewer(app, objects, db):
    ids = user_ids(db)
    set_id = objects["set_id"]
    boxes = [b for b in objects["boxes"] if b["label"] == HEAD]
    image_id = boxes[0]["image_id"]
    same = [b["id"] for b in boxes if b["image_id"] == image_id]
    got = queries.image_ids_to_rate(db, set_id, image_id, ids["rev"], "model", label=HEAD)
    assert got == same
    queries.claim_item(db, same[-1], ids["admin"], 300)
    got = queries.image_ids_to_rate(db, set_id, image_id, ids["rev"], "model", label=HEAD)
    assert got == same[:-1]


def test_set_page_by_class(reviewer_client, objects, db):
    set_id = objects["set_id"]
    n = sum(1 for b in objects["boxes"] if b["label"] == PERSON)
    page = reviewer_client.get(f"/sets/{set_id}?label={PERSON}").get_data(as_text=True)
    ids = [int(i) for i in re.findall(r'data-annotation-id="(\d+)"', page)]
    assert len(ids) == n and {label_of(db, i) for i in ids} == {PERSON}
    assert f"?item={ids[0]}&amp;label=%2Fm%2F01g317" in page
    assert f"Person: {n} (0 good, 0 bad, {n} unrated)" in page
    all_page = reviewer_client.get(f"/sets/{set_id}").get_data(as_text=True)
    assert len(re.findall(r'data-annotation-id="(\d+)"', all_page)) == 2 * n


def test_class_pages_walk_by_key_and_number(objects, db):
    set_id = objects["set_id"]
    want = [
        r[0]
        for r in db.execute(
            "SELECT id FROM annotations WHERE set_id = ? AND label = ? ORDER BY image_id, id",
            [set_id, PERSON],
        )
    ]
    p1 = class_page(db, set_id, PERSON, 1, per_page=5)
    p2 = class_page(db, set_id, PERSON, 2, per_page=5)
    assert [a["id"] for a in p1 + p2] == want[:10]
    nxt = class_page(db, set_id, PERSON, 2, per_page=5, after=(p1[-1]["image_id"], p1[-1]["id"]))
    assert [a["id"] for a in nxt] == [a["id"] for a in p2]
    prev = class_page(db, set_id, PERSON, 1, per_page=5, before=(p2[0]["image_id"], p2[0]["id"]))
    assert [a["id"] for a in prev] == [a["id"] for a in p1]


def test_class_queries_use_the_class_indexes(objects, db):
    # A rare class must not walk the whole set: the plans name m019's partial indexes.
    plan = " ".join(
        str(r[3]) for r in db.execute("EXPLAIN QUERY PLAN " + class_page_sql(), [1, PERSON, 60, 0]).fetchall()
    )
    assert "annotations_page_class" in plan
    seen = []
    db.conn.set_trace_callback(seen.append)
    try:
        s = get_set_with_model(db, objects["set_id"])
        queries.claim_next(db, s, 1, queries.Filters(label=PERSON), None, 300)
    finally:
        db.conn.set_trace_callback(None)
    queue_sql = [q for q in seen if q.startswith("SELECT a.id FROM annotations a")]
    assert queue_sql
    with immediate(db):
        pass
    for q in queue_sql:
        plan = " ".join(str(r[3]) for r in db.execute("EXPLAIN QUERY PLAN " + q).fetchall())
        assert "annotations_queue_class" in plan, plan


def test_a_class_filter_on_a_face_set_page_is_refused_by_name(reviewer_client, db):
    from app.sets.queries import create_set

    with immediate(db):
        faces = create_set(db, "faces", "face_box", "human")
    r = reviewer_client.get(f"/sets/{faces}?label={PERSON}")
    assert r.status_code == 400 and "holds face_box" in r.get_data(as_text=True)
