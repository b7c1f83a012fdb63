"""Object-box exports on a real store: Open Images CSV (+ its class list), COCO detection (loaded by
pycocotools), YOLO detection (classes.txt, data.yaml names), by the merge rules of faces."""

import csv
import json
import zipfile

import pytest
from pycocotools.coco import COCO

from app.annotations.rows import annotation_row, insert_annotations, rate
from app.db import immediate
from app.imports.openimages import import_openimages
from app.sets.queries import create_set
from tests.openimages_csv import BBOX_HEADER_V4, CLASSES, IMAGE_HEADER, PERSON, bbox_row, image_row, write_csv

TORTOISE = "/m/011k07"
IDS = [f"{i:016x}" for i in range(0xC0, 0xC4)]
W, H = 640, 480


@pytest.fixture
def store(db, tmp_path):
    """Open Images metadata imported for two classes (one group-of box), then a model run and a human set."""
    meta = tmp_path / "meta"
    meta.mkdir()
    write_csv(
        meta / "train-images-boxable-with-rotation.csv",
        IMAGE_HEADER,
        [image_row(i, "train") for i in IDS[:3]],
    )
    write_csv(meta / "test-images-with-rotation.csv", IMAGE_HEADER, [image_row(IDS[3], "test")])
    write_csv(meta / "class-descriptions-boxable.csv", None, CLASSES)
    write_csv(
        meta / "train-annotations-bbox.csv",
        BBOX_HEADER_V4,
        [
            bbox_row(IDS[0], PERSON, box=(0.1, 0.3, 0.2, 0.6), flags=(1, 0, 0, 0, 0), xclick=False),
            bbox_row(
                IDS[0], PERSON, box=(0.5, 0.9, 0.1, 0.9), flags=(0, 0, 1, 0, 0), xclick=False
            ),  # group-of
            bbox_row(IDS[1], TORTOISE, box=(0.2, 0.6, 0.2, 0.6), xclick=False),
        ],
    )
    write_csv(meta / "test-annotations-bbox.csv", BBOX_HEADER_V4, [bbox_row(IDS[3], PERSON, xclick=False)])
    import_openimages(db, meta, classes=f"{PERSON},{TORTOISE}")
    rev = db.execute("SELECT id FROM users WHERE username = 'rev'").fetchone()[0]
    with immediate(db):
        db.execute("UPDATE images SET width = ?, height = ?", [W, H])
        model_set = create_set(db, "run-objects", "object_box", "model")
        human_set = create_set(db, "human-objects", "object_box", "human")
        insert_annotations(
            db,
            [
                # The same tortoise as the imported box (IoU 0.82): rated good, it replaces the import.
                annotation_row(
                    model_set, IDS[1], "object_box", (0.22, 0.2, 0.62, 0.6), label=TORTOISE, score=0.8
                ),
                # A person nobody drew, rated bad: never exported.
                annotation_row(
                    model_set, IDS[2], "object_box", (0.1, 0.1, 0.3, 0.3), label=PERSON, score=0.4
                ),
                # A person drawn by hand.
                annotation_row(human_set, IDS[2], "object_box", (0.6, 0.5, 0.8, 0.9), label=PERSON),
            ],
        )
    good, bad = (
        r[0] for r in db.execute("SELECT id FROM annotations WHERE set_id = ? ORDER BY id", [model_set])
    )
    rate(db, good, rev, "good")
    rate(db, bad, rev, "bad")
    return {"good": good, "bad": bad}


def _export(runner, *args):
    out = runner.invoke(args=["oiap", "export", "--kind", "object_box", *args])
    assert out.exit_code == 0, out.output
    return out


EXPECTED = [  # image, class, box (x0, y0, x1, y1), group-of, source
    (IDS[0], PERSON, (0.1, 0.2, 0.3, 0.6), 0, "xclick"),
    (IDS[0], PERSON, (0.5, 0.1, 0.9, 0.9), 1, "xclick"),
    (IDS[1], TORTOISE, (0.22, 0.2, 0.62, 0.6), 0, "activemil"),
    (IDS[2], PERSON, (0.6, 0.5, 0.8, 0.9), 0, "freeform"),
]


def test_openimages_csv_with_its_class_list(runner, store, tmp_path):
    out_file = tmp_path / "boxes.csv"
    out = _export(runner, "--format", "openimages", "-o", str(out_file))
    assert "class list (2 classes) written to" in out.output
    rows = list(csv.DictReader(out_file.read_text().splitlines()))
    assert list(rows[0]) == (
        "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside"
    ).split(",")
    got = [
        (
            r["ImageID"],
            r["LabelName"],
            tuple(round(float(r[k]), 6) for k in ("XMin", "YMin", "XMax", "YMax")),
            int(r["IsGroupOf"]),
            r["Source"],
        )
        for r in rows
    ]
    assert got == EXPECTED
    assert rows[0]["IsOccluded"] == "1" and rows[0]["Confidence"] == "1.0"
    classes = list(csv.reader((tmp_path / "boxes-classes.csv").read_text().splitlines()))
    assert classes == [["LabelName", "DisplayName"], [TORTOISE, "Tortoise"], [PERSON, "Person"]]


