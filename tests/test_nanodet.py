"""NanoDet-m on onnxruntime: parity with TensorFlow's outputs stored at export, the decode against
NanoDet's own rules on hand-made outputs, people found on real photos, the COCO -> Open Images table."""

import csv
import re

import numpy as np
import pytest

from app.annotations.geometry import iou
from app.annotators import coco_openimages as T
from app.annotators.nanodet import (
    NUM_CLASSES,
    OUTPUTS,
    REG_MAX,
    STRIDES,
    NanoDet,
    decode,
    letterbox,
    to_input,
)
from app.classes import boxable
from app.images.decode import decode as decode_file
from tests.conftest import DEMO_DATA, TEST_DATA

PERSON, TIE = "/m/01g317", "/m/01rkbr"


def hand_boxes(name: str, label: str) -> list[tuple[float, ...]]:
    """The hand-drawn boxes of one class on one dev photo (not the group-of ones), in pixels."""
    with open(TEST_DATA / "objects_dev.csv", newline="") as f:
        return [
            tuple(float(r[k]) for k in ("x0", "y0", "x1", "y1"))
            for r in csv.DictReader(f)
            if r["file"] == name and r["label"] == label and r["group_of"] == "0"
        ]


def test_onnx_matches_tensorflow_on_a_real_photo():
    ref = np.load(TEST_DATA / "nanodet_reference.npz")
    bgr, *_ = letterbox(decode_file(DEMO_DATA / str(ref["photo"])).rgb)
    out = NanoDet().run(to_input(bgr))
    for stride in STRIDES:
        cells = ref[f"cells_{stride}"]
        assert len(cells) == 100
        got_cls = out[f"cls_{stride}"].reshape(-1, NUM_CLASSES)[cells]
        got_box = out[f"box_{stride}"].reshape(-1, 4 * (REG_MAX + 1))[cells]
        np.testing.assert_allclose(got_cls, ref[f"cls_{stride}"], rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(got_box, ref[f"box_{stride}"], rtol=1e-4, atol=1e-3)
    # The photo's people make the best cells score high: the reference is not of an empty scene.
    assert max(ref[f"cls_{s}"].max() for s in STRIDES) > 0.5


def empty_outputs() -> dict[str, np.ndarray]:
    """Net outputs with nothing found: scores 0, flat box distributions."""
    out = {}
    for s in STRIDES:
        n = (416 // s) ** 2
        out[OUTPUTS[s][0]] = np.zeros((1, n, NUM_CLASSES), np.float32)
        out[OUTPUTS[s][1]] = np.zeros((1, n, 4 * (REG_MAX + 1)), np.float32)
    return out


def peaked(bins: tuple[int, int, int, int]) -> np.ndarray:
    """44 box logits whose softmax puts (almost) all weight on one bin per side."""
    x = np.full((4, REG_MAX + 1), -50.0, np.float32)
    for side, b in enumerate(bins):
        x[side, b] = 50.0
    return x.reshape(-1)


def test_decode_follows_nanodets_distribution_regression():
    out = empty_outputs()
    # Stride 8, row 2, col 3: the cell centre is ((3 + 0.5) * 8, (2 + 0.5) * 8) = (28, 20).
    cell = 2 * 52 + 3
    out["cls_8"][0, cell, 0] = 0.9  # person
    out["box_8"][0, cell] = peaked((2, 1, 3, 4))  # left 2, top 1, right 3, bottom 4 bins
    # Stride 32, row 5, col 7, centre (240, 176); flat logits: each side's expectation is 5 bins.
    cell32 = 5 * 13 + 7
    out["cls_32"][0, cell32, 2] = 0.6  # car
    boxes, scores, labels = decode(out, score_threshold=0.35)
    assert labels.tolist() == [0, 2] and np.allclose(scores, [0.9, 0.6])
    np.testing.assert_allclose(boxes[0], [28 - 16, 20 - 8, 28 + 24, 20 + 32], atol=1e-4)
    np.testing.assert_allclose(boxes[1], [240 - 160, 176 - 160, 240 + 160, 176 + 160], atol=1e-3)
    # Under the threshold: nothing.
    assert len(decode(out, score_threshold=0.95)[0]) == 0


def test_nms_is_per_class():
    out = empty_outputs()
    a, b = 10 * 52 + 10, 10 * 52 + 11  # neighbouring cells, boxes of 8 bins a side: IoU about 0.9
    out["cls_8"][0, a, 0] = 0.8
    out["cls_8"][0, b, 0] = 0.7
    out["cls_8"][0, b, 27] = 0.6  # a tie in the same place as the second person box
    for c in (a, b):
        out["box_8"][0, c] = peaked((8, 8, 8, 8))
    boxes, scores, labels = decode(out, score_threshold=0.35)
    assert labels.tolist() == [0, 27] and np.allclose(scores, [0.8, 0.6])
    assert iou(boxes[0], boxes[1]) > 0.8  # overlapping, kept: two classes are two objects


def test_letterbox_centres_and_maps_back():
    rgb = np.zeros((100, 200, 3), np.uint8)
    rgb[:, :, 0] = 255  # red
    bgr, r, ox, oy = letterbox(rgb)
    assert bgr.shape == (416, 416, 3) and r == pytest.approx(416 / 200) and (ox, oy) == (0, 104)
    assert (bgr[104:312, :, 2] == 255).all() and (bgr[:104] == 0).all() and (bgr[312:] == 0).all()


@pytest.mark.parametrize("name", ["2008_002506.jpg", "2008_001322.jpg", "astronaut.png"])
def test_every_hand_drawn_person_is_found_on_real_photos(name):
    found = NanoDet().detect(decode_file(DEMO_DATA / name).rgb)
    people = [box for box, score, mid in found if mid == PERSON]
    assert all(0.35 <= score <= 1 for _b, score, _m in found)
    hand = hand_boxes(name, PERSON)
    assert hand
    for box in hand:
        assert max(iou(box, p) for p in people) >= 0.5, box


def test_classes_keep_only_those_asked():
    rgb = decode_file(DEMO_DATA / "2008_001322.jpg").rgb
    ties = NanoDet(classes=[TIE]).detect(rgb)
    assert ties and {mid for _b, _s, mid in ties} == {TIE}
    (hand,) = hand_boxes("2008_001322.jpg", TIE)
    assert max(iou(hand, b) for b, _s, _m in ties) >= 0.5
    with pytest.raises(ValueError, match=r"/m/0dzct.*Person"):
        NanoDet(classes=["/m/0dzct"])  # Human face: not a COCO class


def test_coco_table_names_open_images_classes():
    names = boxable()  # Open Images' list as the app ships it (app/data/openimages-classes-boxable.csv)
    assert len(names) == 601 and names["/m/01g317"] == "Person"
    assert len(T.COCO_CLASSES) == NUM_CLASSES == 80
    for coco in T.COCO_CLASSES:
        if coco in T.DROPPED:
            assert coco not in T.COCO_TO_OPENIMAGES and T.DROPPED[coco]
            continue
        mid, name = T.COCO_TO_OPENIMAGES[coco]
        assert re.fullmatch(r"/m/0[0-9a-z_]+", mid), coco
        assert names.get(mid) == name, (coco, mid, name, names.get(mid))
    assert set(T.COCO_TO_OPENIMAGES) | set(T.DROPPED) == set(T.COCO_CLASSES)
    mids = [m for m in T.CHANNEL_MIDS if m is not None]
    assert len(mids) == len(set(mids)) == len(T.COCO_TO_OPENIMAGES)  # one class, one channel
    assert T.CHANNEL_MIDS[0] == PERSON and T.CHANNEL_MIDS[27] == TIE and T.MID_CHANNELS[TIE] == 27


def test_stretch_maps_back_like_the_letterbox():
    # A square photo: stretching and letterboxing give the net the same input, so the same boxes.
    rgb = decode_file(DEMO_DATA / "astronaut.png").rgb
    assert NanoDet(keep_ratio=False).detect(rgb) == NanoDet().detect(rgb)
    # A wide one: both find the hand-drawn people, each mapped back with its own scales.
    rgb = decode_file(DEMO_DATA / "2008_002506.jpg").rgb
    for keep in (True, False):
        people = [b for b, _s, mid in NanoDet(keep_ratio=keep).detect(rgb) if mid == PERSON]
        for box in hand_boxes("2008_002506.jpg", PERSON):
            assert max(iou(box, p) for p in people) >= 0.5, (keep, box)
