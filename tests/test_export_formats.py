"""COCO, dlib XML, YOLO-pose and Open Images exports, checked against their formats.

The store is loaded from dlib's own training_with_face_landmarks.xml (real photos, 68 points), so the
dlib export can be compared with the file it came from.
"""

import csv
import hashlib
import io
import json
import xml.etree.ElementTree as ET
import zipfile

import pytest

from app.annotations.rows import annotation_row, insert_annotations, rate
from app.kinds import FLIP_68, LANDMARK68_GROUPS
from app.sets.queries import create_set
from tests.conftest import DEMO_DATA

KIND = "face_landmarks68"
SOURCE_XML = DEMO_DATA / "training_with_face_landmarks.xml"


def load_dlib_xml(db, path, kind=KIND, split="train"):
    """Images and 68-point annotations from an imglab XML into a human set; returns {file: image_id}."""
    set_id = create_set(db, f"human-{kind}", kind, "human")
    ids = {}
    rows = []
    for image in ET.parse(path).getroot().iter("image"):
        name = image.get("file")
        w, h = int(image.get("width")), int(image.get("height"))
        image_id = hashlib.sha1((DEMO_DATA / name).read_bytes()).hexdigest()[:16]
        ids[name] = image_id
        db.execute(
            "INSERT INTO images (id, split, path, width, height, created_at) VALUES (?, ?, ?, ?, ?, 'now')",
            [image_id, split, f"app/demo_data/{name}", w, h],
        )
        for box in image.iter("box"):
            t, left = int(box.get("top")), int(box.get("left"))
            bw, bh = int(box.get("width")), int(box.get("height"))
            parts = {int(p.get("name")): (int(p.get("x")), int(p.get("y"))) for p in box.iter("part")}
            pts = [[parts[i][0] / w, parts[i][1] / h, 1] if i in parts else [0, 0, 0] for i in range(68)]
            box_n = (left / w, t / h, (left + bw) / w, (t + bh) / h)
            rows.append(
                annotation_row(set_id, image_id, kind, box_n, pts if kind == KIND else None, created_by=1)
            )
    with db.atomic():
        insert_annotations(db, rows)
    return ids


def boxes_of(path_or_text):
    """{file basename: sorted [(top, left, width, height, parts...)]} from imglab XML."""
    root = ET.fromstring(path_or_text) if isinstance(path_or_text, str) else ET.parse(path_or_text).getroot()
    out = {}
    for image in root.iter("image"):
        name = image.get("file").rsplit("/", 1)[-1]
        out[name] = (
            image.get("width"),
            image.get("height"),
            sorted(
                (
                    tuple(int(b.get(k)) for k in ("top", "left", "width", "height")),
                    tuple((p.get("name"), int(p.get("x")), int(p.get("y"))) for p in b.iter("part")),
                )
                for b in image.iter("box")
            ),
        )
    return out


@pytest.fixture
def demo_store(db):
    return load_dlib_xml(db, SOURCE_XML)


def export(runner, *args):
    result = runner.invoke(args=["oiap", "export", *args])
    assert result.exit_code == 0, result.output
    return result


def test_dlib_xml_parses_back_to_the_source(runner, demo_store):
    out = export(runner, "--kind", KIND, "--format", "dlib-xml", "-o", "-").stdout
    assert boxes_of(out) == boxes_of(SOURCE_XML)
    root = ET.fromstring(out)
    # Paths resolve to the real files, as dlib's trainers open them.
    for image in root.iter("image"):
        assert (
            image.get("file").endswith(".jpg")
            and (DEMO_DATA / image.get("file").rsplit("/", 1)[-1]).is_file()
        )
    assert sum(1 for _ in root.iter("box")) == 18


