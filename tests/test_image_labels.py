"""Open Images' human-verified image-level labels: import (streaming, idempotent, bad rows with file:line)."""

import pytest

from app.errors import InvalidInput
from app.images.labels import image_labels, labels_by_image
from app.imports.openimages import import_openimages
from tests.openimages_csv import (
    BBOX_HEADER_V4,
    CLASSES,
    FACE,
    IMAGE_HEADER,
    LABELS_HEADER,
    PERSON,
    bbox_row,
    image_row,
    label_row,
    write_csv,
)

IDS = [f"{i:016x}" for i in range(0xB0, 0xB6)]
TORTOISE = "/m/011k07"


@pytest.fixture
def meta(tmp_path):
    d = tmp_path / "meta"
    d.mkdir()
    write_csv(d / "test-images-with-rotation.csv", IMAGE_HEADER, [image_row(i, "test") for i in IDS[:4]])
    write_csv(d / "validation-images-with-rotation.csv", IMAGE_HEADER, [image_row(IDS[4], "validation")])
    write_csv(d / "oidv7-class-descriptions-boxable.csv", ["LabelName", "DisplayName"], CLASSES)
    write_csv(d / "test-annotations-bbox.csv", BBOX_HEADER_V4, [bbox_row(IDS[0], PERSON, xclick=False)])
    write_csv(
        d / "test-annotations-human-imagelabels-boxable.csv",
        LABELS_HEADER,
        [
            label_row(IDS[0], PERSON, 1),  # line 2
            label_row(IDS[0], TORTOISE, 0),  # 3: verified absent
            label_row(IDS[1], PERSON, 0, "crowdsource-verification"),  # 4
            label_row(IDS[1], FACE, 1),  # 5: a class not asked for
            label_row(IDS[2], PERSON, "0.7"),  # 6: a machine confidence
            label_row("xyz", PERSON, 1),  # 7: bad ImageID
            label_row(IDS[2], PERSON, 1)[:3],  # 8: cut short
            label_row("00000000000000ff", PERSON, 1),  # 9: an image not in the store
            label_row(IDS[3], TORTOISE, 1),  # 10
        ],
    )
    # v7 names validation "val".
    write_csv(
        d / "oidv7-val-annotations-human-imagelabels.csv",
        LABELS_HEADER,
        [label_row(IDS[4], PERSON, 1), label_row(IDS[4], TORTOISE, 0)],
    )
    return d


def test_labels_import_with_bad_rows_reported_by_file_and_line(db, meta):
    s = import_openimages(db, meta, classes=f"{PERSON},{TORTOISE}")
    assert labels_by_image(db, "test") == {
        IDS[0]: {PERSON: 1, TORTOISE: 0},
        IDS[1]: {PERSON: 0},
        IDS[3]: {TORTOISE: 1},
    }
    assert labels_by_image(db, "validation") == {IDS[4]: {PERSON: 1, TORTOISE: 0}}
    assert image_labels(db, IDS[1]) == {PERSON: 0}
    assert db.execute("SELECT source FROM image_labels WHERE image_id = ?", [IDS[1]]).fetchone()[0] == (
        "crowdsource-verification"
    )
    r = s["image_labels"]["test-annotations-human-imagelabels-boxable.csv"]
    assert (r["rows"], r["labels"], r["written"]) == (9, 5, 4) and r["seconds"] >= 0
    assert s["labels_written"] == 6
    text = "\n".join(s["error_samples"])
    assert "test-annotations-human-imagelabels-boxable.csv:6: Confidence '0.7' is not 0 or 1" in text
    assert "test-annotations-human-imagelabels-boxable.csv:7: bad ImageID 'xyz'" in text
    assert "test-annotations-human-imagelabels-boxable.csv:8: expected 4 columns, got 3" in text
    assert s["errors"] == 3
    lines = [
        r[0] for r in db.execute("SELECT line FROM run_errors WHERE run_id = ? ORDER BY line", [s["run_id"]])
    ]
    assert lines == [6, 7, 8]


