"""Object boxes by class: the shipped class list, counts per class, and the merge rule that an
object is one object only within one class (on the demo photos' real images, a real SQLite store)."""

import csv

from app.annotations.rows import annotation_row, insert_annotation, rate
from app.classes import CLASSES_FILE, boxable, check_label, choices, class_counts, display_name, parse_classes
from app.db import immediate
from app.errors import InvalidInput
from app.export import ground_truth, iter_training_rows
from app.sets.queries import create_set
from tests.objects_seed import CAR, HEAD, PERSON, seed_objects


def test_the_shipped_list_is_open_images_boxable_classes():
    with open(CLASSES_FILE, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["LabelName", "DisplayName"]
    assert len(rows) == 602  # header + 601 boxable classes, as Google publishes them
    names = boxable()
    assert len(names) == 601
    assert names["/m/0dzct"] == "Human face"
    assert names[PERSON] == "Person"
    assert names[CAR] == "Car"
    assert names["/m/0h8n5zk"] == "Kitchen & dining room table"
    for mid in names:
        check_label(mid)


def test_display_names_fall_back_to_the_store_then_the_mid(db):
    assert display_name(PERSON) == "Person"
    assert display_name("/m/0xyzzy") == "/m/0xyzzy"
    assert display_name(None) == "no class"
    with immediate(db):
        create_set(
            db,
            "openimages-dance",
            "object_box",
            "import",
            label="/m/02jwqh",
            params={"display_name": "Dance"},
        )
    assert {"label": "/m/02jwqh", "name": "Dance"} in choices(db)
    assert len(choices(db)) == 602


def test_bad_class_is_refused_by_name():
    for bad in ("Car", "/m/", "/m/0K4J", "/x/0k4j", 3):
        try:
            check_label(bad)
        except InvalidInput as e:
            assert repr(bad) in str(e) and "/m/0k4j" in str(e)
        else:
            raise AssertionError(f"{bad!r} was accepted")


def test_every_classes_option_reads_the_same_way():
    """One parser for every --classes (import-openimages, import-openimages-masks, bulk-annotate,
    evaluate): MIDs in order, each once; none given is None; a bad or empty one is named."""
    assert parse_classes(None) is None
    assert parse_classes(f" {PERSON}, {CAR},{PERSON},") == [PERSON, CAR]
    assert parse_classes([CAR, "/g/11bc5v3x1l"]) == [CAR, "/g/11bc5v3x1l"]
    for bad, said in (
        ("person", "bad class 'person' in --classes"),
        (f"{PERSON},/m/Car", "bad class '/m/Car'"),
        (" , ", "names no class"),
    ):
        try:
            parse_classes(bad)
        except InvalidInput as e:
            assert said in str(e) and "/m/01g317" in str(e), str(e)
        else:
            raise AssertionError(f"{bad!r} was accepted")


def test_counts_per_class(db):
    seeded = seed_objects(db)
    heads = [b for b in seeded["boxes"] if b["label"] == HEAD]
    rate(db, heads[0]["id"], None, "good")
    rate(db, heads[1]["id"], None, "bad")
    counts = {c["name"]: c for c in class_counts(db, seeded["set_id"])}
    assert set(counts) == {"Person", "Human head"}
    n = len(heads)
    assert counts["Human head"] == {
        "label": HEAD,
        "name": "Human head",
        "total": n,
        "unrated": n - 2,
        "good": 1,
        "bad": 1,
    }
    assert counts["Person"]["total"] == n and counts["Person"]["unrated"] == n


def _add(db, set_id, image_id, box, label, **kw):
    with immediate(db):
        return insert_annotation(db, annotation_row(set_id, image_id, "object_box", box, label=label, **kw))


def test_overlapping_boxes_of_two_classes_are_two_objects(db):
    seeded = seed_objects(db)
    image_id = seeded["boxes"][0]["image_id"]
    with immediate(db):
        human = create_set(db, "human-object_box", "object_box", "human")
        machine = create_set(db, "run-2", "object_box", "model")
    box = [0.1, 0.1, 0.5, 0.6]
    car = _add(db, machine, image_id, box, CAR, score=0.8)
    person = _add(db, machine, image_id, box, PERSON, score=0.7)
    got = {r.annotation_id for r in iter_training_rows(db, "object_box")}
    # Same box, different classes: both train (a face rule without classes would keep one).
    assert {car, person} <= got
    # A human Person box over them replaces the machine Person only.
    h = _add(db, human, image_id, [0.11, 0.1, 0.5, 0.6], PERSON, created_by=1)
    got = {r.annotation_id for r in iter_training_rows(db, "object_box")}
    assert car in got and h in got and person not in got
    # A bad machine Car takes nothing of the Person class with it.
    rate(db, car, None, "bad")
    got = {r.annotation_id for r in iter_training_rows(db, "object_box")}
    assert car not in got and h in got


def test_class_corrected_by_a_person_trains_the_new_class_only(db):
    seeded = seed_objects(db)
    image_id = seeded["boxes"][0]["image_id"]
    with immediate(db):
        human = create_set(db, "human-object_box", "object_box", "human")
        machine = create_set(db, "run-2", "object_box", "model")
    m = _add(db, machine, image_id, [0.2, 0.2, 0.4, 0.4], CAR, score=0.9)
    h = _add(db, human, image_id, [0.2, 0.2, 0.4, 0.4], PERSON, origin_id=m, created_by=1)
    rate(db, m, 1, "bad")  # what a correction does to the machine row
    chosen = [r for r in iter_training_rows(db, "object_box") if r.image_id == image_id]
    ids = {r.annotation_id for r in chosen}
    assert h in ids and m not in ids
    assert next(r for r in chosen if r.annotation_id == h).label == PERSON


def test_a_class_correction_leaves_the_machine_row_in_its_old_class(db):
    """Rated bad by the correction, the machine Car takes the older imported Car box at the same
    place with it (as a bad row takes its object's older rows); the human Person trains alone."""
    seeded = seed_objects(db)
    image_id = seeded["boxes"][0]["image_id"]
    with immediate(db):
        imported = create_set(db, "openimages-car", "object_box", "import", label=CAR)
        human = create_set(db, "human-object_box", "object_box", "human")
        machine = create_set(db, "run-2", "object_box", "model")
    old_car = _add(db, imported, image_id, [0.2, 0.2, 0.4, 0.41], CAR)
    assert old_car in {r.annotation_id for r in iter_training_rows(db, "object_box")}
    m = _add(db, machine, image_id, [0.2, 0.2, 0.4, 0.4], CAR, score=0.9)
    h = _add(db, human, image_id, [0.2, 0.2, 0.4, 0.4], PERSON, origin_id=m, created_by=1)
    rate(db, m, 1, "bad")
    ids = {r.annotation_id for r in iter_training_rows(db, "object_box") if r.image_id == image_id}
    assert h in ids and m not in ids and old_car not in ids


def test_faces_still_merge_whatever_their_label(db):
    # Face kinds keep the face rule: one face per overlap, whether or not rows carry a label.
    seeded = seed_objects(db)
    image_id = seeded["boxes"][0]["image_id"]
    with immediate(db):
        a = create_set(db, "faces-a", "face_box", "import")
        b = create_set(db, "faces-b", "face_box", "import")
        ra = insert_annotation(
            db, annotation_row(a, image_id, "face_box", [0.1, 0.1, 0.3, 0.3], label="/m/0dzct")
        )
        insert_annotation(db, annotation_row(b, image_id, "face_box", [0.1, 0.1, 0.3, 0.3]))
    rate(db, ra, None, "good")
    rows = [r for r in iter_training_rows(db, "face_box") if r.image_id == image_id]
    assert [r.annotation_id for r in rows] == [ra]


def test_ground_truth_of_objects_keeps_classes_apart(db):
    seeded = seed_objects(db)
    with immediate(db):
        db.execute("UPDATE images SET split = 'test'")
    for b in seeded["boxes"][:4]:
        rate(db, b["id"], None, "good")
    gt = list(ground_truth(db, "object_box", "test"))
    assert sorted(r.annotation_id for r in gt) == [b["id"] for b in seeded["boxes"][:4]]
    assert {r.label for r in gt} == {HEAD, PERSON}


def test_an_import_without_a_class_file_names_its_set_from_the_shipped_list(db, tmp_path):
    from app.imports.openimages import import_openimages
    from tests.openimages_csv import BBOX_HEADER_V6, IMAGE_HEADER, bbox_row, image_row, write_csv

    meta = tmp_path / "meta"
    meta.mkdir()
    write_csv(
        meta / "validation-images-with-rotation.csv",
        IMAGE_HEADER,
        [image_row("0123456789abcdef", "validation")],
    )
    write_csv(meta / "validation-annotations-bbox.csv", BBOX_HEADER_V6, [bbox_row("0123456789abcdef", CAR)])
    summary = import_openimages(db, meta, splits=["validation"], classes=CAR)
    assert list(summary["sets"]) == ["openimages-car"]
    assert class_counts(db, summary["sets"]["openimages-car"])[0]["name"] == "Car"
