"""Metric functions against values worked out by hand."""

import numpy as np
import pytest

from app.annotations.geometry import box_iou
from app.models.metrics import (
    average_precision,
    ced_auc,
    ced_curve,
    failure_rate,
    landmark_metrics,
    nme,
)


def test_box_iou_by_hand():
    # Two 2x2 squares overlapping in a 1x2 strip: inter 2, union 6.
    assert box_iou([[0, 0, 2, 2]], [[1, 0, 3, 2]])[0, 0] == pytest.approx(2 / 6)
    assert box_iou([[0, 0, 1, 1]], [[2, 2, 3, 3]])[0, 0] == 0


def test_average_precision_by_hand():
    gt = {"a": [(0, 0, 10, 10)], "b": [(0, 0, 10, 10), (20, 20, 30, 30)]}
    dets = [
        ("a", (0, 0, 10, 10), 0.9),  # TP  -> P 1/1, R 1/3
        ("b", (50, 50, 60, 60), 0.8),  # FP -> P 1/2
        ("b", (0, 0, 10, 11), 0.7),  # TP (IoU 100/110) -> P 2/3, R 2/3
        ("a", (0, 0, 10, 10), 0.6),  # FP: duplicate of a matched box
    ]
    r = average_precision(dets, gt)
    # Interpolated precision: 1 up to R=1/3, 2/3 up to R=2/3, nothing after.
    assert r["ap"] == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3)
    assert r["recall"] == pytest.approx(2 / 3)
    assert (r["true_positives"], r["false_positives"], r["ground_truth"]) == (2, 2, 3)


def test_nme_uses_outer_eye_corners():
    gt = np.zeros((1, 68, 2))
    gt[0, 45] = [10, 0]  # inter-ocular distance 10 (point 36 at the origin)
    pred = gt.copy()
    pred[0, :, 1] += 1  # every point 1 pixel off
    assert nme(pred, gt)[0] == pytest.approx(0.1)


def test_nme_for_five_points_uses_eye_centres():
    gt = np.array([[[0, 0], [4, 0], [2, 2], [0, 4], [4, 4]]], float)
    pred = gt + [0, 2]
    assert nme(pred, gt)[0] == pytest.approx(0.5)


def test_failure_rate_and_ced_by_hand():
    nmes = np.array([0.02, 0.05, 0.09, 0.2])
    assert failure_rate(nmes, 0.08) == 0.5
    assert failure_rate(nmes, 0.10) == 0.25
    # AUC up to 0.1: mean of (0.08, 0.05, 0.01, 0) / 0.1 = 0.35
    assert ced_auc(nmes, 0.1) == pytest.approx(0.35)
    thresholds, fraction = ced_curve(nmes, 0.1, 11)
    assert fraction[thresholds.searchsorted(0.05)] == 0.5
    # The exact AUC agrees with integrating the sampled curve finely.
    t, f = ced_curve(nmes, 0.1, 100001)
    assert np.trapezoid(f, t) / 0.1 == pytest.approx(0.35, abs=1e-4)


def test_landmark_metrics_regions():
    gt = np.random.default_rng(0).uniform(0, 100, (3, 68, 2))
    pred = gt.copy()
    pred[:, 48:68] += 3  # only the mouth is off
    m = landmark_metrics(pred, gt)
    assert m["regions"]["jaw"] == 0 and m["regions"]["mouth"] > 0
    assert m["faces"] == 3