def test_coco_keypoints_field_by_field(runner, demo_store, tmp_path):
    path = tmp_path / "coco.json"
    export(runner, "--kind", KIND, "--format", "coco", "-o", str(path))
    doc = json.loads(path.read_text())
    assert set(doc) >= {"info", "images", "annotations", "categories"}
    (cat,) = doc["categories"]
    assert cat["id"] == 1 and cat["name"] == "face" and isinstance(cat["supercategory"], str)
    assert len(cat["keypoints"]) == 68 and len(set(cat["keypoints"])) == 68
    assert cat["keypoints"][0] == "jaw_0" and cat["keypoints"][36] == "right_eye_0"
    edges = {tuple(e) for e in cat["skeleton"]}
    assert all(1 <= a <= 68 and 1 <= b <= 68 for a, b in edges)
    # Jaw is an open chain (16 edges), each eye closed (6 edges).
    assert (1, 2) in edges and (17, 1) not in edges and (42, 37) in edges
    assert len(edges) == sum(len(i) - (0 if closed else 1) for i, closed in LANDMARK68_GROUPS.values())
    images = {im["id"]: im for im in doc["images"]}
    assert len(images) == len(demo_store)
    for im in images.values():
        assert set(im) >= {"id", "file_name", "width", "height"}
        assert isinstance(im["id"], int) and im["oiap_image_id"] in demo_store.values()
    src = boxes_of(SOURCE_XML)
    assert len(doc["annotations"]) == 18
    ids = set()
    for ann in doc["annotations"]:
        assert set(ann) >= {
            "id",
            "image_id",
            "category_id",
            "bbox",
            "area",
            "iscrowd",
            "keypoints",
            "num_keypoints",
        }
        ids.add(ann["id"])
        im = images[ann["image_id"]]
        assert ann["category_id"] == 1 and ann["iscrowd"] == 0
        x, y, w, h = ann["bbox"]
        assert w > 0 and h > 0 and ann["area"] == pytest.approx(w * h, rel=1e-3)
        kps = ann["keypoints"]
        assert len(kps) == 3 * 68
        assert all(v in (0, 1, 2) for v in kps[2::3])
        assert ann["num_keypoints"] == sum(1 for v in kps[2::3] if v > 0) == 68
        # Pixels, matching the source XML's box and part positions.
        name = im["file_name"].rsplit("/", 1)[-1]
        boxes = src[name][2]
        match = [b for b in boxes if b[0] == (round(y), round(x), round(w), round(h))]
        assert match, (name, ann["bbox"])
        parts = match[0][1]
        assert [(round(kps[3 * i]), round(kps[3 * i + 1])) for i in range(68)] == [
            (px, py) for _n, px, py in parts
        ]
    assert len(ids) == 18


def test_coco_visibility_absent_and_occluded(runner, db):
    db.execute(
        "INSERT INTO images (id, split, width, height, created_at) VALUES (?, 'train', 100, 50, 'now')",
        ["1" * 16],
    )
    s = create_set(db, "m", "face_landmarks5", "model")
    pts = [[0.1, 0.2, 1], [0.3, 0.2, 0], [0, 0, 0], [0.1, 0.4, 1], [0.3, 0.4, 1]]
    insert_annotations(db, [annotation_row(s, "1" * 16, "face_landmarks5", (0.05, 0.1, 0.4, 0.5), pts)])
    db.conn.commit()
    doc = json.loads(export(runner, "--kind", "face_landmarks5", "--format", "coco", "-o", "-").stdout)
    (ann,) = doc["annotations"]
    assert ann["keypoints"][:9] == [10.0, 10.0, 2, 30.0, 10.0, 1, 0, 0, 0]
    assert ann["num_keypoints"] == 4 and ann["bbox"] == [5.0, 5.0, 35.0, 20.0]
    assert ann["source"] == "machine_unrated" and ann["weight"] == 0.5
    assert doc["categories"][0]["keypoints"][0] == "right eye"


def test_yolo_pose_folder(runner, demo_store, tmp_path):
    out = tmp_path / "yolo"
    export(runner, "--kind", KIND, "--format", "yolo-pose", "-o", str(out))
    data = (out / "data.yaml").read_text()
    assert "kpt_shape: [68, 3]" in data
    assert f"flip_idx: [{', '.join(map(str, FLIP_68))}]" in data
    assert "train: images/train" in data and "0: face" in data
    labels = sorted((out / "labels" / "train").glob("*.txt"))
    assert len(labels) == len(demo_store)
    src = boxes_of(SOURCE_XML)
    n = 0
    for name, image_id in demo_store.items():
        w, h, boxes = src[name]
        lines = (out / "labels" / "train" / f"{image_id}.txt").read_text().splitlines()
        assert len(lines) == len(boxes)
        for line in lines:
            v = line.split()
            assert len(v) == 5 + 3 * 68 and v[0] == "0"
            cx, cy, bw, bh = (float(t) for t in v[1:5])
            assert 0 < cx < 1 and 0 < cy < 1 and 0 < bw <= 1 and 0 < bh <= 1
            assert all(t == "2" for t in v[7::3])
            n += 1
        # Ultralytics finds the image by swapping labels/ for images/.
        assert (out / "images" / "train" / f"{image_id}.jpg").resolve() == (DEMO_DATA / name).resolve()
    assert n == 18


