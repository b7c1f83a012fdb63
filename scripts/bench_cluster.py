#!/usr/bin/env python
"""Images/s per core of bulk-annotate's local engine and of its Ray engine on the same real-size photos,
and what a cluster would need for the whole Open Images training split.

The photos: the demo photos and the astronaut, resized so their long side is --side (Open Images'
own files are mostly 1024 px on the long side), flipped and cropped into --images distinct files.
Both engines run on --cpus cores: the local engine with that many threads (one onnxruntime thread
each), the Ray engine on a local Ray instance of that many CPUs with that many actors. Each engine runs
twice, on a few images and on all of them, so the startup (models, actors) is measured apart from the
steady rate. The driver's writes are timed too: they bound how far a cluster scales with one store.

    python scripts/bench_cluster.py                          # 64 images, 2 CPUs, face_landmarks68
    python scripts/bench_cluster.py --images 100 --kind face_box
    python scripts/bench_cluster.py --cores-per-machine 32 --machines 1,8,32
"""

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# Open Images V6 images with boxes: train 1,743,042; all splits 1,910,098 (+ validation 41,620, test 125,436).
TRAIN_SPLITS = {
    "train images with boxes (1.74 M)": 1_743_042,
    "images with boxes, all splits (1.91 M)": 1_910_098,
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def make_photos(folder: Path, n: int, side: int) -> list[Path]:
    """n distinct JPEGs of real photos, long side `side`."""
    from PIL import Image, ImageOps

    demo = REPO / "app" / "demo_data"
    sources = sorted(demo.glob("*.jpg")) + [demo / "astronaut.png"]
    out = []
    for k in range(n):
        im = Image.open(sources[k % len(sources)]).convert("RGB")
        variant = k // len(sources)
        if variant % 2:
            im = ImageOps.mirror(im)
        if variant >= 2:
            # A slightly different crop per round, so no two files are the same.
            d = variant * 4
            im = im.crop((d, d, im.width - d, im.height - d))
        scale = side / max(im.size)
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
        p = folder / f"photo{k:03d}.jpg"
        im.save(p, quality=90)
        out.append(p)
    return out


def store(folder: Path, photos: list[Path]):
    from app import create_app
    from app.db import connect, migrate, now

    app = create_app(
        {"INSTANCE_PATH": str(folder), "DATABASE": str(folder / "b.sqlite3"), "SECRET_KEY": "bench"}
    )
    db = connect(app.config["DATABASE"])
    migrate(db)
    db.conn.executemany(
        "INSERT INTO images (id, split, path, created_at) VALUES (?, 'train', ?, ?)",
        [(hashlib.sha1(p.read_bytes()).hexdigest()[:16], str(p), now()) for p in photos],
    )
    db.conn.commit()
    return app, db


def run(db, config, kind, limit, engine, cpus):
    from app.bulk.local import bulk_annotate

    opts = {"actor_cpus": 0.5} if engine == "ray" else None
    t0 = time.perf_counter()
    s = bulk_annotate(
        db,
        config,
        kind,
        limit=limit,
        batch=4,
        workers=cpus,
        progress=False,
        engine=engine,
        engine_options=opts,
    )
    s["wall_s"] = time.perf_counter() - t0
    return s


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--images", type=int, default=64, help="photos to annotate (default 64)")
    ap.add_argument("--warm", type=int, default=8, help="images of the short run that measures startup (8)")
    ap.add_argument("--side", type=int, default=1024, help="long side of each photo in px (default 1024)")
    ap.add_argument("--cpus", type=int, default=2, help="cores for each engine (default 2)")
    ap.add_argument(
        "--kind",
        default="face_landmarks68",
        choices=["face_box", "face_landmarks5", "face_landmarks68"],
        help="chain to run (default face_landmarks68: MTCNN boxes, then 68 points)",
    )
    ap.add_argument("--cores-per-machine", type=int, default=16, help="for the cluster estimate (16)")
    ap.add_argument("--machines", default="1,4,16,64", help="cluster sizes to estimate (1,4,16,64)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args()

    import ray

    tmp = Path(tempfile.mkdtemp(prefix="oiap-cluster-"))
    figures: dict = {"images": args.images, "side": args.side, "cpus": args.cpus, "kind": args.kind}
    try:
        photos = make_photos(tmp, args.images, args.side)
        app, db = store(tmp, photos)
        for engine in ("local", "ray"):
            if engine == "ray":
                t0 = time.perf_counter()
                ray.init(
                    num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, configure_logging=False
                )
                figures["ray_init_s"] = round(time.perf_counter() - t0, 2)
            try:
                short = run(db, app.config, args.kind, args.warm, engine, args.cpus)
                full = run(db, app.config, args.kind, None, engine, args.cpus)
            finally:
                if engine == "ray":
                    ray.shutdown()
            steady = (full["images"] - short["images"]) / (full["wall_s"] - short["wall_s"])
            write_s = full["profile_s"].get("db_write", 0.0)
            figures[engine] = {
                "images": full["images"],
                "faces": full["sets"]["box"]["annotations"] if "box" in full["sets"] else None,
                "wall_s": round(full["wall_s"], 2),
                "images_per_s_with_startup": round(full["images"] / full["wall_s"], 3),
                "startup_s": round(max(0.0, full["wall_s"] - full["images"] / steady), 2),
                "images_per_s": round(steady, 3),
                "images_per_s_per_core": round(steady / args.cpus, 3),
                "driver_write_images_per_s": round(full["images"] / write_s) if write_s else None,
            }
            log(f"{engine}: {figures[engine]}")
        db.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    loc, ray_ = figures["local"], figures["ray"]
    print(
        f"bench_cluster: {args.images} photos ({args.side} px long side), {args.kind}, {args.cpus} CPUs,"
        f" load {os.getloadavg()[0]:.1f}"
    )
    for name, f in (("local engine", loc), ("ray engine", ray_)):
        print(
            f"  {name:<13} {f['images_per_s']:6.2f} images/s steady = {f['images_per_s_per_core']:5.2f} per core;"
            f" {f['wall_s']:6.1f} s for {f['images']} images with {f['startup_s']:.1f} s startup;"
            f" {f['faces']} faces; driver writes {f['driver_write_images_per_s']} images/s"
        )
    if "ray_init_s" in figures:
        print(f"  ray.init {figures['ray_init_s']} s (once per command)")
    ratio = ray_["images_per_s"] / loc["images_per_s"]
    figures["ray_over_local"] = round(ratio, 3)
    print(f"  ray / local per core: {ratio:.2f}")
    per_core = ray_["images_per_s_per_core"]
    writes = min(x for x in (loc["driver_write_images_per_s"], ray_["driver_write_images_per_s"]) if x)
    print(
        f"cluster estimate at {per_core:.2f} images/s per core (ray engine), {args.cores_per_machine} cores a"
        f" machine; the driver writes at most ~{writes:,} images/s into one store:"
    )
    figures["estimate"] = []
    for label, n in TRAIN_SPLITS.items():
        for m in (int(x) for x in args.machines.split(",")):
            rate = min(per_core * args.cores_per_machine * m, writes)
            hours = n / rate / 3600
            figures["estimate"].append({"images": n, "machines": m, "images_per_s": rate, "hours": hours})
            print(
                f"  {label}: {m:>3} machines -> {rate:8.1f} images/s, {hours:8.1f} h ({hours / 24:5.2f} days)"
            )
    if args.json:
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
