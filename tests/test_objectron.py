"""MediaPipe Objectron's SSD detector (app/annotators/objectron.py) on real photos.

tests/data/objectron_reference.npz holds one demo photo stretched to 300x300 and what LiteRT computed on
it from the original .tflite (scripts/export_objectron.py wrote it); the committed ONNX must give the same.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from app.annotators import objectron
from app.annotators.objectron import (
    ANCHORS,
    MODEL_PATH,
    OIDV4_LABELS,
    OIDV4_MIDS,
    ObjectronDetector,
    decode_boxes,
    encode_boxes,
    model_labels,
    nms,
    ssd_anchors,
)
from app.images.decode import load_rgb

DATA = Path(__file__).parent / "data"
DEMO = Path(__file__).resolve().parent.parent / "app" / "demo_data"
PERSON = "/m/01g317"


def test_anchor_count_and_layout():
    # 19x19 cells x 3 (the reduced lowest layer) + (10x10 + 5x5 + 3x3 + 2x2 + 1x1) x 6 = 1083 + 834.
    assert ANCHORS.shape == (1917, 4)
    assert 19 * 19 * 3 + (100 + 25 + 9 + 4 + 1) * 6 == 1917


def test_anchor_values_by_hand():
    # SsdAnchorsCalculator: scale_i = 0.2 + 0.75 * i / 5; h = scale / sqrt(r), w = scale * sqrt(r);
    # centres (cell + 0.5) / feature map size, with feature map size ceil(300 / stride).
    y, x, h, w = ANCHORS[0]
    assert (y, x) == pytest.approx((0.5 / 19, 0.5 / 19)) and (h, w) == pytest.approx((0.1, 0.1))
    # lowest layer, second anchor: ratio 2 at scale 0.2
    assert ANCHORS[1, 2:] == pytest.approx((0.2 / math.sqrt(2), 0.2 * math.sqrt(2)), rel=1e-6)
    # lowest layer, cell (0, 1)
    assert ANCHORS[3, :2] == pytest.approx((0.5 / 19, 1.5 / 19))
    # second layer (stride 32, 10x10) starts at 1083: ratio 1 at scale 0.35, centre (0.05, 0.05)
    assert ANCHORS[1083] == pytest.approx((0.05, 0.05, 0.35, 0.35), rel=1e-6)
    # ... its sixth anchor is the interpolated one: sqrt(0.35 * 0.5), ratio 1
    assert ANCHORS[1088, 2:] == pytest.approx((math.sqrt(0.35 * 0.5),) * 2, rel=1e-6)
    # ratio 0.3333 (third from last of the six): h = s / sqrt(0.3333)
    assert ANCHORS[1087, 2] == pytest.approx(0.35 / math.sqrt(0.3333), rel=1e-6)
    # the last: 1x1 map, scale 0.95, interpolated with 1.0
    assert ANCHORS[-1] == pytest.approx((0.5, 0.5, math.sqrt(0.95), math.sqrt(0.95)), rel=1e-6)


def test_anchors_follow_the_options():
    # Without the reduced lowest layer every layer has 5 ratios + 1 interpolated anchor.
    opts = objectron.ANCHOR_OPTIONS | {"reduce_boxes_in_lowest_layer": False}
    assert len(ssd_anchors(opts)) == (361 + 100 + 25 + 9 + 4 + 1) * 6


def test_box_decoding_round_trip():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(1917, 4)).astype(np.float32)
    boxes = decode_boxes(raw)
    np.testing.assert_allclose(encode_boxes(boxes), raw, atol=1e-3)
    # A zero encoding is the anchor itself.
    b = decode_boxes(np.zeros((1917, 4), np.float32))[1083]
    np.testing.assert_allclose(b, [0.05 - 0.175, 0.05 - 0.175, 0.05 + 0.175, 0.05 + 0.175], atol=1e-6)


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], float)
    assert nms(boxes, np.array([0.5, 0.9, 0.7]), 0.4, 10) == [1, 2]
    assert nms(boxes, np.array([0.5, 0.9, 0.7]), 0.4, 1) == [1]


def test_label_table():
    assert len(OIDV4_LABELS) == 24 and OIDV4_LABELS[0] == "???"
    assert set(OIDV4_MIDS) == set(OIDV4_LABELS[1:])
    # A few rows of Open Images' class-descriptions-boxable.csv, read by hand.
    assert OIDV4_MIDS["Person"] == "/m/01g317"
    assert OIDV4_MIDS["Car"] == "/m/0k4j"
    assert OIDV4_MIDS["Dog"] == "/m/0bt9lr"
    assert OIDV4_MIDS["Computer mouse"] == "/m/020lf"
    assert len(set(OIDV4_MIDS.values())) == 23
    # The model file carries the same classes in output order.
    assert model_labels(MODEL_PATH) == [""] + [OIDV4_MIDS[n] for n in OIDV4_LABELS[1:]]


def test_onnx_matches_litert_reference():
    ref = np.load(DATA / "objectron_reference.npz")
    det = ObjectronDetector()
    boxes, logits = det.raw(objectron.to_input(ref["image"]))
    np.testing.assert_allclose(boxes[0], ref["box_encodings"], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(logits[0], ref["class_predictions"], rtol=1e-4, atol=1e-3)


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_detects_the_astronaut():
    # The astronaut (skimage's astronaut.png, 512x512): drawn by hand from her hair to the bottom edge.
    hand = (18, 14, 365, 512)
    dets = ObjectronDetector().detect(load_rgb(DEMO / "astronaut.png"))
    people = [(box, score) for box, score, mid in dets if mid == PERSON]
    assert people, dets
    box, score = people[0]
    assert _iou(box, hand) > 0.8 and score > 0.5
    assert all(0 <= v <= 512 for v in box)


def test_classes_filter_and_batch():
    img = load_rgb(DEMO / "astronaut.png")
    only_cars = ObjectronDetector(classes=["/m/0k4j"]).detect(img)
    assert all(mid == "/m/0k4j" for _, _, mid in only_cars)
    det = ObjectronDetector()
    other = load_rgb(DEMO / "2007_007763.jpg")
    batch = det.detect_batch([img, other])
    assert len(batch) == 2
    for got, one in zip(batch, [det.detect(img), det.detect(other)], strict=True):
        assert [m for _, _, m in got] == [m for _, _, m in one]
        np.testing.assert_allclose([b for b, _, _ in got], [b for b, _, _ in one], atol=1e-3)
    assert det.detect_batch([]) == []


def test_bulk_annotate_with_objectron(app, db, tmp_path, runner):
    from tests.test_bulk import set_rows
    from tests.test_bulk_objects import photo_store

    ids = photo_store(db, tmp_path, ["astronaut.png", "2007_007763.jpg"])
    args = ["oiap", "bulk-annotate", "--kind", "object_box", "--model", "objectron"]
    r = runner.invoke(args=[*args, "--classes", PERSON, "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["status"] == "done" and s["images"] == 2
    assert s["sets"]["box"]["name"].startswith("objectron-object_box-")
    rows = set_rows(db, s["sets"]["box"]["id"])
    assert rows and {r["label"] for r in rows} == {PERSON}
    assert all(r["score"] >= objectron.SCORE_THRESHOLD for r in rows)
    astronaut = [r for r in rows if r["image_id"] == ids["astronaut.png"]]
    hand = (18 / 512, 14 / 512, 365 / 512, 1.0)
    assert any(_iou((r["x0"], r["y0"], r["x1"], r["y1"]), hand) > 0.8 for r in astronaut)
    # A class the model does not have is refused by name (Tie: NanoDet's COCO has it, Objectron not).
    r = runner.invoke(args=[*args, "--classes", "/m/01rkbr"])
    assert r.exit_code != 0 and "/m/01rkbr not among the classes" in r.output