def test_reimport_changes_nothing_and_a_changed_label_replaces_the_old(db, meta):
    import_openimages(db, meta, classes=f"{PERSON},{TORTOISE}")
    before = list(db.execute("SELECT * FROM image_labels ORDER BY image_id, label"))
    again = import_openimages(db, meta, classes=f"{PERSON},{TORTOISE}")
    assert again["labels_written"] == 0
    assert list(db.execute("SELECT * FROM image_labels ORDER BY image_id, label")) == before
    # A newer release that flips a label: the stored one follows it.
    write_csv(
        meta / "test-annotations-human-imagelabels-boxable.csv",
        LABELS_HEADER,
        [label_row(IDS[1], PERSON, 1)],
    )
    s = import_openimages(db, meta, classes=PERSON, splits=["test"])
    assert s["labels_written"] == 1
    assert image_labels(db, IDS[1]) == {PERSON: 1}


def test_only_the_wanted_classes_are_imported_face_by_default(db, meta):
    s = import_openimages(db, meta)
    assert labels_by_image(db, "test") == {IDS[1]: {FACE: 1}}
    assert labels_by_image(db, "validation") == {}
    assert s["errors"] == 0  # the bad rows are all of other classes: skipped unread, as for boxes


def test_a_label_file_without_its_columns_is_refused(db, meta):
    write_csv(
        meta / "test-annotations-human-imagelabels-boxable.csv", ["ImageID", "Label"], [[IDS[0], PERSON]]
    )
    with pytest.raises(InvalidInput, match=r"missing column\(s\) LabelName, Confidence"):
        import_openimages(db, meta, classes=PERSON)


def test_the_command_reports_labels(app, meta):
    out = app.test_cli_runner().invoke(
        args=["oiap", "import-openimages", "--meta-dir", str(meta), "--classes", f"{PERSON},{TORTOISE}"]
    )
    assert out.exit_code == 0, out.output
    assert "test-annotations-human-imagelabels-boxable.csv: 9 rows read in " in out.output
    assert "5 verified labels of the classes, 4 added or changed" in out.output
    assert "test-annotations-human-imagelabels-boxable.csv:6: Confidence '0.7'" in out.output


HIERARCHY = {
    "LabelName": "/m/0bl9f",
    "Subcategory": [
        {"LabelName": PERSON, "Subcategory": [{"LabelName": "/m/04yx4"}, {"LabelName": "/m/03bt1vf"}]},
        {
            "LabelName": "/m/0jbk",
            "Subcategory": [{"LabelName": "/m/0bt9lr"}, {"LabelName": TORTOISE}],
            "Part": [{"LabelName": "/m/parts"}],
        },
    ],
}


def test_the_class_hierarchy_is_stored_whole_and_expands_up_and_down(db, meta):
    import json

    from app.images.labels import class_hierarchy

    (meta / "bbox_labels_600_hierarchy.json").write_text(json.dumps(HIERARCHY))
    s = import_openimages(db, meta, classes=PERSON)
    assert s["hierarchy"] == {"file": "bbox_labels_600_hierarchy.json", "edges": 6, "changed": 6}
    ancestors, descendants = class_hierarchy(db)
    # Entity, the root, is no class; Part edges are not is-a.
    assert ancestors == {
        "/m/04yx4": {PERSON},
        "/m/03bt1vf": {PERSON},
        "/m/0bt9lr": {"/m/0jbk"},
        TORTOISE: {"/m/0jbk"},
    }
    assert descendants["/m/0jbk"] == {"/m/0bt9lr", TORTOISE} and "/m/0bl9f" not in descendants
    assert import_openimages(db, meta, classes=PERSON)["hierarchy"]["changed"] == 0
    (meta / "bbox_labels_600_hierarchy.json").write_text('{"Subcategory": []}')
    with pytest.raises(InvalidInput, match="bbox_labels_600_hierarchy.json: a node without a LabelName"):
        import_openimages(db, meta, classes=PERSON)
    (meta / "bbox_labels_600_hierarchy.json").write_text("{not json")
    with pytest.raises(InvalidInput, match="bbox_labels_600_hierarchy.json: not a JSON class hierarchy"):
        import_openimages(db, meta, classes=PERSON)
