"""Object boxes on the demo photos: AP@0.5 per class of the builtin Objectron SSD and of its heads
fine-tuned by `train --kind object_box`, on photos the training never saw.

A temporary instance holds the demo photos with the boxes drawn by hand in tests/data/demo_objects.json
(every person, and the ties) as one human object_box set: dlib's four training photos in the train
split, its five testing photos in the test split. The builtin detector and the fine-tuned one run on the
test photos (score threshold objectron.EVAL_THRESHOLD); AP at IoU 0.5 per class with ground truth
(PASCAL VOC's all-point AP, models/metrics.average_precision: every person in these photos is boxed, no
group-of boxes). Also prints the training's wall and CPU time and the detector's CPU time per image.

    python scripts/eval_objects.py                 # default epochs (20)
    python scripts/eval_objects.py --epochs 40 --json
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
HAND = REPO / "tests" / "data" / "demo_objects.json"


def measure(db, model: dict, test: dict) -> dict:
    """AP@0.5 per class (MID -> {ap, recall, ...}) and CPU ms per image of a model on the test photos."""
    from app.annotators import objectron
    from app.images.decode import load_rgb
    from app.models.builtin import load_annotator
    from app.models.metrics import average_precision

    det = load_annotator(model)
    det.score_threshold = objectron.EVAL_THRESHOLD
    dets: dict[str, list] = {}
    cpu = 0.0
    for name in test:
        rgb = load_rgb(REPO / "app" / "demo_data" / name)
        h, w = rgb.shape[:2]
        det.detect(rgb)  # warm the session before timing
        t = time.thread_time()
        found = det.detect(rgb)
        cpu += time.thread_time() - t
        for box, score, mid in found:
            dets.setdefault(mid, []).append((name, (box[0] / w, box[1] / h, box[2] / w, box[3] / h), score))
    out = {}
    for mid in sorted({b[0] for v in test.values() for b in v["boxes"]}):
        truth = {}
        for name, v in test.items():
            w, h = v["size"]
            truth[name] = [(x0 / w, y0 / h, x1 / w, y1 / h) for m, x0, y0, x1, y1 in v["boxes"] if m == mid]
        r = average_precision(dets.get(mid, []), truth, 0.5)
        out[mid] = {k: r[k] for k in ("ap", "recall", "true_positives", "false_positives", "ground_truth")}
    return {"per_class": out, "cpu_ms_per_image": round(1000 * cpu / len(test), 1)}


def main(argv=None) -> int:
    """Build the instance, measure the builtin, train, measure the candidate, print."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default: the trainer's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args(argv)

    from app import create_app
    from app.annotations.rows import annotation_row, insert_annotation
    from app.db import connect, migrate
    from app.imports.folder import register_image_file
    from app.models.builtin import ensure_builtin_models
    from app.models.registry import get_model
    from app.sets.queries import create_set
    from app.training.trainer import train

    hand = json.loads(HAND.read_text())
    test = {k: v for k, v in hand["images"].items() if v["split"] == "test"}
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(
            {
                "INSTANCE_PATH": tmp,
                "DATABASE": f"{tmp}/oiap.sqlite3",
                "MODELS_DIR": f"{tmp}/models",
                "CACHE_DIR": f"{tmp}/cache",
                "SECRET_KEY": "eval-objects",
            }
        )
        db = connect(app.config["DATABASE"])
        migrate(db)
        ids = ensure_builtin_models(db)
        set_id = create_set(db, "hand-objects", "object_box", "human")
        for name, v in hand["images"].items():
            w, h = v["size"]
            image_id, _ = register_image_file(db, REPO / "app" / "demo_data" / name, v["split"])
            for mid, x0, y0, x1, y1 in v["boxes"]:
                box = (x0 / w, y0 / h, x1 / w, y1 / h)
                insert_annotation(db, annotation_row(set_id, image_id, "object_box", box, label=mid))
        db.conn.commit()
        builtin = measure(db, get_model(db, ids["objectron"]), test)
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
        tuned = measure(db, get_model(db, result["model_id"]), test)
        db.close()
    report = {
        "builtin": builtin,
        "fine_tuned": tuned,
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
    names = hand["classes"]
    print(f"test split: {len(test)} photos; AP@0.5 per class (recall), score threshold 0.05")
    print(f"{'class':<10} {'GT':>4} {'builtin Objectron':>20} {'fine-tuned heads':>20}")
    for mid, r in builtin["per_class"].items():
        t = tuned["per_class"][mid]
        print(
            f"{names.get(mid, mid):<10} {r['ground_truth']:>4} {r['ap']:>12.3f} ({r['recall']:.2f})"
            f" {t['ap']:>12.3f} ({t['recall']:.2f})"
        )
    tr = report["training"]
    print(
        f"training: {tr['images']} photos, {tr['boxes']} boxes, added classes {tr['added_classes']}; "
        f"loss {tr['loss_curve'][0]:.3f} -> {tr['loss_curve'][-1]:.3f} in {len(tr['loss_curve'])} epochs; "
        f"{tr['wall_s']} s wall, {tr['cpu_s']} s CPU"
    )
    print(
        f"detector CPU per image (1 thread): builtin {builtin['cpu_ms_per_image']} ms, "
        f"fine-tuned {tuned['cpu_ms_per_image']} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
