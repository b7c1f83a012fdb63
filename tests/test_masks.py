"""Mask storage: COCO RLE strings round-trip against pycocotools, and rows store and version them."""

import json
import warnings

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as cocomask

from app.annotations import masks
from app.annotations.rows import annotation_row, get_annotation, insert_annotation, move_at_version
from app.db import immediate
from app.errors import InvalidInput
from app.kinds import get_kind
from app.sets.queries import create_set
from tests.conftest import DEMO_DATA

IMG = "0123456789abcdef"


def _coco_decode(rle: dict) -> np.ndarray:
    with warnings.catch_warnings():
        # pycocotools 2.0.11's decode warns on numpy 2 (why masks.decode does not call it).
        warnings.simplefilter("ignore", DeprecationWarning)
        return cocomask.decode(rle).astype(bool)


def _photo_mask() -> np.ndarray:
    # A real photo's shapes, not a synthetic blob: the bright pixels of a demo photo.
    gray = np.asarray(Image.open(DEMO_DATA / "2008_001322.jpg").convert("L"))
    return gray > 128


def _shapes() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    full = np.ones((5, 7), bool)
    one = np.zeros((1, 1), bool)
    one[0, 0] = True
    return [_photo_mask(), rng.random((37, 53)) > 0.5, np.zeros((4, 9), bool), full, one]


@pytest.mark.parametrize("i", range(5))
def test_encode_is_pycocotools_rle_and_decodes_back(i):
    m = _shapes()[i]
    s = masks.encode(m)
    obj = json.loads(s)
    ref = cocomask.encode(np.asfortranarray(m.astype(np.uint8)))
    # The stored string is exactly COCO's compressed RLE: a COCO file holds the same counts.
    assert obj == {"size": list(m.shape), "counts": ref["counts"].decode("ascii")}
    back = masks.decode(s)
    assert back.dtype == bool and back.shape == m.shape
    assert np.array_equal(back, m)
    assert np.array_equal(_coco_decode(masks.parse(s)), m)
    assert masks.area(s) == int(m.sum()) == int(cocomask.area(ref))
    assert masks.size(s) == m.shape


def test_bbox_is_normalised_like_stored_boxes():
    m = np.zeros((100, 200), bool)
    m[10:30, 50:150] = True  # rows 10..29, columns 50..149
    assert masks.bbox(masks.encode(m)) == pytest.approx((50 / 200, 10 / 100, 150 / 200, 30 / 100))
    assert masks.bbox(masks.encode(np.zeros((3, 3), bool))) is None


def test_iou_matches_pixel_count_and_pycocotools():
    m = _photo_mask()
    shifted = np.roll(m, 15, axis=1)
    expected = (m & shifted).sum() / (m | shifted).sum()
    assert masks.iou(masks.encode(m), masks.encode(shifted)) == pytest.approx(expected)
    assert masks.iou(masks.encode(m), masks.encode(m)) == pytest.approx(1.0)
    with pytest.raises(InvalidInput, match="different sizes"):
        masks.iou(masks.encode(m), masks.encode(m[:-1]))


def test_polygons_rasterise_as_pycocotools_does():
    poly = [10, 10, 90, 10, 90, 60, 10, 60]  # an 80 x 50 rectangle in pixels
    s = masks.from_polygons([poly], 80, 120)
    m = masks.decode(s)
    assert m.shape == (80, 120)
    ref = _coco_decode(cocomask.merge(cocomask.frPyObjects([poly], 80, 120)))
    assert np.array_equal(m, ref)
    assert 80 * 50 <= masks.area(s) <= 81 * 51


@pytest.mark.parametrize(
    "bad, message",
    [
        ("not json", "COCO RLE JSON"),
        ('{"size": [2, 2]}', "exactly the keys"),
        ('{"size": [2], "counts": "04"}', "height, width"),
        ('{"size": [0, 2], "counts": ""}', "height, width"),
        ('{"size": [2, 2], "counts": [0, 4]}', "compressed RLE string"),
        ('{"size": [2, 2], "counts": "05"}', "not height x width = 4"),
        ('{"size": [2, 2], "counts": "0~"}', "alphabet"),
        ('{"size": [2, 2], "counts": "0P"}', "middle of a number"),
    ],
)
def test_parse_rejects_malformed_masks_before_pycocotools(bad, message):
    with pytest.raises(InvalidInput, match=message):
        masks.decode(bad)


def test_object_mask_rows_store_and_version_masks(db):
    assert get_kind("object_mask").n_points == 0
    db.execute(
        "INSERT INTO images (id, split, width, height, created_at) VALUES (?, 'train', 200, 100, 'now')",
        [IMG],
    )
    sid = create_set(db, "masks", "object_mask", "human")
    m = np.zeros((100, 200), bool)
    m[20:60, 40:120] = True
    row = annotation_row(sid, IMG, "object_mask", label="/m/01g317", mask=m)
    # Without a box, the row's box is the mask's.
    assert (row["x0"], row["y0"], row["x1"], row["y1"]) == pytest.approx((0.2, 0.2, 0.6, 0.6))
    with immediate(db):
        aid = insert_annotation(db, row)
    stored = get_annotation(db, aid)
    assert np.array_equal(masks.decode(stored["mask"]), m)
    assert stored["label"] == "/m/01g317"
    v = stored["version"]

    grown = m.copy()
    grown[60:80, 40:120] = True
    box = masks.bbox(masks.encode(grown))
    with immediate(db):
        assert move_at_version(db, aid, v, box, None, mask=grown)
        # A stale version writes nothing (compare-and-swap), as for boxes.
        assert not move_at_version(db, aid, v, box, None, mask=m)
    stored = get_annotation(db, aid)
    assert stored["version"] == v + 1 and np.array_equal(masks.decode(stored["mask"]), grown)
    assert stored["y1"] == pytest.approx(0.8)
    # A move without a mask keeps the row's mask.
    with immediate(db):
        assert move_at_version(db, aid, v + 1, (0.1, 0.1, 0.9, 0.9), None)
    assert np.array_equal(masks.decode(get_annotation(db, aid)["mask"]), grown)


def test_rows_refuse_a_malformed_mask_string(db):
    with pytest.raises(InvalidInput, match="runs cover"):
        annotation_row(1, IMG, "object_mask", (0, 0, 1, 1), mask='{"size": [3, 3], "counts": "04"}')


def test_other_rows_have_no_mask(db):
    db.execute("INSERT INTO images (id, split, created_at) VALUES (?, 'train', 'now')", [IMG])
    sid = create_set(db, "boxes", "object_box", "human")
    with immediate(db):
        aid = insert_annotation(db, annotation_row(sid, IMG, "object_box", (0.1, 0.1, 0.5, 0.5)))
    assert get_annotation(db, aid)["mask"] is None
