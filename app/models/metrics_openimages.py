"""Open Images' detection metric: AP at IoU 0.5 per class, and their mean. numpy only.

The rules are those of Open Images' challenge evaluation (TensorFlow Object Detection API,
`OpenImagesDetectionChallengeEvaluator` over `ObjectDetectionEvaluation` and `PerImageEvaluation`,
group_of_weight 1), written again here because no maintained package on PyPI provides them without
TensorFlow (checked: `object-detection` 0.0.3, a 2019 copy of the API that needs TensorFlow and
NumPy < 1.24 (np.float); `tf-models-official` does not ship research/object_detection; pycocotools
and faster-coco-eval score COCO, with no group-of boxes nor image-level labels):

1. Which detections count, per image: only those of a class *verified* on the image, i.e. with a
   positive or negative human image-level label, or with a ground-truth box. Others are ignored
   (an image nobody checked for cats says nothing about a cat detection there).
2. Per image and class, detections in decreasing score order; boxes with no area are dropped.
   No ground-truth box of the class (a verified-absent class): every detection is a false positive.
3. Each detection takes the non-group-of box it overlaps most (IoU); at IoU >= 0.5 it is a true
   positive if that box is not yet taken, else a false positive (it does not fall back on the
   second-best box, as in PASCAL VOC's devkit).
4. Detections left over are matched to group-of boxes by IoA (the share of the detection inside the
   box) >= 0.5, each to the group-of box holding most of it: all of them are ignored, and each
   group-of box so hit counts once as a true positive with the best score among them. A group-of box
   nobody hit is one missed object (group_of_weight 1).
5. Per class over all images: precision and recall in decreasing score order, precision made
   monotone from the right, AP = the area under that curve (VOCdevkit's all-point definition).
   A class without ground truth has no AP; mAP is the mean over classes that have one.

Ties in score are taken in input order (the reference sorts with an unstable sort; only the order
of tied detections can differ).

Open Images' class hierarchy is applied to the ground truth before scoring, as its challenge
evaluation does (oid_hierarchical_labels_expansion.py): `expand_hierarchy` gives each box a copy for
every ancestor class (a box of Man is also one of Person), a positive image-level label every
ancestor, a negative one every descendant (no Animal: no Dog either). Detections are not expanded: a
model that means Person says Person. One difference: a class reached twice through two parents gets
one copy of the box, not two (the reference's duplicate could never be matched and would only lower
recall).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ..annotations.geometry import box_iou

IOU_THRESHOLD = 0.5
GROUP_OF_WEIGHT = 1.0

Box = tuple[float, float, float, float]  # x0, y0, x1, y1


@dataclass
class ImageTruth:
    """One image's ground truth: boxes (label, box, is_group_of) and verified labels {label: 0 or 1}."""

    boxes: list[tuple[str, Box, bool]] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)

    def verified(self) -> set[str]:
        """Classes whose detections count on this image: an image-level label or a box."""
        return set(self.labels) | {label for label, _box, _g in self.boxes}


def expand_hierarchy(
    truth: Mapping[str, ImageTruth], ancestors: Mapping[str, set[str]], descendants: Mapping[str, set[str]]
) -> dict[str, ImageTruth]:
    """The ground truth with Open Images' class hierarchy applied (module docstring); boxes and labels
    keep their order, the copies follow."""
    out = {}
    for image_id, t in truth.items():
        boxes = list(t.boxes)
        have = {(label, box, g) for label, box, g in boxes}
        for label, box, g in t.boxes:
            for a in sorted(ancestors.get(label, ())):
                if (a, box, g) not in have:
                    have.add((a, box, g))
                    boxes.append((a, box, g))
        labels = dict(t.labels)
        for label, confidence in t.labels.items():
            for other in sorted((ancestors if confidence else descendants).get(label, ())):
                labels.setdefault(other, confidence)
        out[image_id] = ImageTruth(boxes=boxes, labels=labels)
    return out