def test_yolo_pose_with_no_rows_writes_an_empty_dataset(runner, demo_store, tmp_path):
    # Nothing of face_landmarks5 in the store: a folder with its data.yaml, not a traceback.
    out = tmp_path / "new" / "yolo"
    result = export(runner, "--kind", "face_landmarks5", "--format", "yolo-pose", "-o", str(out))
    assert "exported 0 face_landmarks5 rows" in result.stderr
    data = (out / "data.yaml").read_text()
    assert "kpt_shape: [5, 3]" in data and "0: face" in data
    assert not (out / "labels").exists()
    export(runner, "--kind", "face_landmarks5", "--format", "yolo-pose", "-o", str(tmp_path / "y.zip"))
    with zipfile.ZipFile(tmp_path / "y.zip") as zf:
        assert "data.yaml" in zf.namelist()


def test_yolo_pose_zip_to_stdout(runner, demo_store, tmp_path):
    result = runner.invoke(
        args=["oiap", "export", "--kind", KIND, "--format", "yolo-pose", "-o", str(tmp_path / "y.zip")]
    )
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(tmp_path / "y.zip") as zf:
        names = zf.namelist()
        assert "data.yaml" in names and "images.csv" in names
        assert sum(n.startswith("labels/train/") for n in names) == len(demo_store)
        assert "kpt_shape: [68, 3]" in zf.read("data.yaml").decode()
        index = list(csv.DictReader(io.StringIO(zf.read("images.csv").decode())))
        assert {r["image_id"] for r in index} == set(demo_store.values())


def test_openimages_box_csv(runner, db):
    db.execute(
        "INSERT INTO images (id, split, width, height, created_at) VALUES (?, 'train', 100, 50, 'now')",
        ["2" * 16],
    )
    h = create_set(db, "human-face_box", "face_box", "human")
    m = create_set(db, "m", "face_box", "model")
    insert_annotations(
        db,
        [
            annotation_row(
                h, "2" * 16, "face_box", (0.1, 0.2, 0.3, 0.4), flags={"IsOccluded": 1}, created_by=1
            ),
            annotation_row(m, "2" * 16, "face_box", (0.6, 0.6, 0.9, 0.9)),
            annotation_row(m, "2" * 16, "face_box", (0.5, 0.1, 0.6, 0.2)),
        ],
    )
    db.conn.commit()
    rate(db, 2, 2, "good")
    rate(db, 3, 2, "bad")
    out = export(runner, "--kind", "face_box", "--format", "openimages", "-o", "-").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == (
        "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside"
    ).split(",")
    assert [(r["Source"], r["LabelName"], r["Confidence"]) for r in rows] == [
        ("freeform", "/m/0dzct", "1.0"),  # Google's Source values (tests/test_original_files.py)
        ("activemil", "/m/0dzct", "1.0"),
    ]
    first = rows[0]
    assert [float(first[k]) for k in ("XMin", "XMax", "YMin", "YMax")] == [0.1, 0.3, 0.2, 0.4]
    assert (first["IsOccluded"], first["IsTruncated"]) == ("1", "0")


def test_pixel_formats_read_the_size_from_the_file_or_skip_with_a_warning(runner, db):
    db.execute(
        "INSERT INTO images (id, split, path, created_at) VALUES (?, 'train', 'app/demo_data/2008_001009.jpg', 'now')",
        ["3" * 16],
    )
    db.execute("INSERT INTO images (id, split, created_at) VALUES (?, 'train', 'now')", ["4" * 16])
    s = create_set(db, "human-face_box", "face_box", "human")
    insert_annotations(
        db,
        [
            annotation_row(s, "3" * 16, "face_box", (0.1, 0.1, 0.5, 0.5), created_by=1),
            annotation_row(s, "4" * 16, "face_box", (0.1, 0.1, 0.5, 0.5), created_by=1),
        ],
    )
    db.conn.commit()
    result = export(runner, "--kind", "face_box", "--format", "coco", "-o", "-")
    doc = json.loads(result.stdout)
    from PIL import Image

    with Image.open(DEMO_DATA / "2008_001009.jpg") as im:
        w, h = im.size
    assert [(i["oiap_image_id"], i["width"], i["height"]) for i in doc["images"]] == [("3" * 16, w, h)]
    assert "keypoints" not in doc["categories"][0] and "keypoints" not in doc["annotations"][0]
    assert "1 image(s) skipped" in result.stderr
