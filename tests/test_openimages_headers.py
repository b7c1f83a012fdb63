"""The Open Images importers' shared CSV reading (app/imports/openimages_rows.py), through each importer:
a header without the columns it needs is refused by name, a row the csv module cannot parse is reported
with its line and skipped, and a file that is not UTF-8 is refused whole."""

import pytest

from app.errors import InvalidInput
from app.imports.openimages import import_openimages
from app.imports.openimages_masks import import_openimages_masks
from tests.openimages_csv import BBOX_HEADER_V4, FACE, IMAGE_HEADER, PERSON, bbox_row, image_row, write_csv

IMAGE_ID = "00000000000000a0"
MASK_HEADER = "MaskPath,ImageID,LabelName,BoxID,BoxXMin,BoxXMax,BoxYMin,BoxYMax,PredictedIoU,Clicks"
# Longer than the csv module's default field limit (131072 characters): csv.Error on that row.
TOO_LONG = "x" * 200_000


def _meta(tmp_path, image_header=IMAGE_HEADER, bbox_header=BBOX_HEADER_V4):
    d = tmp_path / "meta"
    d.mkdir()
    write_csv(d / "validation-images-with-rotation.csv", image_header, [image_row(IMAGE_ID, "validation")])
    write_csv(d / "validation-annotations-bbox.csv", bbox_header, [bbox_row(IMAGE_ID, FACE, xclick=False)])
    return d


def test_a_box_file_without_a_box_column_is_refused_by_name(db, tmp_path):
    d = _meta(tmp_path, bbox_header=[c for c in BBOX_HEADER_V4 if c != "XMax"])
    with pytest.raises(
        InvalidInput, match=r"validation-annotations-bbox.csv: missing column\(s\) XMax; is this an Open"
    ):
        import_openimages(db, d)


def test_an_image_list_without_imageid_is_refused_by_name(db, tmp_path):
    d = _meta(tmp_path, image_header=["Id", *IMAGE_HEADER[1:]])
    with pytest.raises(InvalidInput, match=r"images-with-rotation.csv: missing column\(s\) ImageID"):
        import_openimages(db, d)


def test_a_box_header_that_is_not_utf8_is_refused(db, tmp_path):
    d = _meta(tmp_path)
    path = d / "validation-annotations-bbox.csv"
    path.write_bytes(b"ImageID,Source,LabelName,\xff\xfe" + path.read_bytes().split(b"\n", 1)[1])
    with pytest.raises(InvalidInput, match="the header is not UTF-8 text"):
        import_openimages(db, d)


def test_an_unparseable_image_row_is_reported_with_its_line_and_skipped(db, tmp_path):
    d = _meta(tmp_path)
    path = d / "validation-images-with-rotation.csv"
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{TOO_LONG}\n")
    s = import_openimages(db, d)
    assert s["images_added"] == 1
    assert any(e.startswith(f"{path.name}:3: unreadable CSV row") for e in s["error_samples"]), s


def _masks(tmp_path, text: bytes):
    d = tmp_path / "oi"
    d.mkdir()
    (d / "validation-annotations-object-segmentation.csv").write_bytes(text)
    return d


@pytest.mark.parametrize(
    "text, message",
    [
        (b"", "empty file; expected the header MaskPath,ImageID"),
        (
            MASK_HEADER.replace(",BoxID", "").encode() + b"\n",
            r"missing column\(s\) BoxID; is this \*-annotations-object-segmentation.csv\?",
        ),
        (MASK_HEADER.encode() + b"\nab\xff\n", "not UTF-8 text near line"),
    ],
)
def test_a_bad_mask_file_is_refused_by_name(db, tmp_path, text, message):
    with pytest.raises(InvalidInput, match=message):
        import_openimages_masks(db, {}, _masks(tmp_path, text))


def test_an_unparseable_mask_row_is_reported_with_its_line_and_skipped(db, tmp_path):
    absent = "ffffffffffffffff"  # not in the store: skipped and counted, after the bad row
    text = f"{MASK_HEADER}\n{TOO_LONG}\n{absent}_m.png,{absent},{PERSON},a,0.1,0.2,0.1,0.2,0.9,\n"
    s = import_openimages_masks(db, {}, _masks(tmp_path, text.encode()))
    assert s["error_samples"] == [
        "validation-annotations-object-segmentation.csv:2: unreadable CSV row: field larger than field limit (131072)"
    ]
    assert s["files"]["validation-annotations-object-segmentation.csv"]["no_image"] == 1
