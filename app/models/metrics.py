"""Evaluation metrics: box average precision, landmark NME, failure rate, CED AUC. numpy only.

Conventions (as DESIGN.md): NME is the mean point-to-point error divided by the inter-ocular
distance — outer eye corners 36 and 45 for 68 points, eye centres (points 0 and 1) for 5 points.
"""

import numpy as np

from ..annotations.geometry import box_iou
from ..kinds import LANDMARK68_GROUPS


def average_precision(
    detections: list[tuple[str, tuple[float, float, float, float], float]],
    ground_truth: dict[str, list[tuple[float, float, float, float]]],
    iou_threshold: float = 0.5,
) -> dict:
    """AP at an IoU threshold (all-point interpolation, as PASCAL VOC 2010+), with recall and counts.

    detections: (image_id, box, score); ground_truth: image_id -> boxes. Each ground-truth box
    matches at most one detection, taken in order of decreasing score.
    """
    n_gt = sum(len(v) for v in ground_truth.values())
    order = sorted(range(len(detections)), key=lambda i: -detections[i][2])
    matched = {k: np.zeros(len(v), bool) for k, v in ground_truth.items()}
    tp = np.zeros(len(order))
    for rank, i in enumerate(order):
        image_id, box, _ = detections[i]
        gts = ground_truth.get(image_id, [])
        if not gts:
            continue
        ious = box_iou(np.array([box]), np.array(gts))[0]
        ious[matched[image_id]] = -1  # already taken by a higher-scored detection
        j = int(np.argmax(ious))
        if ious[j] >= iou_threshold:
            matched[image_id][j] = True
            tp[rank] = 1
    fp = 1 - tp
    ctp, cfp = np.cumsum(tp), np.cumsum(fp)
    recall = ctp / n_gt if n_gt else np.zeros_like(ctp)
    precision = ctp / np.maximum(ctp + cfp, 1e-12)
    # All-point interpolation: precision made monotone from the right, integrated over recall.
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.where(mrec[1:] != mrec[:-1])[0]
    ap = float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1])) if n_gt else 0.0
    return {
        "ap": ap,
        "recall": float(recall[-1]) if len(recall) else 0.0,
        "true_positives": int(ctp[-1]) if len(ctp) else 0,
        "false_positives": int(cfp[-1]) if len(cfp) else 0,
        "ground_truth": n_gt,
    }


def interocular(gt: np.ndarray) -> np.ndarray:
    """Normalising distance per face: outer eye corners (68 points) or eye centres (5 points)."""
    gt = np.asarray(gt, dtype=np.float64)
    if gt.shape[1] == 68:
        return np.linalg.norm(gt[:, 36] - gt[:, 45], axis=1)
    if gt.shape[1] == 5:
        return np.linalg.norm(gt[:, 0] - gt[:, 1], axis=1)
    raise ValueError(f"NME needs 68 or 5 points, not {gt.shape[1]}")


def nme(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-face NME for predictions and ground truth of shape (N, P, 2) in the same units."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    errors = np.linalg.norm(pred - gt, axis=2).mean(axis=1)
    return errors / interocular(gt)


def failure_rate(nmes: np.ndarray, threshold: float) -> float:
    """Share of faces whose NME is above the threshold."""
    nmes = np.asarray(nmes)
    return float((nmes > threshold).mean()) if len(nmes) else 0.0


def ced_curve(
    nmes: np.ndarray, max_threshold: float = 0.1, steps: int = 101
) -> tuple[np.ndarray, np.ndarray]:
    """The cumulative error distribution: for each threshold, the share of faces at or under it."""
    thresholds = np.linspace(0, max_threshold, steps)
    nmes = np.sort(np.asarray(nmes, dtype=np.float64))
    fraction = np.searchsorted(nmes, thresholds, side="right") / max(len(nmes), 1)
    return thresholds, fraction


def ced_auc(nmes: np.ndarray, max_threshold: float = 0.1) -> float:
    """Area under the CED curve up to max_threshold, normalised to [0, 1] (1 = every face perfect).

    Computed exactly: the CED is a step function, so the area is the mean over faces of
    max(0, max_threshold - nme) / max_threshold.
    """
    nmes = np.asarray(nmes, dtype=np.float64)
    if not len(nmes):
        return 0.0
    return float(np.clip(max_threshold - nmes, 0, None).mean() / max_threshold)


def region_errors(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Mean NME per facial region (jaw, brows, nose, eyes, mouth) for 68-point faces."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    dist = np.linalg.norm(pred - gt, axis=2) / interocular(gt)[:, None]
    regions = {
        "jaw": ["jaw"],
        "brows": ["right_brow", "left_brow"],
        "nose": ["nose_bridge", "nose_base"],
        "eyes": ["right_eye", "left_eye"],
        "mouth": ["outer_lip", "inner_lip"],
    }
    out = {}
    for region, groups in regions.items():
        idx = [i for g in groups for i in LANDMARK68_GROUPS[g][0]]
        out[region] = float(dist[:, idx].mean())
    return out


def landmark_metrics(pred: np.ndarray, gt: np.ndarray) -> dict:
    """Every landmark metric at once, as stored on a model row."""
    per_face = nme(pred, gt)
    result = {
        "nme": float(per_face.mean()) if len(per_face) else None,
        "failure_rate_0.08": failure_rate(per_face, 0.08),
        "failure_rate_0.10": failure_rate(per_face, 0.10),
        "ced_auc_0.10": ced_auc(per_face, 0.10),
        "faces": int(len(per_face)),
    }
    if np.asarray(gt).shape[1] == 68 and len(per_face):
        result["regions"] = region_errors(pred, gt)
    return result
