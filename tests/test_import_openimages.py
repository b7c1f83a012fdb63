import json

import pytest

from app.errors import InvalidInput
from app.imports.openimages import import_openimages
from tests.openimages_csv import (
    BBOX_HEADER_V4,
    BBOX_HEADER_V6,
    CLASSES,
    FACE,
    IMAGE_HEADER,
    PERSON,
    bbox_row,
    image_row,
    write_csv,
)

IDS = [f"{i:016x}" for i in range(0xA0, 0xA8)]  # 8 valid ImageIDs


@pytest.fixture
def v6_dir(tmp_path):
    """Metadata as v6 names them: per-split image files, headerless classes, oidv6 train bbox."""
    d = tmp_path / "meta"
    d.mkdir()
    write_csv(
        d / "train-images-boxable-with-rotation.csv",
        IMAGE_HEADER,
        [
            image_row(IDS[0], "train"),
            image_row(IDS[1], "train", rotation=""),
            image_row(IDS[2], "train", "90.0"),
        ],
    )
    write_csv(d / "validation-images-with-rotation.csv", IMAGE_HEADER, [image_row(IDS[3], "validation")])
    write_csv(d / "test-images-with-rotation.csv", IMAGE_HEADER, [image_row(IDS[4], "test")])
    write_csv(d / "class-descriptions-boxable.csv", None, CLASSES)
    write_csv(
        d / "oidv6-train-annotations-bbox.csv",
        BBOX_HEADER_V6,
        [
            bbox_row(IDS[0], FACE),
            bbox_row(IDS[0], FACE, box=(0.5, 0.7, 0.1, 0.4), flags=(1, 0, 0, 1, 0)),
            bbox_row(IDS[0], PERSON, box=(0.0, 1.0, 0.0, 1.0)),
            bbox_row(IDS[1], FACE, box=(0.2, 0.1, 0.2, 0.5)),  # line 5: XMin > XMax
            bbox_row(IDS[2], FACE)[:7],  # line 6: cut short
            bbox_row(IDS[2], FACE, box=(0.6, 0.9, 0.6, 0.9)),
            bbox_row("NOT-AN-IMAGE-ID!", FACE),  # line 8
        ],
    )
    write_csv(
        d / "validation-annotations-bbox.csv",
        BBOX_HEADER_V4,
        [bbox_row(IDS[3], FACE, xclick=False), bbox_row(IDS[3], "/m/011k07", xclick=False)],
    )
    write_csv(d / "test-annotations-bbox.csv", BBOX_HEADER_V4, [bbox_row(IDS[4], FACE, xclick=False)])
    return d


def _boxes(db, set_name):
    return list(
        db.query(
            "SELECT a.* FROM annotations a JOIN annotation_sets s ON s.id = a.set_id WHERE s.name = ? ORDER BY a.id",
            [set_name],
        )
    )


def test_v6_files_import_images_faces_and_report_malformed_rows(db, v6_dir):
    s = import_openimages(db, v6_dir)
    assert s["images_added"] == 5
    img = db["images"].get(IDS[0])
    assert img["split"] == "train" and img["path"] is None and img["rotation"] == 0.0
    assert img["licence"] == "https://creativecommons.org/licenses/by/2.0/"
    assert img["title"] == "A photo, with a comma" and img["author"] == "Some One"
    assert img["url"].startswith("https://farm3.staticflickr.com/")
    assert db["images"].get(IDS[1])["rotation"] is None
    assert db["images"].get(IDS[2])["rotation"] == 90.0
    assert db["images"].get(IDS[3])["split"] == "validation"
    assert db["images"].get(IDS[4])["split"] == "test"

    faces = _boxes(db, "openimages-human-face")
    assert [(b["image_id"], b["x0"], b["y0"], b["x1"], b["y1"]) for b in faces] == [
        (IDS[0], 0.1, 0.2, 0.3, 0.5),
        (IDS[0], 0.5, 0.1, 0.7, 0.4),
        (IDS[2], 0.6, 0.6, 0.9, 0.9),
        (IDS[3], 0.1, 0.2, 0.3, 0.5),
        (IDS[4], 0.1, 0.2, 0.3, 0.5),
    ]
    assert all(b["kind"] == "face_box" and b["label"] == FACE for b in faces)
    assert json.loads(faces[1]["flags"]) == {
        "IsOccluded": 1,
        "IsTruncated": 0,
        "IsGroupOf": 0,
        "IsDepiction": 1,
        "IsInside": 0,
        "Source": "xclick",
    }
    (face_set,) = db.query("SELECT * FROM annotation_sets WHERE name = 'openimages-human-face'")
    assert (face_set["source"], face_set["kind"], face_set["label"], face_set["n_total"]) == (
        "import",
        "face_box",
        FACE,
        5,
    )

    assert s["errors"] == 3
    text = "\n".join(s["error_samples"])
    assert "oidv6-train-annotations-bbox.csv:5: box XMin=0.2 XMax=0.1" in text
    assert "oidv6-train-annotations-bbox.csv:6: expected 21 columns, got 7" in text
    assert "oidv6-train-annotations-bbox.csv:8: bad ImageID 'NOT-AN-IMAGE-ID!'" in text
    stored = list(db.query("SELECT source, line, reason FROM run_errors WHERE run_id = ?", [s["run_id"]]))
    assert sorted(r["line"] for r in stored) == [5, 6, 8]
    assert all(r["source"].endswith("oidv6-train-annotations-bbox.csv") for r in stored)
    run = db["runs"].get(s["run_id"])
    assert run["status"] == "done" and run["command"] == "import-openimages" and "3 malformed" in run["error"]