def _ioa(box: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Intersection over the detection's area, against each group-of box."""
    ix0 = np.maximum(box[0], groups[:, 0])
    iy0 = np.maximum(box[1], groups[:, 1])
    ix1 = np.minimum(box[2], groups[:, 2])
    iy1 = np.minimum(box[3], groups[:, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    return inter / area


def image_class_tp_fp(
    detections: list[tuple[Box, float]],
    boxes: list[Box],
    group_of: list[bool],
    iou_threshold: float = IOU_THRESHOLD,
    group_of_weight: float = GROUP_OF_WEIGHT,
) -> tuple[list[tuple[float, float]], int]:
    """One image, one class: ([(score, true-positive weight)], detections ignored inside group-of boxes).

    A weight of 0 is a false positive; 1 a true positive; group_of_weight a group-of box's one hit.
    """
    dets = [(np.asarray(b, dtype=np.float64), float(s)) for b, s in detections]
    dets = [(b, s) for b, s in dets if b[2] > b[0] and b[3] > b[1]]
    # Stable: equal scores keep their input order.
    dets.sort(key=lambda d: -d[1])
    if not boxes:
        return [(s, 0.0) for _b, s in dets], 0
    all_boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    is_group = np.asarray(group_of, dtype=bool)
    singles, groups = all_boxes[~is_group], all_boxes[is_group]
    taken = np.zeros(len(singles), dtype=bool)
    tp = np.zeros(len(dets), dtype=bool)
    for i, (b, _s) in enumerate(dets):
        if not len(singles):
            break
        overlaps = box_iou(b, singles)[0]
        j = int(np.argmax(overlaps))
        if overlaps[j] >= iou_threshold and not taken[j]:
            tp[i] = taken[j] = True
    in_group = np.zeros(len(dets), dtype=bool)
    group_score = np.zeros(len(groups))
    if len(groups):
        for i, (b, s) in enumerate(dets):
            if tp[i]:
                continue
            ioa = _ioa(b, groups)
            j = int(np.argmax(ioa))
            if ioa[j] >= iou_threshold:
                in_group[i] = True
                group_score[j] = max(group_score[j], s)
    out = [(s, 1.0 if tp[i] else 0.0) for i, (_b, s) in enumerate(dets) if not in_group[i]]
    # As the reference: a group-of box counts when hit with a score above 0 (and a weight above 0).
    hit = [float(g) for g in group_score if g > 0] if group_of_weight > 0 else []
    out += [(g, group_of_weight) for g in hit]
    return out, int(in_group.sum()) - len(hit)


def average_precision(scored: list[tuple[float, float]], n_truth: float) -> float | None:
    """AP from (score, true-positive weight) pairs over n_truth objects; None without ground truth."""
    if n_truth <= 0:
        return None
    if not scored:
        return 0.0
    order = sorted(range(len(scored)), key=lambda i: -scored[i][0])
    weights = np.array([scored[i][1] for i in order], dtype=np.float64)
    ctp = np.cumsum(weights)
    cfp = np.cumsum(weights <= 0)
    precision = ctp / (ctp + cfp)
    recall = ctp / n_truth
    rec = np.concatenate([[0.0], recall, [1.0]])
    prec = np.concatenate([[0.0], precision, [0.0]])
    prec = np.maximum.accumulate(prec[::-1])[::-1]
    steps = np.where(rec[1:] != rec[:-1])[0] + 1
    return float(np.sum((rec[steps] - rec[steps - 1]) * prec[steps]))


def open_images_metric(
    detections: Iterable[tuple[str, str, Box, float]],
    truth: Mapping[str, ImageTruth],
    classes: Iterable[str] | None = None,
    iou_threshold: float = IOU_THRESHOLD,
    group_of_weight: float = GROUP_OF_WEIGHT,
) -> dict:
    """AP@iou_threshold per class and mAP, by Open Images' rules (module docstring).

    detections: (image_id, label, box, score), boxes as (x0, y0, x1, y1) in any one unit per image;
    truth: image_id -> ImageTruth; classes: only these classes (None: every class with ground truth
    or a counted detection). Returns {"map", "classes": {label: {...}}, "detections", "ignored_unverified",
    "ignored_group_of", "images"}.
    """
    wanted = set(classes) if classes is not None else None
    per_image: dict[tuple[str, str], list[tuple[Box, float]]] = {}
    n_dets = ignored_unverified = 0
    verified = {image_id: t.verified() for image_id, t in truth.items()}
    for image_id, label, box, score in detections:
        if wanted is not None and label not in wanted:
            continue
        n_dets += 1
        if label not in verified.get(image_id, ()):
            ignored_unverified += 1
            continue
        per_image.setdefault((image_id, label), []).append((box, score))
    n_truth: dict[str, float] = {}
    for t in truth.values():
        for label, _box, g in t.boxes:
            if wanted is None or label in wanted:
                n_truth[label] = n_truth.get(label, 0.0) + (group_of_weight if g else 1.0)
    scored: dict[str, list[tuple[float, float]]] = {}
    ignored_group: dict[str, int] = {}
    for (image_id, label), dets in per_image.items():
        mine = [(b, g) for lab, b, g in truth[image_id].boxes if lab == label]
        pairs, ignored = image_class_tp_fp(
            dets, [b for b, _g in mine], [g for _b, g in mine], iou_threshold, group_of_weight
        )
        scored.setdefault(label, []).extend(pairs)
        ignored_group[label] = ignored_group.get(label, 0) + ignored
    labels = sorted(set(n_truth) | set(scored) if wanted is None else wanted)
    per_class = {}
    for label in labels:
        pairs = scored.get(label, [])
        tp = sum(w for _s, w in pairs)
        per_class[label] = {
            "ap": average_precision(pairs, n_truth.get(label, 0.0)),
            "ground_truth": n_truth.get(label, 0.0),
            "true_positives": tp,
            "false_positives": sum(1 for _s, w in pairs if w <= 0),
            "recall": tp / n_truth[label] if n_truth.get(label) else None,
            "ignored_group_of": ignored_group.get(label, 0),
        }
    aps = [c["ap"] for c in per_class.values() if c["ap"] is not None]
    return {
        "map": float(np.mean(aps)) if aps else None,
        "classes": per_class,
        "detections": n_dets,
        "ignored_unverified": ignored_unverified,
        "ignored_group_of": sum(ignored_group.values()),
        "images": len(truth),
    }
