"""AP@0.5 per class of an object detector on the dev photos' hand-drawn boxes (tests/data/objects_dev.csv).

The ten photos of app/demo_data (dlib's examples: PASCAL VOC 2011 Flickr photos, and scikit-image's
astronaut) with every Person and every Tie boxed by hand (tests/data/README.md says how). Each photo
is taken as verified for both classes (a tie detection on a photo without a tie is a false positive);
rows with group_of = 1 are crowds too small or blurred to box one by one (and a shelf of figurines),
Open Images' IsGroupOf. The detector runs at a low score threshold (NanoDet's own evaluation keeps
boxes over 0.05) so that the precision-recall curve is whole.

Metric: Open Images' (app/models/metrics_openimages.py, group-of boxes and verified labels) when this
tree has it; else pycocotools' COCO AP at IoU 0.5 with the group-of rows as iscrowd regions (a
detection inside one is ignored rather than counted), and the output says which was used.

    python scripts/eval_objects.py                      # NanoDet, all ten photos
    python scripts/eval_objects.py --split testing      # only faces-dev's testing photos
"""

import argparse
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TRUTH = ROOT / "tests" / "data" / "objects_dev.csv"
PHOTOS = ROOT / "app" / "demo_data"
CLASSES = {"/m/01g317": "Person", "/m/01rkbr": "Tie"}


def read_truth(path: Path = TRUTH) -> dict[str, list[tuple[str, tuple[float, ...], bool]]]:
    """{file: [(MID, (x0, y0, x1, y1) pixels, group_of)]} from the hand-drawn CSV."""
    out: dict[str, list] = {}
    with open(path, newline="") as f:
        for n, row in enumerate(csv.DictReader(f), 2):
            try:
                box = tuple(float(row[k]) for k in ("x0", "y0", "x1", "y1"))
                out.setdefault(row["file"], []).append((row["label"], box, row["group_of"] == "1"))
            except (KeyError, ValueError) as e:
                raise SystemExit(
                    f"{path}:{n}: bad row ({e}); columns file,label,name,x0,y0,x1,y1,group_of"
                ) from None
    return out


def split_files(split: str) -> set[str] | None:
    """The photos of faces-dev's training or testing file (None: all)."""
    if split == "all":
        return None
    import re

    text = (PHOTOS / f"{split}.xml").read_text()
    return set(re.findall(r"file='([^']+)'", text))


def detect_all(files, threshold: float, keep_ratio: bool = True) -> list[tuple[str, str, tuple, float]]:
    """(file, MID, box px, score) of NanoDet on each photo, every class."""
    from app.annotators.nanodet import NanoDet
    from app.images.decode import decode

    det = NanoDet(score_threshold=threshold, keep_ratio=keep_ratio)
    out = []
    for name in files:
        for box, score, mid in det.detect(decode(PHOTOS / name).rgb):
            out.append((name, mid, box, score))
    return out


def openimages_ap(dets, truth, classes) -> dict:
    """Per class AP by Open Images' rules (o20c's module)."""
    from app.models.metrics_openimages import ImageTruth, open_images_metric

    # Every photo was checked for every class: present ones are positive labels, the others negative.
    images = {}
    for name, rows in truth.items():
        present = {m for m, _b, _g in rows}
        images[name] = ImageTruth(boxes=list(rows), labels={m: int(m in present) for m in classes})
    r = open_images_metric(dets, images, classes=classes)
    return {
        m: (c["ap"], c["ground_truth"], c["true_positives"], c["false_positives"])
        for m, c in r["classes"].items()
    }


def coco_ap(dets, truth, classes) -> dict:
    """Per class AP at IoU 0.5 by pycocotools (group-of rows as iscrowd regions)."""
    import contextlib
    import io

    import numpy as np
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    files = sorted(truth)
    img_id = {f: k + 1 for k, f in enumerate(files)}
    cat_id = {m: k + 1 for k, m in enumerate(classes)}
    anns = []
    for f in files:
        for mid, (x0, y0, x1, y1), group in truth[f]:
            if mid in cat_id:
                w, h = x1 - x0, y1 - y0
                anns.append(
                    {"id": len(anns) + 1, "image_id": img_id[f], "category_id": cat_id[mid],
                     "bbox": [x0, y0, w, h], "area": w * h, "iscrowd": int(group)}
                )  # fmt: skip
    gt = COCO()
    gt.dataset = {
        "images": [{"id": i} for i in img_id.values()],
        "categories": [{"id": c} for c in cat_id.values()],
        "annotations": anns,
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        res = gt.loadRes(
            [
                {
                    "image_id": img_id[f],
                    "category_id": cat_id[m],
                    "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                    "score": s,
                }
                for f, m, b, s in dets
                if m in cat_id and f in img_id
            ]  # fmt: skip
        )
        ev = COCOeval(gt, res, "bbox")
        ev.params.iouThrs = np.array([0.5])
        ev.params.maxDets = [100, 100, 100]
        ev.evaluate()
        ev.accumulate()
    out = {}
    for mid, c in cat_id.items():
        p = ev.eval["precision"][0, :, c - 1, 0, -1]  # IoU 0.5, all recall points, this class, all areas
        n = sum(1 for f in files for m, _b, g in truth[f] if m == mid and not g)
        out[mid] = (float(p[p > -1].mean()) if (p > -1).any() else None, n, None, None)
    return out


def main(argv=None) -> int:
    """Detect on the dev photos and print AP@0.5 per class."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--split", choices=["all", "training", "testing"], default="all", help="which photos")
    p.add_argument("--threshold", type=float, default=None, help="score threshold (default: EVAL_THRESHOLD)")
    p.add_argument(
        "--stretch",
        action="store_true",
        help="resize to 416x416 without keeping the aspect (not the default)",
    )
    p.add_argument("--metric", choices=["auto", "openimages", "coco"], default="auto", help="which AP")
    args = p.parse_args(argv)
    from app.annotators.nanodet import EVAL_THRESHOLD

    truth = read_truth()
    keep = split_files(args.split)
    truth = {f: rows for f, rows in truth.items() if keep is None or f in keep}
    threshold = EVAL_THRESHOLD if args.threshold is None else args.threshold
    dets = detect_all(sorted(truth), threshold, keep_ratio=not args.stretch)
    metric = args.metric
    if metric == "auto":
        try:
            import app.models.metrics_openimages  # noqa: F401

            metric = "openimages"
        except ImportError:
            metric = "coco"
    classes = list(CLASSES)
    aps = openimages_ap(dets, truth, classes) if metric == "openimages" else coco_ap(dets, truth, classes)
    what = (
        "Open Images' metric (app/models/metrics_openimages.py)"
        if metric == "openimages"
        else "pycocotools COCO AP at IoU 0.5 (group-of rows as iscrowd)"
    )
    how = "stretched" if args.stretch else "letterboxed"
    print(f"NanoDet-m ({how}) on {len(truth)} dev photos ({args.split}), {len(dets)} detections; {what}")
    for mid in classes:
        ap, n, tp, fp = aps[mid]
        extra = f", {tp:g} TP, {fp} FP" if tp is not None else ""
        print(
            f"  {CLASSES[mid]:<8} {mid:<11} AP@0.5 {'n/a' if ap is None else f'{ap:.3f}'}  ({n:g} boxes{extra})"
        )
    found = [a[0] for a in aps.values() if a[0] is not None]
    print(f"  mean over classes: {sum(found) / len(found):.3f}" if found else "  no class with ground truth")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
