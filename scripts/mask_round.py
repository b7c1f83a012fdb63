"""One object_mask round on the hand-drawn person masks (tests/data/person_masks.json), in a fresh store.

The training photos' masks become human rows of the train split, the testing photos' the test split;
then `flask oiap train --kind object_mask`, `evaluate` of the trained model and of the builtin, and
`promote` (the gate: mean mask IoU on the test split). Prints each command's JSON.

    python scripts/mask_round.py                  # default epochs, seed 0
    python scripts/mask_round.py --epochs 10 --seed 1
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LABELS = REPO / "tests" / "data" / "person_masks.json"
DEMO = REPO / "app" / "demo_data"


def main() -> None:
    """Build the store, run the round, print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--epochs", type=int, default=None, help="passes over the training masks (default: train's)"
    )
    ap.add_argument("--seed", type=int, default=0, help="training seed")
    args = ap.parse_args()

    from app import create_app
    from app.annotations import masks
    from app.annotations.rows import annotation_row, insert_annotations
    from app.db import connect, immediate, migrate
    from app.imports.folder import register_image_file
    from app.models.mask_models import ensure_mask_models
    from app.sets.queries import create_set

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(
            {
                "TESTING": True,
                "INSTANCE_PATH": tmp,
                "DATABASE": f"{tmp}/round.db",
                "MODELS_DIR": f"{tmp}/models",
                "CACHE_DIR": f"{tmp}/cache",
                "IMAGES_DIR": f"{tmp}/images",
                "SECRET_KEY": "round",
            }
        )
        db = connect(app.config["DATABASE"])
        migrate(db)
        data = json.loads(LABELS.read_text())
        with immediate(db):
            rows = []
            for file, split in (("training", "train"), ("testing", "test")):
                gt = create_set(db, f"human-object_mask-{split}", "object_mask", "human")
                for im in data["images"]:
                    if im["file"] != file:
                        continue
                    image_id, _ = register_image_file(db, DEMO / im["name"], split)
                    for o in im["objects"]:
                        m = masks.from_polygons(o["polygons"], im["height"], im["width"])
                        rows.append(annotation_row(gt, image_id, "object_mask", label=data["label"], mask=m))
            insert_annotations(db, rows)
        builtin = ensure_mask_models(db)["builtin-masks"]
        db.conn.commit()
        runner = app.test_cli_runner()

        def run(*a):
            r = runner.invoke(args=["oiap", *a])
            print("$ flask oiap " + " ".join(a), f"(exit {r.exit_code})")
            print(r.output.strip())
            return r

        train = ["train", "--kind", "object_mask", "--seed", str(args.seed), "--json"]
        out = json.loads(run(*train, *(["--epochs", str(args.epochs)] if args.epochs else [])).output)
        run("evaluate", str(out["model_id"]))
        run("evaluate", str(builtin))
        run("promote", str(out["model_id"]))


if __name__ == "__main__":
    main()
