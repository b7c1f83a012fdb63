"""Cross-check app/models/metrics_openimages.py against Open Images' reference evaluation code.

The reference is the TensorFlow Object Detection API's OpenImagesDetectionChallengeEvaluator, as the
PyPI package object-detection==0.0.3 ships it (a 2019 copy of tensorflow/models research/). Get the
wheel with pip's own client, without installing it:

    .venv/bin/pip download --no-deps object-detection==0.0.3 -d /tmp/od
    .venv/bin/python scripts/check_openimages_metric.py --wheel /tmp/od/object_detection-0.0.3-py3-none-any.whl

The evaluator's numpy code runs as it is; the two imports it makes only for other paths (tensorflow
for estimator metric ops, label_map_util for label-map files) are replaced by stand-ins, Python 2's
unicode() by one that fails as the reference expects, and NumPy 2's removed aliases (np.float,
np.bool, np.NAN) are put back. Each case of tests/test_metrics_openimages.py, and random ones, is
run through both; the script prints per-class AP and mAP side by side and exits 1 on any difference.

The hierarchy cases expand the ground truth twice: by the reference's
dataset_tools/oid_hierarchical_labels_expansion.py (its Python 2 `.iteritems()` read as `.items()`),
row by row as the challenge's CSVs are expanded, then scored by the reference evaluator; and by ours
(import's read_hierarchy -> images.labels.class_hierarchy -> expand_hierarchy), scored by ours.
"""

import argparse
import atexit
import builtins
import json
import math
import shutil
import sys
import tempfile
import types
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.db import connect, migrate  # noqa: E402
from app.images.labels import class_hierarchy, store_hierarchy  # noqa: E402
from app.imports.openimages_labels import read_hierarchy  # noqa: E402
from app.models.metrics_openimages import ImageTruth, expand_hierarchy, open_images_metric  # noqa: E402

A, B, C = "/m/a", "/m/b", "/m/c"
G1 = (0.0, 0.0, 0.5, 0.5)

# name: (truth {image: ImageTruth}, detections [(image, label, box, score)], classes or None)
CASES = {
    "tp_fp_tp": (
        {"i1": ImageTruth(boxes=[(A, (0.1, 0.1, 0.3, 0.3), False), (A, (0.6, 0.6, 0.9, 0.9), False)])},
        [
            ("i1", A, (0.1, 0.1, 0.3, 0.3), 0.9),
            ("i1", A, (0.4, 0.0, 0.5, 0.05), 0.8),
            ("i1", A, (0.6, 0.6, 0.88, 0.9), 0.7),
        ],
        None,
    ),
    "duplicate_no_fallback": (
        {"i1": ImageTruth(boxes=[(A, (0.1, 0.1, 0.5, 0.5), False), (A, (0.2, 0.1, 0.6, 0.5), False)])},
        [("i1", A, (0.1, 0.1, 0.5, 0.5), 0.9), ("i1", A, (0.14, 0.1, 0.54, 0.5), 0.8)],
        None,
    ),
    "group_of": (
        {"i1": ImageTruth(boxes=[(A, G1, True), (A, (0.6, 0.6, 0.9, 0.9), False)])},
        [
            ("i1", A, (0.5, 0.0, 0.6, 0.1), 0.95),
            ("i1", A, (0.1, 0.1, 0.2, 0.2), 0.9),
            ("i1", A, (0.3, 0.3, 0.4, 0.4), 0.6),
            ("i1", A, (0.4, 0.4, 0.6, 0.6), 0.5),
            ("i1", A, (0.6, 0.6, 0.9, 0.9), 0.7),
        ],
        None,
    ),
    "group_of_missed": (
        {"i1": ImageTruth(boxes=[(A, G1, True), (A, (0.6, 0.6, 0.9, 0.9), False)])},
        [("i1", A, (0.6, 0.6, 0.9, 0.9), 0.7)],
        None,
    ),
    "single_inside_group": (
        {"i1": ImageTruth(boxes=[(A, G1, True), (A, (0.1, 0.1, 0.3, 0.3), False)])},
        [("i1", A, (0.1, 0.1, 0.3, 0.3), 0.8), ("i1", A, (0.35, 0.35, 0.45, 0.45), 0.3)],
        None,
    ),
    "negative_and_unverified": (
        {
            "neg": ImageTruth(labels={B: 0}),
            "pos": ImageTruth(boxes=[(B, (0.2, 0.2, 0.6, 0.6), False)], labels={B: 1}),
            "unverified": ImageTruth(labels={A: 1}, boxes=[(A, (0.1, 0.1, 0.2, 0.2), False)]),
        },
        [
            ("neg", B, (0.1, 0.1, 0.4, 0.4), 0.9),
            ("pos", B, (0.2, 0.2, 0.6, 0.6), 0.8),
            ("unverified", B, (0.0, 0.0, 1.0, 1.0), 0.99),
            ("elsewhere", B, (0.0, 0.0, 1.0, 1.0), 0.97),
            ("unverified", A, (0.1, 0.1, 0.2, 0.2), 0.5),
        ],
        None,
    ),
    "class_without_truth": (
        {"i1": ImageTruth(boxes=[(A, (0.1, 0.1, 0.3, 0.3), False), (C, (0, 0, 1, 1), False)], labels={B: 0})},
        [("i1", A, (0.1, 0.1, 0.3, 0.3), 0.9), ("i1", B, (0.5, 0.5, 0.6, 0.6), 0.9)],
        None,
    ),
    "zero_area": (
        {"i1": ImageTruth(boxes=[(A, (0.1, 0.1, 0.3, 0.3), False)])},
        [("i1", A, (0.2, 0.2, 0.2, 0.4), 0.99), ("i1", A, (0.1, 0.1, 0.3, 0.3), 0.5)],
        None,
    ),
}


