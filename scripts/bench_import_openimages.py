"""Benchmark `import-openimages` on generated files in Open Images' real formats.

    python scripts/bench_import_openimages.py                      # 200k bbox rows, 7% faces (quick)
    python scripts/bench_import_openimages.py --rows 1000000       # the number in the README
    python scripts/bench_import_openimages.py --rows 1000000 --face-fraction 1   # every row a face

The real train file has 14.6 M rows over 1.74 M images, 7% of them Human face; the generated file
keeps those ratios (about 8.4 boxes per image). Prints JSON: rows/s of the bbox pass and more.
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
from tests.openimages_csv import BBOX_HEADER_V6, IMAGE_HEADER, image_row, write_csv  # noqa: E402

LABELS = ["/m/01g317", "/m/05s2s", "/m/07j7r", "/m/0c9ph5", "/m/083vt", "/m/0cgh4", "/m/09j2d"]


def generate(folder: Path, rows: int, face_fraction: float, seed: int = 0) -> int:
    """Write train-images-boxable-with-rotation.csv and oidv6-train-annotations-bbox.csv; returns images."""
    rng = random.Random(seed)
    n_images = max(1, round(rows / 8.4))
    ids = sorted(f"{rng.getrandbits(64):016x}" for _ in range(n_images))
    write_csv(
        folder / "train-images-boxable-with-rotation.csv",
        IMAGE_HEADER,
        [image_row(i, "train", title="Generated") for i in ids],
    )
    with open(folder / "oidv6-train-annotations-bbox.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(BBOX_HEADER_V6)
        per_image = rows / n_images
        for n in range(rows):
            image_id = ids[min(n_images - 1, int(n / per_image))]
            label = "/m/0dzct" if rng.random() < face_fraction else rng.choice(LABELS)
            x0, y0 = rng.random() * 0.8, rng.random() * 0.8
            x1, y1 = x0 + rng.random() * 0.2, y0 + rng.random() * 0.2
            b = [f"{v:.6f}" for v in (x0, x1, y0, y1)]
            flags = [str(rng.choice((0, 1))) for _ in range(5)]
            w.writerow(
                [image_id, "xclick", label, "1", *b, *flags, b[0], b[1], b[0], b[1], b[2], b[2], b[3], b[3]]
            )
    return n_images


def main() -> None:
    """Generate, import twice (the second run must add nothing), print the timings."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=200_000, help="bbox rows to generate")
    p.add_argument("--face-fraction", type=float, default=0.07, help="share of rows that are Human face")
    p.add_argument("--no-rerun", action="store_true", help="skip the second (idempotence) run")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        n_images = generate(tmp, args.rows, args.face_fraction)
        gen_s = time.perf_counter() - t
        db = connect(str(tmp / "bench.sqlite3"))
        migrate(db)
        t = time.perf_counter()
        first = import_openimages(db, tmp, splits=["train"])
        total_s = time.perf_counter() - t
        box = first["boxes"]["oidv6-train-annotations-bbox.csv"]
        out = {
            "rows": args.rows,
            "face_fraction": args.face_fraction,
            "images": n_images,
            "generate_s": round(gen_s, 2),
            "import_s": round(total_s, 2),
            "images_pass_s": round(total_s - box["seconds"], 2),
            "bbox_pass_s": box["seconds"],
            "bbox_rows_per_s": box["rows_per_s"],
            "boxes_added": first["boxes_added"],
            "errors": first["errors"],
        }
        if not args.no_rerun:
            t = time.perf_counter()
            again = import_openimages(db, tmp, splits=["train"])
            out["rerun_s"] = round(time.perf_counter() - t, 2)
            out["rerun_added"] = again["boxes_added"] + again["images_added"]
            assert out["rerun_added"] == 0, "a second run added rows"
        # Peak resident memory of the whole process (generation included), in MiB.
        out["max_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
