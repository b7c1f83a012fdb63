"""Benchmark: export N 68-point annotations to the training CSV, against a plain sqlite3 dump.

Builds a store (N annotations, 5 per image, on train images: 10% human, 30% machine rated good,
50% unrated, 10% bad; human and machine faces on different images, so the merge keeps exactly the
rows the baseline query selects), then runs each variant in its own subprocess:

- baseline: a plain sqlite3 cursor over the same rows (human + good + unrated, train split), in
  whatever order SQLite finds cheapest, written with csv.writer (points as their stored JSON text);
- export: app.export (iter_training_rows + the CSV writer, through a tqdm bar as the CLI does).

Each reports wall and CPU seconds (CPU is the fairer number on a busy machine), rows and the
process's peak RSS (before/after the export, so the growth shows
whether memory stays flat). The last line is the ratio export/baseline.

    python scripts/bench_export.py                 # 1 M annotations
    python scripts/bench_export.py -n 100000 --keep /tmp/bench.sqlite3
"""

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KIND = "face_landmarks68"
PER_IMAGE = 5


def _rss_mb() -> float:
    """This process's peak RSS in MB (VmHWM: unlike ru_maxrss it is not inherited across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _measured(t: float, c: float, rows: int, rss0: float) -> dict:
    """One run's figures, from its start (wall time t, CPU time c, RSS rss0) to now."""
    return {
        "seconds": time.perf_counter() - t,
        "cpu": _cpu() - c,
        "rows": rows,
        "rss_before_mb": rss0,
        "rss_peak_mb": _rss_mb(),
    }


def build(path: str, n: int, seed: int = 0) -> None:
    """A store with n face_landmarks68 annotations (see the module docstring)."""
    from app.db import connect, migrate
    from app.sets.queries import create_set

    db = connect(path)
    migrate(db)
    db.conn.execute("PRAGMA synchronous = OFF")  # a throwaway store: no need to wait on the disk
    rng = random.Random(seed)
    human = create_set(db, "human-face_landmarks68", KIND, "human")
    model = create_set(db, "model-face_landmarks68", KIND, "model")
    # Precomputed point texts per slot keep the build fast; the export parses each row anyway.
    templates = []
    for slot in range(PER_IMAGE):
        x0 = 0.02 + slot * 0.19
        for _ in range(8):
            pts = [
                [round(x0 + rng.random() * 0.17, 6), round(0.3 + rng.random() * 0.4, 6), 1] for _ in range(68)
            ]
            templates.append(json.dumps(pts, separators=(",", ":")))
    n_images = (n + PER_IMAGE - 1) // PER_IMAGE
    db.conn.execute("BEGIN")
    db.conn.executemany(
        "INSERT INTO images (id, split, width, height, created_at) VALUES (?, 'train', 640, 480, 'now')",
        ((f"{i:016x}",) for i in range(n_images)),
    )

    def rows():
        for i in range(n):
            image = i // PER_IMAGE
            slot = i % PER_IMAGE
            is_human = image % 10 == 0
            r = rng.random()
            rating = None if is_human else ("good" if r < 0.33 else "bad" if r < 0.44 else None)
            x0 = 0.02 + slot * 0.19
            yield (
                human if is_human else model,
                f"{image:016x}",
                KIND,
                x0,
                0.3,
                x0 + 0.17,
                0.7,
                templates[slot * 8 + rng.randrange(8)],
                rating,
                "now",
            )

    db.conn.executemany(
        "INSERT INTO annotations (set_id, image_id, kind, x0, y0, x1, y1, points, rating, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows(),
    )
    db.conn.execute("COMMIT")
    db.conn.execute("ANALYZE")
    db.close()


BASELINE_SQL = """
SELECT a.image_id, i.split, s.source, a.rating, a.id, s.name, a.x0, a.y0, a.x1, a.y1, a.points
FROM annotations a JOIN images i ON i.id = a.image_id JOIN annotation_sets s ON s.id = a.set_id
WHERE a.kind = ? AND i.split = 'train' AND a.deleted = 0 AND a.rating IS NOT 'bad'
"""


def run_baseline(db_path: str, out: str) -> dict:
    """A plain sqlite3 cursor dumped with csv.writer."""
    import csv
    import sqlite3

    conn = sqlite3.connect(db_path)
    rss0 = _rss_mb()
    t, c = time.perf_counter(), _cpu()
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "split", "source", "rating", "id", "set", "x0", "y0", "x1", "y1", "points"])
        cur = conn.execute(BASELINE_SQL, [KIND])
        n = 0
        while batch := cur.fetchmany(2000):
            w.writerows(batch)
            n += len(batch)
    return _measured(t, c, n, rss0)


def run_export(db_path: str, out: str) -> dict:
    """app.export: merge rules + the CSV writer, through tqdm as the CLI does."""
    from tqdm import tqdm

    from app.db import connect
    from app.export import ImageInfo, select_rows, text_chunks

    db = connect(db_path)
    rss0 = _rss_mb()
    t, c = time.perf_counter(), _cpu()
    n = 0
    with open(os.devnull, "w") as null, open(out, "w", encoding="utf-8", newline="") as f:
        rows = tqdm(select_rows(db, KIND, ("train",)), file=null, mininterval=1)
        for chunk in text_chunks(rows, KIND, "csv", ImageInfo()):
            f.write(chunk)
        n = rows.n
    return _measured(t, c, n, rss0)


def main() -> None:
    """Build, run each variant in a subprocess, print the table and the ratio."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=1_000_000, help="annotations to build (default 1,000,000)")
    p.add_argument("--keep", help="build into (or reuse) this database file instead of a temporary one")
    p.add_argument("--run", choices=["baseline", "export"], help=argparse.SUPPRESS)
    p.add_argument("--db", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.run:
        fn = run_baseline if args.run == "baseline" else run_export
        print(json.dumps(fn(args.db, args.out)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        db_path = args.keep or os.path.join(tmp, "bench.sqlite3")
        if not (args.keep and os.path.exists(args.keep)):
            t = time.perf_counter()
            build(db_path, args.n)
            print(f"built {args.n:,} annotations in {time.perf_counter() - t:.1f}s", flush=True)
        results = {}
        for variant in ("baseline", "export"):
            out = os.path.join(tmp, f"{variant}.csv")
            proc = subprocess.run(
                [sys.executable, __file__, "--run", variant, "--db", db_path, "--out", out],
                check=True,
                capture_output=True,
                text=True,
            )
            results[variant] = r = json.loads(proc.stdout.strip().splitlines()[-1])
            r["mb_out"] = os.path.getsize(out) / 1e6
            os.remove(out)
            print(
                f"{variant:<9} {r['rows']:>9,} rows  {r['seconds']:7.2f}s wall {r['cpu']:7.2f}s CPU"
                f"  {r['rows'] / r['seconds']:>9,.0f} rows/s"
                f"  peak RSS {r['rss_peak_mb']:6.1f} MB (+{r['rss_peak_mb'] - r['rss_before_mb']:.1f} MB while"
                f" exporting)  {r['mb_out']:.0f} MB written",
                flush=True,
            )
        b, e = results["baseline"], results["export"]
        if b["rows"] != e["rows"]:
            print(f"warning: row counts differ ({b['rows']} vs {e['rows']})")
        print(
            f"export/baseline ratio: {e['seconds'] / b['seconds']:.2f}x wall, {e['cpu'] / b['cpu']:.2f}x CPU"
            f" (target <= 2x); peak RSS {e['rss_peak_mb']:.0f} MB vs {b['rss_peak_mb']:.0f} MB"
        )


if __name__ == "__main__":
    main()
