"""Mean mask IoU of each box -> mask annotator on the hand-drawn person masks (tests/data/person_masks.json).

Each person's box is the box of its hand-drawn mask (as Open Images' boxes fit their objects); the
annotator sees the demo photo and the box, and its mask is compared with the drawn one. Reported per
faces-dev file: `training` photos may choose between annotators and settings, `testing` photos only
measure.

    python scripts/eval_masks.py                      # grabcut and selfie, both files
    python scripts/eval_masks.py --annotators grabcut --file testing --json
    python scripts/eval_masks.py --sam-encoder enc.onnx --sam-decoder dec.onnx   # a user's SAM pair too
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LABELS = REPO / "tests" / "data" / "person_masks.json"
DEMO = REPO / "app" / "demo_data"


def load(file: str | None):
    """[(name, rgb, [(box_px, stored mask)])] of the labelled photos of one file (or all)."""
    from app.annotations import masks
    from app.images.decode import load_rgb

    data = json.loads(LABELS.read_text())
    out = []
    for im in data["images"]:
        if file and im["file"] != file:
            continue
        objs = []
        for o in im["objects"]:
            m = masks.from_polygons(o["polygons"], im["height"], im["width"])
            x0, y0, x1, y1 = masks.bbox(m)
            objs.append(((x0 * im["width"], y0 * im["height"], x1 * im["width"], y1 * im["height"]), m))
        out.append((im["name"], load_rgb(DEMO / im["name"]), objs))
    return out


def evaluate(annotator, photos) -> dict:
    """Mean, min and per-object IoU, and seconds per object."""
    from app.annotations import masks

    ious = []
    t0 = time.perf_counter()
    for _name, rgb, objs in photos:
        preds = annotator.predict_many(rgb, [b for b, _ in objs])
        for pred, (_, truth) in zip(preds, objs, strict=True):
            ious.append(masks.iou(masks.encode(pred), truth))
    seconds = time.perf_counter() - t0
    return {
        "objects": len(ious),
        "mean_iou": round(float(np.mean(ious)), 4) if ious else None,
        "min_iou": round(float(np.min(ious)), 4) if ious else None,
        "ious": [round(v, 4) for v in ious],
        "s_per_object": round(seconds / max(1, len(ious)), 4),
    }


def build(name: str, args):
    """An annotator by name."""
    from app.annotators import box_masks

    if name == "grabcut":
        return box_masks.GrabCutMasks()
    if name == "selfie":
        return box_masks.SelfieMasks()
    if name == "box":
        return BoxBaseline()
    if name == "sam":
        from app.annotators.sam_masks import PromptedMasks

        return PromptedMasks(args.sam_encoder, args.sam_decoder)
    raise SystemExit(f"unknown annotator {name!r}")


class BoxBaseline:
    """The box itself as the mask: what any annotator has to beat."""

    name = "box"

    def predict_many(self, rgb, boxes):
        h, w = rgb.shape[:2]
        out = []
        for x0, y0, x1, y1 in boxes:
            m = np.zeros((h, w), bool)
            m[int(y0) : int(np.ceil(y1)), int(x0) : int(np.ceil(x1))] = True
            out.append(m)
        return out


def main(argv=None) -> int:
    """Print the table (or JSON)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--annotators", default="box,grabcut,selfie", help="Comma-separated: box, grabcut, selfie, sam."
    )
    p.add_argument("--file", choices=["training", "testing"], default=None, help="Only this faces-dev file.")
    p.add_argument("--sam-encoder", type=Path, default=None)
    p.add_argument("--sam-decoder", type=Path, default=None)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.annotators.split(",") if n.strip()]
    if "sam" in names and not (args.sam_encoder and args.sam_decoder):
        p.error("--annotators sam needs --sam-encoder and --sam-decoder")
    files = [args.file] if args.file else ["training", "testing"]
    result = {}
    for f in files:
        photos = load(f)
        for n in names:
            result[f"{n}:{f}"] = evaluate(build(n, args), photos)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    for key, r in result.items():
        print(
            f"{key:18s} objects {r['objects']:2d}  mean IoU {r['mean_iou']:.4f}  min {r['min_iou']:.4f}  "
            f"{r['s_per_object'] * 1000:.0f} ms/object"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