def test_second_run_adds_nothing(db, v6_dir):
    import_openimages(db, v6_dir)
    before = db.execute("SELECT (SELECT count(*) FROM images), (SELECT count(*) FROM annotations)").fetchone()
    again = import_openimages(db, v6_dir)
    after = db.execute("SELECT (SELECT count(*) FROM images), (SELECT count(*) FROM annotations)").fetchone()
    assert before == after == (5, 5)
    assert again["images_added"] == 0 and again["boxes_added"] == 0
    assert db.execute("SELECT count(*) FROM annotation_sets").fetchone()[0] == 1


def test_v7_names_classes_with_header_all_splits_file_and_two_classes(db, tmp_path):
    d = tmp_path / "v7"
    d.mkdir()
    write_csv(
        d / "image_ids_and_rotation.csv",
        IMAGE_HEADER,
        [image_row(IDS[0], "train"), image_row(IDS[1], "validation"), image_row(IDS[2], "test")],
    )
    write_csv(d / "oidv7-class-descriptions-boxable.csv", ["LabelName", "DisplayName"], CLASSES)
    write_csv(
        d / "oidv6-train-annotations-bbox.csv",
        BBOX_HEADER_V6,
        [bbox_row(IDS[0], FACE), bbox_row(IDS[0], PERSON, box=(0.0, 1.0, 0.0, 1.0))],
    )
    write_csv(d / "validation-annotations-bbox.csv", BBOX_HEADER_V6, [bbox_row(IDS[1], PERSON)])
    s = import_openimages(db, d, classes=f"{FACE},{PERSON}")
    assert s["errors"] == 0
    assert {r["id"]: r["split"] for r in db.query("SELECT id, split FROM images")} == {
        IDS[0]: "train",
        IDS[1]: "validation",
        IDS[2]: "test",
    }
    sets = {r["name"]: r for r in db.query("SELECT * FROM annotation_sets")}
    assert set(sets) == {"openimages-human-face", "openimages-person"}
    assert sets["openimages-person"]["kind"] == "object_box" and sets["openimages-person"]["label"] == PERSON
    assert sets["openimages-person"]["n_total"] == 2 and sets["openimages-human-face"]["n_total"] == 1


def test_limit_and_split(db, tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    write_csv(
        d / "train-images-boxable-with-rotation.csv", IMAGE_HEADER, [image_row(i, "train") for i in IDS[:5]]
    )
    write_csv(d / "validation-images-with-rotation.csv", IMAGE_HEADER, [image_row(IDS[5], "validation")])
    write_csv(
        d / "train-annotations-bbox.csv", BBOX_HEADER_V4, [bbox_row(i, FACE, xclick=False) for i in IDS[:5]]
    )
    s = import_openimages(db, d, splits=["train"], limit=2)
    assert [r["id"] for r in db.query("SELECT id FROM images ORDER BY id")] == IDS[:2]
    assert s["boxes_added"] == 2  # boxes of images left out by --limit are skipped
    import_openimages(db, d, splits=["validation"])
    assert db.execute("SELECT count(*) FROM images").fetchone()[0] == 3


def test_images_come_from_the_bbox_file_when_metadata_is_missing(db, tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    write_csv(
        d / "test-annotations-bbox.csv", BBOX_HEADER_V4, [bbox_row(i, FACE, xclick=False) for i in IDS[:3]]
    )
    s = import_openimages(db, d, splits=["test"], limit=2)
    assert s["images_added"] == 2 and s["boxes_added"] == 2
    assert {r["split"] for r in db.query("SELECT split FROM images")} == {"test"}
    s = import_openimages(db, d, splits=["test"])
    assert s["images_added"] == 1 and s["boxes_added"] == 1
    assert db["images"].get(IDS[2])["licence"] is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"classes": "/m/nope"}, "not in the class descriptions file"),
        ({"classes": "face"}, "bad class 'face'"),
        ({"splits": ["training"]}, "unknown split 'training'"),
        ({"limit": 0}, "--limit must be at least 1"),
    ],
)
def test_bad_options_are_refused(db, v6_dir, kwargs, message):
    with pytest.raises(InvalidInput, match=message):
        import_openimages(db, v6_dir, **kwargs)


def test_empty_folder_is_refused(db, tmp_path):
    with pytest.raises(InvalidInput, match="no Open Images metadata files"):
        import_openimages(db, tmp_path)


def test_cli_reports_counts_and_malformed_rows(runner, v6_dir):
    r = runner.invoke(args=["oiap", "import-openimages", "--meta-dir", str(v6_dir)])
    assert r.exit_code == 0, r.output
    assert "images: 5 added" in r.output
    assert "3 malformed row(s) skipped" in r.output
    assert "oidv6-train-annotations-bbox.csv:6: expected 21 columns, got 7" in r.output
    r = runner.invoke(args=["oiap", "import-openimages", "--meta-dir", str(v6_dir), "--json"])
    assert json.loads(r.output[r.output.index("{") :])["boxes_added"] == 0
    r = runner.invoke(args=["oiap", "import-openimages", "--meta-dir", str(v6_dir), "--classes", "x"])
    assert r.exit_code == 1 and "Error: bad class 'x'" in r.output


def test_duplicate_check_uses_the_set_image_index(db):
    # A plan that walks an index on set_id alone scans the whole set for every row (30x slower).
    from app.annotations.rows import BOX_IF_NEW_SQL

    plan = " ".join(
        r[3]
        for r in db.execute(
            "EXPLAIN QUERY PLAN " + BOX_IF_NEW_SQL, [1, "0" * 16, "face_box", FACE, 0, 0, 1, 1, "{}", "x"]
        )
    )
    assert "annotations USING INDEX annotations_set_image (set_id=? AND image_id=?)" in plan
