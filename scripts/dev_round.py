"""A training round on the dev photos through the real commands: NME of a face_landmarks68 model trained on
app/demo_data/training_with_face_landmarks.xml (a mesh head by default, --arch crop68 for the small CNN),
evaluated on testing_with_face_landmarks.xml, against the template (template68), facemesh68 and the
untrained default annotator (attention68).

A temporary instance: the training file's boxes and 68 points are human annotations of the train split,
the testing file's of the test split. Then `flask oiap train`, and `flask oiap evaluate` for each model
(landmarks on the ground-truth boxes). The dev landmarks come from dlib's model: fine for measuring,
never ship a model trained on them.

    python scripts/dev_round.py                         # the mesh head (epochs, lr, batch size unused)
    python scripts/dev_round.py --arch crop68 --epochs 300
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def mtcnn_nme(app, model_id: int) -> float:
    """Mean NME of a landmark model on the testing file's faces from MTCNN's boxes and five points."""
    from app.db import connect
    from app.models.builtin import load_annotator
    from app.models.eval68 import face_nmes
    from app.models.registry import get_model

    db = connect(app.config["DATABASE"])
    try:
        annotator = load_annotator(get_model(db, model_id))
    finally:
        db.close()
    return float(sum(n := face_nmes(annotator, "testing_with_face_landmarks.xml", "mtcnn")) / len(n))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default="meshhead68", choices=["meshhead68", "crop68"])
    ap.add_argument("--epochs", type=int, default=300, help="crop68: passes over the 18 training faces")
    ap.add_argument(
        "--train-faces", type=int, default=None, help="train on the first N of the 18 training faces only"
    )
    ap.add_argument("--batch-size", type=int, default=18)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--boxes", action="store_true", help="also fine-tune MTCNN (face_box) and compare AP")
    ap.add_argument("--box-epochs", type=int, default=5)
    ap.add_argument(
        "--mtcnn",
        action="store_true",
        help="also measure each landmark model from MTCNN's boxes and five points (as bulk-annotate runs it)",
    )
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()

    from app import create_app
    from app.annotators.landmarks68 import DEFAULT_LANDMARKS68
    from app.db import connect, migrate
    from app.imports.dlib_xml import import_dlib_faces
    from app.models.builtin import ensure_builtin_models

    demo = REPO / "app" / "demo_data"
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(
            {
                "INSTANCE_PATH": tmp,
                "DATABASE": f"{tmp}/oiap.sqlite3",
                "MODELS_DIR": f"{tmp}/models",
                "CACHE_DIR": f"{tmp}/cache",
                "SECRET_KEY": "dev-round",
            }
        )
        db = connect(app.config["DATABASE"])
        migrate(db)
        for xml, split in (
            ("training_with_face_landmarks.xml", "train"),
            ("testing_with_face_landmarks.xml", "test"),
        ):
            import_dlib_faces(db, demo / xml, split)
        if args.train_faces is not None:
            # How much data the trainer needs: the other training faces' 68 points are deleted.
            rows = db.execute(
                "SELECT a.id FROM annotations a JOIN images i ON i.id = a.image_id WHERE a.kind = "
                "'face_landmarks68' AND i.split = 'train' ORDER BY a.id"
            ).fetchall()
            if not 1 <= args.train_faces <= len(rows):
                raise SystemExit(f"--train-faces {args.train_faces}: use 1 to {len(rows)}")
            drop = [r[0] for r in rows[args.train_faces :]]
            db.execute(f"UPDATE annotations SET deleted = 1 WHERE id IN ({','.join('?' * len(drop))})", drop)
            db.conn.commit()
        ids = ensure_builtin_models(db)
        db.close()
        cli = app.test_cli_runner()

        def run(*argv) -> dict:
            r = cli.invoke(args=["oiap", *argv, "--json"])
            if r.exit_code != 0:
                raise SystemExit(f"flask oiap {' '.join(argv)} failed:\n{r.output}")
            return json.loads(r.stdout)

        trained = run(
            "train",
            "--kind",
            "face_landmarks68",
            "--epochs",
            str(args.epochs),
            "--batch-size",
            str(args.batch_size),
            "--lr",
            str(args.lr),
            "--seed",
            str(args.seed),
            "--device",
            args.device,
            "--arch",
            args.arch,
        )
        results = {}
        for name, model_id in (
            (f"{args.arch} (trained)", trained["model_id"]),
            ("template68", ids["template68"]),
            ("facemesh68", ids["facemesh68"]),
            (f"{DEFAULT_LANDMARKS68} (default)", ids[DEFAULT_LANDMARKS68]),
        ):
            m = run("evaluate", str(model_id))
            results[name] = {
                k: m[k] for k in ("nme", "failure_rate_0.08", "failure_rate_0.10", "ced_auc_0.10", "faces")
            }
            if args.mtcnn:
                results[name]["nme_mtcnn"] = mtcnn_nme(app, model_id)
        boxes = {}
        if args.boxes:
            ft = run(
                "train",
                "--kind",
                "face_box",
                "--epochs",
                str(args.box_epochs),
                "--seed",
                str(args.seed),
                "--device",
                args.device,
            )
            for name, model_id in (
                ("mtcnn fine-tuned", ft["model_id"]),
                ("mtcnn (builtin)", ids["mtcnn:face_box"]),
            ):
                m = run("evaluate", str(model_id))
                boxes[name] = {
                    k: m[k] for k in ("ap", "recall", "true_positives", "false_positives", "ground_truth")
                }
        curve = trained.get("loss_curve")
        out = {
            "train": {
                "arch": args.arch,
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "lr": args.lr,
                "seed": args.seed,
                "device": args.device,
                "samples": trained["samples"],
                "train_faces": args.train_faces,
                "loss_first": curve[0] if curve else None,
                "loss_last": curve[-1] if curve else None,
                "head": trained.get("head"),
                "cross_validation": trained.get("cross_validation"),
            },
            "test": results,
            "test_boxes": boxes,
        }
        if args.json:
            print(json.dumps(out, indent=2))
            return
        t = out["train"]
        if t["loss_first"] is not None:
            print(
                f"trained on {t['samples']} faces, {t['epochs']} epochs (batch {t['batch_size']}, lr {t['lr']}, "
                f"seed {t['seed']}, {t['device']}): loss {t['loss_first']:.4f} -> {t['loss_last']:.4f}"
            )
        else:
            cv = t["cross_validation"]
            how = (
                f"chosen by {cv['folds']}-fold cross-validation on the training faces "
                f"(held-out NME {cv['default_nme']:.4f} default -> {cv['nme']:.4f})"
                if cv
                else "(one photo: no cross-validation)"
            )
            print(
                f"mesh head fitted on {t['samples']} faces: K {t['head']['k']}, lambda {t['head']['lambda']}, {how}"
            )
            for s in cv["scores"] if cv else []:
                print(f"  K {s['k']:>2} lambda {s['lambda']:<5} held-out NME {s['nme']:.4f}")
        print(
            f"{'test split, ground-truth boxes':<24} {'NME':>7} {'fail@.08':>9} {'fail@.10':>9} {'AUC@.10':>8}"
        )
        for name, m in results.items():
            print(
                f"{name:<24} {m['nme']:>7.4f} {m['failure_rate_0.08']:>9.3f} {m['failure_rate_0.10']:>9.3f} "
                f"{m['ced_auc_0.10']:>8.3f}   ({m['faces']} faces)"
                + (f"; from MTCNN: NME {m['nme_mtcnn']:.4f}" if "nme_mtcnn" in m else "")
            )
        for name, m in boxes.items():
            print(
                f"{name:<24} AP@0.5 {m['ap']:.4f}  recall {m['recall']:.4f}  "
                f"({m['true_positives']}/{m['ground_truth']} faces, {m['false_positives']} false positives)"
            )


if __name__ == "__main__":
    main()