def _random_case(seed: int):
    """Many images, three classes, group-of boxes, labels and duplicates at random (distinct scores)."""
    rng = np.random.default_rng(seed)
    truth, dets = {}, []
    scores = iter(rng.permutation(10_000) / 10_000 + 1e-4)

    def box():
        x0, y0 = rng.uniform(0, 0.7, 2)
        w, h = rng.uniform(0.05, 0.3, 2)
        return (float(x0), float(y0), float(x0 + w), float(y0 + h))

    for n in range(40):
        image = f"r{n}"
        t = ImageTruth()
        for label in (A, B, C):
            r = rng.uniform()
            if r < 0.25:
                continue  # unverified
            if r < 0.45:
                t.labels[label] = 0
                continue
            t.labels[label] = 1
            for _ in range(rng.integers(1, 4)):
                t.boxes.append((label, box(), bool(rng.uniform() < 0.2)))
        truth[image] = t
        for _ in range(rng.integers(0, 8)):
            label = (A, B, C)[rng.integers(0, 3)]
            near = [b for lab, b, _g in t.boxes if lab == label]
            if near and rng.uniform() < 0.6:
                x0, y0, x1, y1 = near[rng.integers(0, len(near))]
                d = rng.normal(0, 0.02, 4)
                b = (x0 + d[0], y0 + d[1], x1 + d[2], y1 + d[3])
            else:
                b = box()
            dets.append((image, label, tuple(float(v) for v in b), float(next(scores))))
    return truth, dets, None


# A three-level tree under a virtual root, each class with one parent.
HIERARCHY = {
    "LabelName": "/m/root",
    "Subcategory": [
        {
            "LabelName": A,
            "Subcategory": [{"LabelName": B}, {"LabelName": C, "Subcategory": [{"LabelName": "/m/f"}]}],
        },
        {"LabelName": "/m/d", "Subcategory": [{"LabelName": "/m/e"}]},
    ],
}
TREE_CLASSES = [A, B, C, "/m/f", "/m/d", "/m/e"]


def _random_tree_case(seed: int):
    """Boxes, labels and detections over the tree's classes (parents and leaves alike)."""
    rng = np.random.default_rng(1000 + seed)
    truth, dets = {}, []
    scores = iter(rng.permutation(10_000) / 10_000 + 1e-4)
    for n in range(30):
        image = f"t{n}"
        t = ImageTruth()
        for label in TREE_CLASSES:
            r = rng.uniform()
            if r < 0.5:
                continue
            if r < 0.65:
                t.labels[label] = 0
                continue
            t.labels[label] = 1
            for _ in range(rng.integers(0, 3)):
                x0, y0 = rng.uniform(0, 0.7, 2)
                w, h = rng.uniform(0.05, 0.3, 2)
                t.boxes.append(
                    (label, (float(x0), float(y0), float(x0 + w), float(y0 + h)), bool(rng.uniform() < 0.2))
                )
        truth[image] = t
        for _ in range(rng.integers(0, 8)):
            label = TREE_CLASSES[rng.integers(0, len(TREE_CLASSES))]
            if t.boxes and rng.uniform() < 0.6:
                _l, (x0, y0, x1, y1), _g = t.boxes[rng.integers(0, len(t.boxes))]
                d = rng.normal(0, 0.02, 4)
                b = (x0 + d[0], y0 + d[1], x1 + d[2], y1 + d[3])
            else:
                x0, y0 = rng.uniform(0, 0.7, 2)
                b = (x0, y0, x0 + 0.2, y0 + 0.2)
            dets.append((image, label, tuple(float(v) for v in b), float(next(scores))))
    return truth, dets


