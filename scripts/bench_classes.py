#!/usr/bin/env python
"""Benchmark review and set pages by class on a big object-box set: the queries behind `?label=`.

Builds a store with one model set of N object boxes (a few common classes and one rare class, 10%
rated, 3 boxes an image), then times, each beside a baseline measured in the same run:

- the next item of the queue for the rare class (what `?label=` asks, over m019's partial index)
  against the next item with no class filter (the plain queue);
- the counts per class (`classes.class_counts`, the filter list) against a plain GROUP BY over the
  table (what it would cost without the covering index);
- the rare class's set page (page 1 and its last page by number) against the whole set's page 1.

    python scripts/bench_classes.py                    # 300k boxes
    python scripts/bench_classes.py --boxes 1000000 --repeat 50
    python scripts/bench_classes.py --store /tmp/bench-classes   # build once (kept), reuse later
"""

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

COMMON = ["/m/01g317", "/m/0k4j", "/m/01mzpv", "/m/04dr76w", "/m/0bt9lr"]  # Person, Car, Chair, Bottle, Dog
RARE = "/m/0898b"  # Zebra


def build(path: Path, n: int, seed: int) -> int:
    """A fresh store at `path` with one object set of n boxes; returns the set id."""
    from app.db import connect, immediate, migrate
    from app.sets.queries import create_set

    rnd = random.Random(seed)
    db = connect(str(path))
    migrate(db)
    with immediate(db):
        set_id = create_set(db, "bench-objects", "object_box", "model")
        db.execute(
            "INSERT INTO users (id, username, password_hash, role, active, created_at)"
            " VALUES (1, 'bench', 'x', 'reviewer', 1, 'x')"
        )
        n_images = max(1, n // 3)
        db.conn.executemany(
            "INSERT INTO images (id, split, width, height, created_at) VALUES (?, 'train', 640, 480, 'x')",
            ((f"{i:016x}",) for i in range(n_images)),
        )
        rows = []
        for _ in range(n):
            label = RARE if rnd.random() < 0.001 else rnd.choice(COMMON)
            rating = rnd.choice(("good", "bad")) if rnd.random() < 0.1 else None
            x, y = rnd.random() * 0.8, rnd.random() * 0.8
            rows.append(
                (
                    set_id,
                    f"{rnd.randrange(n_images):016x}",
                    label,
                    x,
                    y,
                    x + 0.1,
                    y + 0.1,
                    rnd.random(),
                    rating,
                )
            )
        db.conn.executemany(
            "INSERT INTO annotations (set_id, image_id, kind, label, x0, y0, x1, y1, score, rating, created_at)"
            " VALUES (?, ?, 'object_box', ?, ?, ?, ?, ?, ?, ?, 'x')",
            rows,
        )
    db.execute("ANALYZE")
    db.close()
    return set_id


def timed(fn, repeat: int) -> dict:
    """p50 and max in ms of `repeat` calls (after one warm-up call)."""
    fn()
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return {"p50": statistics.median(out), "max": max(out)}


def main() -> None:
    """Build or reuse the store, time the queries, print a table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--boxes", type=int, default=300_000, help="object boxes in the set (300000)")
    ap.add_argument("--repeat", type=int, default=20, help="timed calls per figure (20)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--store", type=Path, help="keep the store in this folder and reuse it when there")
    args = ap.parse_args()
    if args.boxes < 1000:
        ap.error(f"--boxes {args.boxes}: use at least 1000 so that the rare class has boxes")

    from app.classes import class_counts
    from app.db import connect
    from app.review import queries
    from app.sets.class_pages import class_page
    from app.sets.pages import set_page
    from app.sets.queries import get_set_with_model

    folder = args.store or Path(tempfile.mkdtemp(prefix="bench-classes-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "oiap.sqlite3"
    if not path.exists():
        t = time.perf_counter()
        build(path, args.boxes, args.seed)
        print(f"built {args.boxes} boxes in {time.perf_counter() - t:.1f} s: {path}")
    db = connect(str(path))
    s = get_set_with_model(db, 1)
    n_rare = db.execute("SELECT count(*) FROM annotations WHERE set_id = 1 AND label = ?", [RARE]).fetchone()[
        0
    ]
    last = max(1, -(-n_rare // 60))

    def claim(label):
        return lambda: queries.claim_next(db, s, 1, queries.Filters(label=label), None, 300)

    plain_counts = (
        "SELECT label, count(*), sum(rating IS NULL), sum(rating = 'good'), sum(rating = 'bad')"
        " FROM annotations NOT INDEXED WHERE set_id = ? AND deleted = 0 GROUP BY label"
    )
    rows = [
        ("queue: next item, no class filter (baseline)", timed(claim(None), args.repeat)),
        (f"queue: next item of the rare class ({n_rare} boxes)", timed(claim(RARE), args.repeat)),
        (
            "counts per class: plain GROUP BY (baseline)",
            timed(lambda: db.execute(plain_counts, [1]).fetchall(), args.repeat),
        ),
        ("counts per class: class_counts", timed(lambda: class_counts(db, 1), args.repeat)),
        ("set page 1, whole set (baseline)", timed(lambda: set_page(db, 1, 1), args.repeat)),
        ("set page 1 of the rare class", timed(lambda: class_page(db, 1, RARE, 1), args.repeat)),
        (
            f"set page {last} (last) of the rare class",
            timed(lambda: class_page(db, 1, RARE, last), args.repeat),
        ),
        ("set page 1 of a common class", timed(lambda: class_page(db, 1, COMMON[0], 1), args.repeat)),
    ]
    print(f"{args.boxes} boxes, {args.repeat} calls each")
    print(f"{'query':58} {'p50 ms':>8} {'max ms':>8}")
    for name, r in rows:
        print(f"{name:58} {r['p50']:8.2f} {r['max']:8.2f}")
    db.close()


if __name__ == "__main__":
    main()
