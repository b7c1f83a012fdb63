"""`scripts/bench_annotate.py --kind object_box`: bulk-annotate with the active object detector (NanoDet,
or a builtin by name with --model) on the benchmark photos, against a plain loop over the same detector
in the same run.

- bulk: `bulk_annotate()` as `flask oiap bulk-annotate --kind object_box` runs it (thread pool of
  --workers, reduced JPEG decoding above --max-side, batched write transactions);
- loop: one image at a time on this thread, full-size decode (images/decode), the detector's detect, no store.

Prints objects found per image, CPU seconds per stage, images/s of both and their ratio.
"""

import time
from pathlib import Path


def run(args, make_images) -> int:
    """Build the images and store, run bulk and the loop, print the figures."""
    import tempfile

    from app import create_app
    from app.bulk.local import bulk_annotate
    from app.db import connect, migrate
    from app.images.decode import decode
    from app.imports.folder import register_image_file
    from app.models.builtin import ensure_builtin_models, load_annotator
    from app.models.registry import get_model

    with tempfile.TemporaryDirectory(prefix="oiap-bench-") as tmp:
        tmp = Path(tmp)
        (tmp / "img").mkdir()
        paths = make_images(tmp / "img", args.n, args.side, args.tiles)
        app = create_app(
            {
                "TESTING": True,
                "INSTANCE_PATH": str(tmp / "inst"),
                "DATABASE": str(tmp / "b.db"),
                "SECRET_KEY": "x",
            }
        )
        db = connect(app.config["DATABASE"])
        migrate(db)
        with db.conn:
            for path in paths:
                register_image_file(db, path, "train")
        classes = args.classes.split(",") if args.classes else None
        # The detector row by name (--model; default the active one, NanoDet), loaded as bulk loads it.
        ids = ensure_builtin_models(db)
        name = getattr(args, "model", None) or "nanodet"
        if name not in ids or name.startswith("mtcnn") or name in ("attention68", "facemesh68", "template68"):
            raise SystemExit(f"--model {name}: give a builtin object_box detector, nanodet or objectron")
        det = load_annotator(get_model(db, ids[name]), threads=1, classes=classes)
        det.detect(decode(paths[0]).rgb)  # warm the session outside the timings

        w0, c0 = time.perf_counter(), time.process_time()
        s = bulk_annotate(
            db,
            app.config,
            "object_box",
            classes=classes,
            model=getattr(args, "model", None),
            batch=args.batch,
            workers=args.workers,
            max_side=args.max_side or None,
            progress=False,
            engine="local",  # the thread pool this measures (its CPU is this process's)
        )
        bulk_wall, bulk_cpu = time.perf_counter() - w0, time.process_time() - c0
        n_bulk = s["sets"]["box"]["annotations"]

        loop_paths = paths[: args.naive_n or len(paths)]
        w0, c0 = time.perf_counter(), time.process_time()
        n_loop = sum(len(det.detect(decode(p).rgb)) for p in loop_paths)
        loop_wall, loop_cpu = time.perf_counter() - w0, time.process_time() - c0

        n = len(paths)
        prof = s["profile_s"]
        print(f"\nkind object_box, {name} ({'all classes' if classes is None else ','.join(classes)}); "
              f"bulk: {n} images, batch {args.batch}, {args.workers} workers; loop: {len(loop_paths)} images")  # fmt: skip
        print(
            f"objects found: bulk {n_bulk} ({n_bulk / n:.2f}/image), loop {n_loop} ({n_loop / len(loop_paths):.2f}/image)"
        )
        print(f"{'CPU s per image':<16} {'bulk':>8}")
        for k in ("decode", "detect", "db_write"):
            print(f"{k:<16} {prof.get(k, 0.0) / n:>8.4f}")
        print(f"{'total CPU':<16} {bulk_cpu / n:>8.4f} {loop_cpu / len(loop_paths):>8.4f} (loop)")
        print(f"{'wall':<16} {bulk_wall / n:>8.4f} {loop_wall / len(loop_paths):>8.4f} (loop)")
        bulk_ips, loop_ips = n / bulk_wall, len(loop_paths) / loop_wall
        print(f"bulk {bulk_ips:.2f} images/s, loop {loop_ips:.2f} images/s, ratio {bulk_ips / loop_ips:.2f}x")
        db.close()
    return 0


if __name__ == "__main__":
    import sys

    # The benchmark's options live in bench_annotate.py; this runs it for object_box.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_annotate import main

    raise SystemExit(main(["--kind", "object_box", *sys.argv[1:]]))