def reference_expand(expansion_cls, truth: dict) -> dict:
    """The ground truth expanded by the reference's CSV-row expansion, read back."""
    expander = expansion_cls(HIERARCHY)
    out = {}
    for image, t in truth.items():
        boxes, labels = [], {}
        for label, (x0, y0, x1, y1), g in t.boxes:
            row = f"{image},xclick,{label},1,{x0!r},{x1!r},{y0!r},{y1!r},0,0,{int(g)},0,0"
            for line in expander.expand_boxes_from_csv(row):
                f = line.split(",")
                boxes.append((f[2], (float(f[4]), float(f[6]), float(f[5]), float(f[7])), f[10] == "1"))
        for label, confidence in t.labels.items():
            for line in expander.expand_labels_from_csv(f"{image},verification,{label},{confidence}"):
                f = line.split(",")
                labels[f[2]] = int(f[3])
        out[image] = ImageTruth(boxes=boxes, labels=labels)
    return out


def our_hierarchy(folder: Path):
    """(ancestors, descendants) through the app's own path: the file, the store, the query."""
    path = folder / "bbox_labels_600_hierarchy.json"
    path.write_text(json.dumps(HIERARCHY))
    db = connect(str(folder / "hierarchy.sqlite3"))
    migrate(db)
    store_hierarchy(db, read_hierarchy(path))
    db.conn.commit()
    out = class_hierarchy(db)
    db.close()
    return out


def load_reference_expansion(folder: Path):
    """The reference's OIDHierarchicalLabelsExpansion, its Python 2 dict iteration read as Python 3's."""
    path = folder / "object_detection" / "dataset_tools" / "oid_hierarchical_labels_expansion.py"
    namespace = {"__name__": "oid_hierarchical_labels_expansion"}
    exec(compile(path.read_text().replace(".iteritems()", ".items()"), str(path), "exec"), namespace)
    return namespace["OIDHierarchicalLabelsExpansion"]


def load_reference(wheel: Path):
    """The reference evaluator class from the wheel, with stand-ins for its unused imports."""
    folder = Path(tempfile.mkdtemp(prefix="od-ref-"))
    atexit.register(shutil.rmtree, folder, True)
    with zipfile.ZipFile(wheel) as z:
        z.extractall(folder)
    sys.path.insert(0, str(folder))
    for name, value in (("float", float), ("bool", bool), ("NAN", math.nan)):
        if not hasattr(np, name):
            setattr(np, name, value)
    sys.modules.setdefault("tensorflow", types.ModuleType("tensorflow"))

    def py2_unicode(_s, _encoding):
        raise TypeError  # what Python 3's str(bytes) path does in the reference's try/except TypeError

    builtins.unicode = py2_unicode  # names are str already; the reference's Python 2 call falls through
    lmu = types.ModuleType("object_detection.utils.label_map_util")
    lmu.create_category_index = lambda cats: {c["id"]: c for c in cats}
    sys.modules["object_detection.utils.label_map_util"] = lmu
    import logging

    logging.disable(logging.WARNING)  # "classes have no ground truth" for every absent class
    from object_detection.core import standard_fields as sf
    from object_detection.utils.object_detection_evaluation import OpenImagesDetectionChallengeEvaluator

    return OpenImagesDetectionChallengeEvaluator, sf, folder


