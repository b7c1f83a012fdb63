"""import-openimages-masks on files in Google's layout: a segmentation CSV and per-prefix zips of PNGs."""

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from app.annotations import masks
from app.db import immediate
from app.errors import InvalidInput
from app.imports.folder import register_image_file
from app.imports.openimages_masks import import_openimages_masks
from tests.conftest import DEMO_DATA
from tests.person_masks import PERSON, photos

HEADER = "MaskPath,ImageID,LabelName,BoxID,BoxXMin,BoxXMax,BoxYMin,BoxYMax,PredictedIoU,Clicks"
ABSENT = "ffffffffffffffff"  # an image that is not in the store


def _png(mask: np.ndarray, scale: float) -> bytes:
    # Google's mask PNGs are smaller than the photo: the mask at `scale`, nearest neighbour, 0/255.
    h, w = mask.shape
    im = Image.fromarray(mask.astype(np.uint8) * 255).resize(
        (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.NEAREST
    )
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def oi_dir(db, tmp_path):
    """Two demo photos in the store, their person masks as a validation CSV and its mask zips."""
    d = tmp_path / "oi"
    d.mkdir()
    (d / "oidv7-class-descriptions-boxable.csv").write_text(f"LabelName,DisplayName\n{PERSON},Person\n")
    lines = [HEADER]
    members: dict[str, dict[str, bytes]] = {}
    expected = {}
    with immediate(db):
        for p in photos()[:2]:
            image_id, _ = register_image_file(db, p.path, "validation")
            for k, m in enumerate(p.masks):
                box_id = f"{k:08x}"
                name = f"{image_id}_m01g317_{box_id}.png"
                x0, y0, x1, y1 = masks.bbox(m)
                lines.append(
                    f"{name},{image_id},{PERSON},{box_id},{x0},{x1},{y0},{y1},0.87,0.5 0.5 1;0.1 0.2 0"
                )
                members.setdefault(image_id[0], {})[name] = _png(masks.decode(m), 0.25)
                expected[(image_id, box_id)] = m
        # A photo in the store whose zip (validation-masks-a.zip) is not in the folder.
        no_zip, _ = register_image_file(db, DEMO_DATA / "astronaut.png", "validation")
    # Bad rows, each reported with its line: a bad ImageID, a box outside [0, 1], a mask missing from
    # its zip, a zip that is not there, a member that is not a PNG, too few columns.
    first = next(iter(expected))[0]
    lines += [
        f"xyz_m01g317_1.png,xyz,{PERSON},1,0.1,0.2,0.1,0.2,0.9,",
        f"{first}_m01g317_bad1.png,{first},{PERSON},bad1,0.1,1.2,0.1,0.2,0.9,",
        f"{first}_m01g317_gone.png,{first},{PERSON},gone,0.1,0.2,0.1,0.2,0.9,",
        f"{no_zip}_m01g317_x.png,{no_zip},{PERSON},x,0.1,0.2,0.1,0.2,0.9,",
        f"{first}_m01g317_text.png,{first},{PERSON},text,0.1,0.2,0.1,0.2,0.9,",
        f"{first},{first},{PERSON}",
        # An image not in the store: skipped and counted, not an error.
        f"{ABSENT}_m01g317_a.png,{ABSENT},{PERSON},a,0.1,0.2,0.1,0.2,0.9,",
    ]
    members[first[0]][f"{first}_m01g317_text.png"] = b"not a png"
    members.setdefault("f", {})[f"{ABSENT}_m01g317_a.png"] = _png(np.ones((4, 4), bool), 1)
    (d / "validation-annotations-object-segmentation.csv").write_text("\n".join(lines) + "\n")
    for c, files in members.items():
        with zipfile.ZipFile(d / f"validation-masks-{c}.zip", "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in files.items():
                zf.writestr(name, data)
    return d, expected, len(lines)


def test_import_resizes_masks_to_the_image_and_reports_bad_rows(db, oi_dir):
    d, expected, _ = oi_dir
    s = import_openimages_masks(db, {}, d)
    assert list(s["sets"]) == ["openimages-person-masks"]
    r = s["files"]["validation-annotations-object-segmentation.csv"]
    assert r["added"] == s["masks_added"] == len(expected) == 5
    assert r["no_image"] == 1
    reasons = [e.split(": ", 1) for e in s["error_samples"]]
    n = len(expected)
    assert [line for line, _ in reasons] == [
        f"validation-annotations-object-segmentation.csv:{n + k}" for k in (2, 3, 4, 5, 6, 7)
    ]
    text = " | ".join(reason for _, reason in reasons)
    for part in (
        "bad ImageID 'xyz'",
        "not inside [0, 1]",
        "is not in validation-masks-",
        "is not in",
        "PNG",
        "columns",
    ):
        assert part in text
    assert db.execute("SELECT count(*) FROM run_errors WHERE run_id = ?", [s["run_id"]]).fetchone()[0] == 6

    rows = list(db.query("SELECT * FROM annotations WHERE kind = 'object_mask' ORDER BY id"))
    assert len(rows) == 5
    for row in rows:
        flags = json.loads(row["flags"])
        want = expected[(row["image_id"], flags["BoxID"])]
        assert row["label"] == PERSON and flags["PredictedIoU"] == 0.87
        # On the photo's grid although the PNG was a quarter of its side: nearest-neighbour upscaling
        # of a quarter-size mask keeps the shape within a few pixels of the outline.
        assert masks.size(row["mask"]) == masks.size(want)
        assert masks.iou(row["mask"], want) > 0.95
        assert (row["x0"], row["y0"], row["x1"], row["y1"]) == pytest.approx(masks.bbox(want))


def test_second_run_reads_no_png_again_and_adds_nothing(db, oi_dir):
    d, expected, _ = oi_dir
    import_openimages_masks(db, {}, d)
    again = import_openimages_masks(db, {}, d)
    r = again["files"]["validation-annotations-object-segmentation.csv"]
    assert (r["added"], r["present"]) == (0, len(expected))
    n_total = db.execute(
        "SELECT n_total FROM annotation_sets WHERE name = 'openimages-person-masks'"
    ).fetchone()[0]
    assert n_total == len(expected)


def test_classes_and_limit(db, oi_dir):
    d, _, _ = oi_dir
    s = import_openimages_masks(db, {}, d, classes="/m/0dzct")
    # A class without masks in the file gets its (empty) set, named from the MID it is not described by.
    assert s["masks_added"] == 0 and list(s["sets"]) == ["openimages-m-0dzct-masks"]
    s = import_openimages_masks(db, {}, d, classes=PERSON, limit=2)
    assert s["masks_added"] == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"splits": ["test"]}, "no segmentation file"),
        ({"limit": 0}, "--limit"),
        ({"classes": "person"}, "bad class"),
        ({"masks_dir": "/nonexistent"}, "--masks-dir"),
    ],
)
def test_bad_options_are_refused(db, oi_dir, kwargs, message):
    with pytest.raises(InvalidInput, match=message):
        import_openimages_masks(db, {}, oi_dir[0], **kwargs)


def test_cli_imports_and_names_bad_rows(runner, oi_dir):
    d, expected, _ = oi_dir
    result = runner.invoke(args=["oiap", "import-openimages-masks", "--meta-dir", str(d)])
    assert result.exit_code == 0, result.output
    assert f"{len(expected)} masks added" in result.output
    assert "6 bad row(s) skipped" in result.output
    assert "validation-annotations-object-segmentation.csv:" in result.output
    result = runner.invoke(args=["oiap", "import-openimages-masks", "--meta-dir", str(d / "nope")])
    assert result.exit_code != 0 and "is not a folder" in result.output