def test_coco_detection_loads_in_pycocotools(runner, store, tmp_path, capsys):
    out_file = tmp_path / "coco.json"
    _export(runner, "--format", "coco", "-o", str(out_file))
    coco = COCO(str(out_file))
    cats = {c["name"]: c for c in coco.loadCats(coco.getCatIds())}
    assert set(cats) == {"Person", "Tortoise"}
    assert cats["Person"]["mid"] == PERSON and cats["Tortoise"]["mid"] == TORTOISE
    assert len(coco.getImgIds()) == 3
    person = coco.loadAnns(coco.getAnnIds(catIds=[cats["Person"]["id"]]))
    assert len(person) == 3
    group = [a for a in person if a["iscrowd"]]
    assert len(group) == 1 and group[0]["bbox"] == [0.5 * W, 0.1 * H, 0.4 * W, 0.8 * H]
    (tortoise,) = coco.loadAnns(coco.getAnnIds(catIds=[cats["Tortoise"]["id"]]))
    assert tortoise["id"] == store["good"] and tortoise["source"] == "machine_good"
    assert tortoise["bbox"] == pytest.approx([0.22 * W, 0.2 * H, 0.4 * W, 0.4 * H], abs=0.01)
    img = coco.loadImgs(tortoise["image_id"])[0]
    assert (img["oiap_image_id"], img["width"], img["height"]) == (IDS[1], W, H)
    # Evaluation ground truth exports alone: the test split's one person.
    _export(runner, "--format", "coco", "--split", "test", "-o", str(out_file))
    data = json.loads(out_file.read_text())
    assert [c["name"] for c in data["categories"]] == ["Person"] and len(data["annotations"]) == 1


def test_yolo_detection_zip_and_folder_name_the_classes(runner, store, tmp_path):
    zip_file = tmp_path / "yolo.zip"
    _export(runner, "--format", "yolo", "-o", str(zip_file))
    with zipfile.ZipFile(zip_file) as z:
        classes = z.read("classes.txt").decode().splitlines()
        assert classes == ["Person", "Tortoise"]
        yaml = z.read("data.yaml").decode()
        assert '  0: "Person"' in yaml and '  1: "Tortoise"' in yaml and "kpt_shape" not in yaml
        lines = z.read(f"labels/train/{IDS[0]}.txt").decode().splitlines()
        # Class, centre and size (normalised): no keypoints for boxes.
        assert lines == ["0 0.200000 0.400000 0.200000 0.400000", "0 0.700000 0.500000 0.400000 0.800000"]
        assert z.read(f"labels/train/{IDS[1]}.txt").decode().split()[0] == "1"
    folder = tmp_path / "yolo"
    _export(runner, "--format", "yolo-pose", "-o", str(folder))
    assert (folder / "classes.txt").read_text() == "Person\nTortoise\n"
    assert sorted(p.name for p in (folder / "labels" / "train").iterdir()) == [f"{i}.txt" for i in IDS[:3]]


def test_web_export_streams_coco_detection(admin_client, store):
    r = admin_client.get("/export/download?kind=object_box&format=coco&split=train")
    assert r.status_code == 200 and r.mimetype == "application/json"
    data = json.loads(r.data)
    assert {c["name"] for c in data["categories"]} == {"Person", "Tortoise"}
    assert len(data["annotations"]) == 4
    r = admin_client.get("/export/download?kind=object_box&format=yolo&split=train")
    assert r.status_code == 200 and r.mimetype == "application/zip"


def test_the_face_class_is_named_face_for_faces_and_human_face_among_objects():
    from app.export.writers import YoloLabels, class_list_chunks
    from app.kinds import FACE_LABEL

    assert YoloLabels("face_box").class_name(FACE_LABEL) == "face"
    assert YoloLabels("object_box").class_name(FACE_LABEL) == "Human face"
    assert YoloLabels("object_box", {PERSON: "Person"}).class_name(PERSON) == "Person"
    assert "".join(class_list_chunks([FACE_LABEL, "/m/x"], {"/m/x": 'A "quoted", name'})) == (
        'LabelName,DisplayName\n/m/0dzct,Human face\n/m/x,"A ""quoted"", name"\n'
    )


CAR = "/m/0k4j"


def test_classes_are_named_from_the_shipped_list_then_the_imports(runner, db, admin_client, store, tmp_path):
    """A model's class with no import behind it (NanoDet's car) is named as Open Images names it; a
    class outside the boxable list takes the name its import stored; the web page gives the class list."""
    from app.export.files import class_names

    with immediate(db):
        run = create_set(db, "nanodet-run", "object_box", "model")
        insert_annotations(db, [annotation_row(run, IDS[0], "object_box", (0.6, 0.6, 0.9, 0.9), label=CAR)])
        create_set(
            db, "custom", "object_box", "import", label="/m/zz_custom", params={"display_name": "Zeppelin"}
        )
    assert class_names(db, [CAR, "/m/zz_custom", "/m/zz_unknown"]) == {CAR: "Car", "/m/zz_custom": "Zeppelin"}
    out_file = tmp_path / "coco.json"
    _export(runner, "--format", "coco", "-o", str(out_file))
    cats = {c["mid"]: c["name"] for c in json.loads(out_file.read_text())["categories"]}
    assert cats == {PERSON: "Person", TORTOISE: "Tortoise", CAR: "Car"}
    r = admin_client.get("/export/download?kind=object_box&format=openimages&split=train&part=classes")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert "classes.csv" in r.headers["Content-Disposition"]
    assert r.data.decode().splitlines() == [
        "LabelName,DisplayName",
        f"{TORTOISE},Tortoise",
        f"{PERSON},Person",
        f"{CAR},Car",
    ]
    # Faces have no class list: the error names the kinds that have one.
    r = admin_client.get("/export/download?kind=face_box&format=csv&split=train&part=classes")
    assert r.status_code == 400 and b"object_box" in r.data
    page = admin_client.get("/export/")
    assert b'name="part" value="classes"' in page.data