def run_reference(evaluator_cls, sf, truth, dets, labels):
    """Per-class AP (label -> float or nan) and mAP from the reference evaluator."""
    ids = {label: i + 1 for i, label in enumerate(labels)}
    ev = evaluator_cls([{"id": i, "name": label} for label, i in ids.items()])

    def yx(b):
        return [b[1], b[0], b[3], b[2]]

    for image, t in truth.items():
        ev.add_single_ground_truth_image_info(
            image,
            {
                sf.InputDataFields.groundtruth_boxes: np.array(
                    [yx(b) for _l, b, _g in t.boxes], float
                ).reshape(-1, 4),
                sf.InputDataFields.groundtruth_classes: np.array([ids[lab] for lab, _b, _g in t.boxes], int),
                sf.InputDataFields.groundtruth_group_of: np.array([g for _l, _b, g in t.boxes], bool),
                sf.InputDataFields.groundtruth_image_classes: np.array([ids[lab] for lab in t.labels], int),
            },
        )
    by_image: dict[str, list] = {}
    for image, label, b, s in dets:
        by_image.setdefault(image, []).append((label, b, s))
    for image, ds in by_image.items():
        ev.add_single_detected_image_info(
            image,
            {
                sf.DetectionResultFields.detection_boxes: np.array([yx(b) for _l, b, _s in ds], float),
                sf.DetectionResultFields.detection_scores: np.array([s for _l, _b, s in ds], float),
                sf.DetectionResultFields.detection_classes: np.array([ids[lab] for lab, _b, _s in ds], int),
            },
        )
    with np.errstate(invalid="ignore", divide="ignore"):  # the reference's CorLoc of classes without truth
        per_class, mean_ap = ev._evaluation.evaluate()[:2]
    return {label: float(per_class[i - 1]) for label, i in ids.items()}, float(mean_ap)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", required=True, type=Path, help="object_detection-0.0.3-py3-none-any.whl")
    parser.add_argument(
        "--random", type=int, default=20, help="Random cases (seeds 0..N-1) besides the hand-made ones."
    )
    args = parser.parse_args(argv)
    if not args.wheel.is_file():
        parser.error(f"--wheel {args.wheel} is not a file; pip download --no-deps object-detection==0.0.3")
    evaluator_cls, sf, folder = load_reference(args.wheel)
    expansion_cls = load_reference_expansion(folder)
    ancestors, descendants = our_hierarchy(folder)
    cases = dict(CASES) | {f"random{seed}": _random_case(seed) for seed in range(args.random)}
    bad = 0
    for name, (truth, dets, _classes) in cases.items():
        labels = sorted({lab for t in truth.values() for lab, _b, _g in t.boxes} | {d[1] for d in dets})
        labels = sorted(set(labels) | {lab for t in truth.values() for lab in t.labels})
        ref_ap, ref_map = run_reference(evaluator_cls, sf, truth, dets, labels)
        ours = open_images_metric(dets, truth)
        our_ap = {lab: ours["classes"].get(lab, {}).get("ap") for lab in labels}
        same = all(
            (math.isnan(ref_ap[lab]) and our_ap[lab] is None)
            or (our_ap[lab] is not None and abs(our_ap[lab] - ref_ap[lab]) < 1e-9)
            for lab in labels
        ) and ((ours["map"] is None and math.isnan(ref_map)) or abs((ours["map"] or 0) - ref_map) < 1e-9)
        bad += not same
        shown = " ".join(
            f"{lab}={our_ap[lab] if our_ap[lab] is None else round(our_ap[lab], 6)}" for lab in labels
        )
        print(
            f"{'ok  ' if same else 'DIFF'} {name:<24} mAP ours {ours['map']!r:<22} reference {ref_map!r:<22} {shown}"
        )
        if not same:
            print(f"     reference per class: {ref_ap}")
    n_cases = len(cases)
    for seed in range(args.random):
        truth, dets = _random_tree_case(seed)
        labels = sorted(set(TREE_CLASSES))
        ref_ap, ref_map = run_reference(
            evaluator_cls, sf, reference_expand(expansion_cls, truth), dets, labels
        )
        ours = open_images_metric(dets, expand_hierarchy(truth, ancestors, descendants))
        our_ap = {lab: ours["classes"].get(lab, {}).get("ap") for lab in labels}
        same = all(
            (math.isnan(ref_ap[lab]) and our_ap[lab] is None)
            or (our_ap[lab] is not None and abs(our_ap[lab] - ref_ap[lab]) < 1e-9)
            for lab in labels
        ) and ((ours["map"] is None and math.isnan(ref_map)) or abs((ours["map"] or 0) - ref_map) < 1e-9)
        bad += not same
        n_cases += 1
        print(
            f"{'ok  ' if same else 'DIFF'} hierarchy{seed:<15} mAP ours {ours['map']!r:<22} reference {ref_map!r}"
        )
        if not same:
            print(f"     ours {our_ap}\n     reference {ref_ap}")
    print(f"{n_cases - bad} of {n_cases} cases agree")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
