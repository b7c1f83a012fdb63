"""Benchmark the image-level label pass of `import-openimages` on generated files in Google's formats.

    python scripts/bench_import_labels.py                        # 1 M label rows, 7% Human face
    python scripts/bench_import_labels.py --face-fraction 0.25   # a face label on every image (the most)

Writes train-images-boxable-with-rotation.csv (one image per 4 label rows) and
train-annotations-human-imagelabels-boxable.csv (ImageID,Source,LabelName,Confidence; 0 or 1) into a
temporary folder, imports them into a fresh store (default class: Human face), then again (the
idempotent second pass). Prints JSON: rows/s of each label pass, labels written, peak memory.
"""

import argparse
import csv
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.db import connect, migrate  # noqa: E402
from app.imports.openimages import import_openimages  # noqa: E402
from tests.openimages_csv import IMAGE_HEADER, LABELS_HEADER, image_row, write_csv  # noqa: E402

FACE = "/m/0dzct"
OTHERS = ["/m/01g317", "/m/05s2s", "/m/07j7r", "/m/0c9ph5", "/m/083vt", "/m/0cgh4", "/m/09j2d"]


def generate(folder: Path, rows: int, face_fraction: float, seed: int = 0) -> None:
    """The image metadata and label files: 4 label rows per image (Human face on face_fraction of the
    rows), a fifth of them verified absent."""
    rng = random.Random(seed)
    ids = sorted(f"{rng.getrandbits(64):016x}" for _ in range(max(1, rows // 4)))
    write_csv(
        folder / "train-images-boxable-with-rotation.csv",
        IMAGE_HEADER,
        [image_row(i, "train", title="Generated") for i in ids],
    )
    with open(folder / "train-annotations-human-imagelabels-boxable.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(LABELS_HEADER)
        for n in range(rows):
            if n % 4 == 0:
                # One row per image and class, as in Google's files: four distinct classes per image.
                classes = rng.sample(OTHERS, 4)
                if rng.random() < face_fraction * 4:
                    classes[0] = FACE
            w.writerow([ids[n // 4], "verification", classes[n % 4], "0" if rng.random() < 0.2 else "1"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="Label rows to generate.")
    parser.add_argument(
        "--face-fraction",
        type=float,
        default=0.07,
        help="Share of Human face rows (at most 0.25: one per image).",
    )
    args = parser.parse_args(argv)
    if args.rows < 1 or not 0 <= args.face_fraction <= 0.25:
        parser.error(
            "--rows must be at least 1 and --face-fraction between 0 and 0.25 (one face label per image)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        generate(folder, args.rows, args.face_fraction)
        db = connect(str(folder / "bench.sqlite3"))
        migrate(db)
        out = {"rows": args.rows, "face_fraction": args.face_fraction}
        for name in ("first", "second"):
            t0 = time.perf_counter()
            s = import_openimages(db, folder, splits=["train"])
            (r,) = s["image_labels"].values()
            out[name] = {
                "label_rows_per_s": r["rows_per_s"],
                "label_seconds": r["seconds"],
                "labels_written": r["written"],
                "whole_import_seconds": round(time.perf_counter() - t0, 2),
            }
        out["labels_stored"] = db.execute("SELECT count(*) FROM image_labels").fetchone()[0]
        out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        db.close()
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
