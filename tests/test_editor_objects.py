"""The editor for object boxes of any class: the page and its class list, new boxes with a class,
corrections that change the class (a human row with origin_id, the machine row rated bad), class
changes under the version rule (409 when stale), deletes, and strict bodies; a real store of the demo
photos with boxes of two classes."""

import json
import re

import pytest

from app.annotations.rows import get_annotation
from tests.objects_seed import CAR, HEAD, PERSON, seed_objects

KIND = "object_box"


@pytest.fixture
def objects(db):
    return seed_objects(db)


def post(client, body):
    return client.post("/edit/save", json=body)


def page_config(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="editor-config">(.*?)</script>', html, re.S)
    return json.loads(m.group(1))


def test_the_page_lists_the_classes_and_the_boxes_with_theirs(admin_client, objects):
    head = next(b for b in objects["boxes"] if b["label"] == HEAD)
    html = admin_client.get(f"/edit/annotation/{head['id']}").get_data(as_text=True)
    assert '<option value="Human head" data-label="/m/04hgtk">' in html
    assert '<option value="Car" data-label="/m/0k4j">' in html
    assert len(re.findall(r'<option value="[^"]*" data-label="', html)) == 601
    assert "Add box" in html and "Delete box" in html
    cfg = page_config(html)
    assert cfg["kind"] == KIND and cfg["default_label"] == HEAD
    on_image = [b for b in objects["boxes"] if b["image_id"] == head["image_id"]]
    assert sorted((f["origin_id"], f["label"]) for f in cfg["faces"]) == sorted(
        (b["id"], b["label"]) for b in on_image
    )
    assert cfg["focus_key"] == f"m{head['id']}"


def test_a_new_box_is_saved_with_its_class(admin_client, db, objects):
    image_id = objects["boxes"][0]["image_id"]
    body = {
        "image_id": image_id,
        "kind": KIND,
        "faces": [{"key": "new1", "box": [0.1, 0.2, 0.3, 0.5], "label": CAR}],
    }
    r = post(admin_client, body)
    assert r.status_code == 200, r.json
    assert r.json["message"] == "Saved 1 box"
    new = get_annotation(db, r.json["faces"][0]["id"])
    assert (new["label"], new["kind"], new["origin_id"], new["version"]) == (CAR, KIND, None, 1)
    s = db.execute("SELECT name, source, label FROM annotation_sets WHERE id = ?", [new["set_id"]]).fetchone()
    assert tuple(s) == ("human-object_box", "human", None)


@pytest.mark.parametrize(
    "face, needle",
    [
        ({"key": "n", "box": [0.1, 0.1, 0.2, 0.2]}, "label is missing"),
        ({"key": "n", "box": [0.1, 0.1, 0.2, 0.2], "label": "Car"}, "'Car'"),
        ({"key": "n", "box": [0.1, 0.1, 0.2, 0.2], "label": 7}, "class MID"),
    ],
)
def test_bad_classes_are_refused_by_name(admin_client, objects, face, needle):
    body = {"image_id": objects["boxes"][0]["image_id"], "kind": KIND, "faces": [face]}
    r = post(admin_client, body)
    assert r.status_code == 400 and needle in r.json["error"]


def test_a_face_has_no_class(admin_client, objects):
    body = {
        "image_id": objects["boxes"][0]["image_id"],
        "kind": "face_box",
        "faces": [{"key": "n", "box": [0.1, 0.1, 0.2, 0.2], "label": CAR}],
    }
    r = post(admin_client, body)
    assert r.status_code == 400 and "face_box has no class" in r.json["error"]


def test_changing_the_class_of_a_machine_box_is_a_correction(admin_client, db, objects):
    m = next(b for b in objects["boxes"] if b["label"] == PERSON)
    body = {
        "image_id": m["image_id"],
        "kind": KIND,
        "faces": [{"key": f"m{m['id']}", "origin_id": m["id"], "box": m["box"], "label": CAR}],
    }
    r = post(admin_client, body)
    assert r.status_code == 200, r.json
    h = get_annotation(db, r.json["faces"][0]["id"])
    assert (h["label"], h["origin_id"]) == (CAR, m["id"])
    assert get_annotation(db, m["id"])["rating"] == "bad"
    # The editor now shows the human Car box in place of the machine Person box.
    cfg = page_config(admin_client.get(f"/edit/annotation/{m['id']}").get_data(as_text=True))
    shown = {f["key"]: f["label"] for f in cfg["faces"]}
    assert shown[f"h{h['id']}"] == CAR and f"m{m['id']}" not in shown
    assert cfg["focus_key"] == f"h{h['id']}"
    # The review of the machine set draws it corrected, with the correction's class named.
    page = admin_client.get(f"/review/{objects['set_id']}?item={m['id']}&status=all").get_data(as_text=True)
    assert "corrected by admin" in page
    assert '<dd class="class-name">Car</dd>' in page
    event = db.execute(
        "SELECT before, after FROM events WHERE action = 'edit_correct' AND target_id = ?", [h["id"]]
    ).fetchone()
    assert json.loads(event[0])["label"] == PERSON and json.loads(event[1])["label"] == CAR


def test_a_class_change_follows_the_version_rule(admin_client, reviewer_client, db, objects):
    image_id = objects["boxes"][0]["image_id"]
    body = {
        "image_id": image_id,
        "kind": KIND,
        "faces": [{"key": "n", "box": [0.1, 0.1, 0.3, 0.3], "label": CAR}],
    }
    h_id = post(admin_client, body).json["faces"][0]["id"]
    theirs = {"key": f"h{h_id}", "id": h_id, "version": 1, "box": [0.1, 0.1, 0.3, 0.3], "label": PERSON}
    r = post(reviewer_client, {"image_id": image_id, "kind": KIND, "faces": [theirs]})
    assert r.status_code == 200 and r.json["faces"][0]["version"] == 2
    mine = {**theirs, "label": HEAD}  # still at version 1: stale
    r = post(admin_client, {"image_id": image_id, "kind": KIND, "faces": [mine]})
    assert r.status_code == 409 and "rev" in r.json["error"]
    row = get_annotation(db, h_id)
    assert (row["label"], row["version"]) == (PERSON, 2)
    # Moving without a label keeps the class.
    moved = {"key": f"h{h_id}", "id": h_id, "version": 2, "box": [0.1, 0.1, 0.35, 0.3]}
    assert post(admin_client, {"image_id": image_id, "kind": KIND, "faces": [moved]}).status_code == 200
    row = get_annotation(db, h_id)
    assert (row["label"], row["x1"], row["version"]) == (PERSON, 0.35, 3)


def test_deleting_a_false_machine_box(admin_client, db, objects):
    m = objects["boxes"][0]
    body = {
        "image_id": m["image_id"],
        "kind": KIND,
        "faces": [{"key": "x", "origin_id": m["id"], "deleted": True}],
    }
    r = post(admin_client, body)
    assert r.status_code == 200 and r.json["message"] == "Deleted 1 box"
    h = get_annotation(db, r.json["faces"][0]["id"])
    assert (h["deleted"], h["origin_id"], h["label"]) == (1, m["id"], m["label"])
    assert get_annotation(db, m["id"])["rating"] == "bad"


def test_a_human_box_hides_the_machine_box_of_its_class_only(admin_client, objects):
    head = next(b for b in objects["boxes"] if b["label"] == HEAD)
    person = next(b for b in objects["boxes"] if b["label"] == PERSON and b["image_id"] == head["image_id"])
    # A human box of the Person class right over the machine Person box: one object; the head stays.
    body = {
        "image_id": head["image_id"],
        "kind": KIND,
        "faces": [{"key": "n", "box": person["box"], "label": PERSON}],
    }
    assert post(admin_client, body).status_code == 200
    cfg = page_config(
        admin_client.get(f"/edit/image/{head['image_id']}?kind=object_box").get_data(as_text=True)
    )
    keys = {f["key"] for f in cfg["faces"]}
    assert f"m{person['id']}" not in keys and f"m{head['id']}" in keys


def test_the_editor_shows_every_class_of_the_image_once(admin_client, db, objects):
    # Open Images imports make one set per class: editing a car shows the image's imported persons
    # too; a model run's persons there leave the imported persons out (one class, one source).
    from app.annotations.rows import annotation_row, insert_annotation
    from app.db import immediate
    from app.sets.queries import create_set

    image_id = objects["boxes"][0]["image_id"]
    with immediate(db):
        cars = create_set(db, "openimages-car", KIND, "import", label=CAR)
        people = create_set(db, "openimages-person", KIND, "import", label=PERSON)
        car = insert_annotation(db, annotation_row(cars, image_id, KIND, [0.1, 0.6, 0.3, 0.9], label=CAR))
        person = insert_annotation(
            db, annotation_row(people, image_id, KIND, [0.5, 0.1, 0.7, 0.9], label=PERSON)
        )
    cfg = page_config(admin_client.get(f"/edit/annotation/{car}").get_data(as_text=True))
    keys = {f["key"] for f in cfg["faces"]}
    assert {f"m{car}", f"m{person}"} <= keys
    assert not any(f"m{b['id']}" in keys for b in objects["boxes"])  # the model run is another source
    cfg = page_config(
        admin_client.get(f"/edit/annotation/{objects['boxes'][0]['id']}").get_data(as_text=True)
    )
    keys = {f["key"] for f in cfg["faces"]}
    assert f"m{car}" in keys and f"m{person}" not in keys
    on_image = {f"m{b['id']}" for b in objects["boxes"] if b["image_id"] == image_id}
    assert on_image <= keys
