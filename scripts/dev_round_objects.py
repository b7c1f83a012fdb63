"""A training round for object boxes on the dev photos: AP@0.5 per class of the builtin Objectron SSD and
of its heads fine-tuned by `flask oiap train --kind object_box`, on photos the training never saw.

A temporary instance holds the hand-drawn boxes of tests/data/objects_dev.csv (every person and every
tie; tests/data/README.md says how they were drawn) as one human object_box set: the photos of dlib's
training file in the train split, those of its testing file in the test split (the demo's splits). The
builtin detector and the fine-tuned one run on the test photos at objectron.EVAL_THRESHOLD. Tie is not
one of the builtin's classes: training adds it.

Metric: Open Images' (app/models/metrics_openimages.py) when this tree has it, through
scripts/eval_objects.py; else PASCAL VOC's all-point AP at IoU 0.5 (models/metrics.average_precision)
with group-of rows left out of the ground truth and a detection lying mostly (>= 50 % of its area) inside
a group-of box of its class ignored. The output says which. Also prints the training's wall and CPU time
and each detector's CPU time per photo.

    python scripts/dev_round_objects.py                 # default epochs (the trainer's)
    python scripts/dev_round_objects.py --epochs 40 --json
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
PHOTOS = REPO / "app" / "demo_data"


def detections(model: dict, files) -> tuple[list, float]:
    """[(file, MID, box px, score)] of a model row on the photos, and its CPU ms per photo."""
    from app.annotators import objectron
    from app.images.decode import load_rgb
    from app.models.builtin import load_annotator

    det = load_annotator(model)
    det.score_threshold = objectron.EVAL_THRESHOLD
    out, cpu = [], 0.0
    for name in files:
        rgb = load_rgb(PHOTOS / name)
        det.detect(rgb)  # the session warmed before timing
        t = time.thread_time()
        found = det.detect(rgb)
        cpu += time.thread_time() - t
        out += [(name, mid, box, score) for box, score, mid in found]
    return out, round(1000 * cpu / len(files), 1)


def voc_ap(dets, truth, classes) -> dict:
    """MID -> (AP, boxes, TP, FP): PASCAL VOC AP at IoU 0.5, group-of boxes as ignore regions."""
    import numpy as np

    from app.models.metrics import average_precision

    out = {}
    for mid in classes:
        gt = {f: [b for m, b, g in rows if m == mid and not g] for f, rows in truth.items()}
        groups = {f: [b for m, b, g in rows if m == mid and g] for f, rows in truth.items()}
        kept = []
        for f, m, b, s in dets:
            if m != mid or f not in truth:
                continue
            area = max((b[2] - b[0]) * (b[3] - b[1]), 1e-9)
            inside = [
                max(0.0, min(b[2], g[2]) - max(b[0], g[0]))
                * max(0.0, min(b[3], g[3]) - max(b[1], g[1]))
                / area
                for g in groups[f]
            ]
            if not inside or max(inside) < 0.5:
                kept.append((f, tuple(np.asarray(b, float)), s))
        r = average_precision(kept, gt, 0.5)
        out[mid] = (r["ap"], r["ground_truth"], r["true_positives"], r["false_positives"])
    return out


def per_class(dets, truth, classes) -> tuple[dict, str]:
    """AP per class by Open Images' metric when present, else voc_ap; and the metric's name."""
    try:
        import app.models.metrics_openimages  # noqa: F401
    except ImportError:
        return voc_ap(dets, truth, classes), "PASCAL VOC AP@0.5 (group-of boxes as ignore regions)"
    from scripts.eval_objects import openimages_ap

    return openimages_ap(dets, truth, classes), "Open Images' metric (app/models/metrics_openimages.py)"


def main(argv=None) -> int:
    """Build the instance, measure the builtin, train, measure the candidate, print."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default: the trainer's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args(argv)

    from PIL import Image

    from app import create_app
    from app.annotations.rows import annotation_row, insert_annotation
    from app.db import connect, immediate, migrate
    from app.imports.folder import register_image_file
    from app.models.builtin import ensure_builtin_models
    from app.models.registry import get_model
    from app.sets.queries import create_set
    from app.training.trainer import train
    from scripts.eval_objects import CLASSES, read_truth, split_files

    truth = read_truth()
    train_files, test_files = sorted(split_files("training")), sorted(split_files("testing"))
    test_truth = {f: truth.get(f, []) for f in test_files}
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(
            {
                "INSTANCE_PATH": tmp,
                "DATABASE": f"{tmp}/oiap.sqlite3",
                "MODELS_DIR": f"{tmp}/models",
                "CACHE_DIR": f"{tmp}/cache",
                "SECRET_KEY": "dev-round-objects",
            }
        )
        db = connect(app.config["DATABASE"])
        migrate(db)
        ids = ensure_builtin_models(db)
        with immediate(db):
            set_id = create_set(db, "hand-objects", "object_box", "human")
            for split, files in (("train", train_files), ("test", test_files)):
                for name in files:
                    image_id, _ = register_image_file(db, PHOTOS / name, split)
                    with Image.open(PHOTOS / name) as im:
                        w, h = im.size
                    for mid, (x0, y0, x1, y1), group in truth.get(name, []):
                        row = annotation_row(
                            set_id,
                            image_id,
                            "object_box",
                            (x0 / w, y0 / h, x1 / w, y1 / h),
                            label=mid,
                            flags={"IsGroupOf": int(group)},
                        )
                        insert_annotation(db, row)
        before, cpu_before = detections(get_model(db, ids["objectron"]), test_files)
        wall, cpu = time.perf_counter(), time.process_time()
        result = train(
            db,
            app.config,
            "object_box",
            epochs=args.epochs,
            seed=args.seed,
            device=args.device,
            progress=False,
        )
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        after, cpu_after = detections(get_model(db, result["model_id"]), test_files)
        db.close()
    classes = list(CLASSES)
    ap_before, metric = per_class(before, test_truth, classes)
    ap_after, _ = per_class(after, test_truth, classes)
    report = {
        "metric": metric,
        "test_photos": len(test_files),
        "builtin": {"ap": ap_before, "cpu_ms_per_photo": cpu_before},
        "fine_tuned": {"ap": ap_after, "cpu_ms_per_photo": cpu_after},
        "training": {
            "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1),
            "loss_curve": result["loss_curve"],
            "images": result["images"],
            "boxes": result["boxes"],
            "added_classes": result["added_classes"],
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{len(test_files)} test photos; {metric}; score threshold 0.05")
    print(f"{'class':<8} {'boxes':>5} {'builtin Objectron':>18} {'fine-tuned heads':>17}")
    for mid in classes:
        b, a = ap_before[mid], ap_after[mid]
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        print(f"{CLASSES[mid]:<8} {b[1]:>5g} {fmt(b[0]):>18} {fmt(a[0]):>17}")
    tr = report["training"]
    print(
        f"training: {tr['images']} photos, {tr['boxes']} boxes, added classes {tr['added_classes']}; "
        f"loss {tr['loss_curve'][0]:.3f} -> {tr['loss_curve'][-1]:.3f} in {len(tr['loss_curve'])} epochs; "
        f"{tr['wall_s']} s wall, {tr['cpu_s']} s CPU"
    )
    print(f"detector CPU per photo (1 thread): builtin {cpu_before} ms, fine-tuned {cpu_after} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
