"""Time `push` and `fetch` of big annotation sets against a local moto S3 server.

python scripts/bench_storage.py --boxes 50000 --landmarks 20000
"""

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/moto-api/data.json", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto server did not start")


def main() -> None:
    """Seed an instance, push it, push again, fetch into an empty one; print the times."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--boxes", type=int, default=20000)
    ap.add_argument("--landmarks", type=int, default=5000, help="68-point annotations on the first boxes")
    args = ap.parse_args()
    for k, v in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(k, v)

    import boto3

    from app import create_app
    from app.annotations.rows import annotation_row, insert_annotations
    from app.db import connect, immediate, migrate
    from app.sets.queries import create_set
    from app.share.s3 import configured_bucket, fetch, push

    proc, url = _moto()
    try:
        boto3.client("s3", endpoint_url=url).create_bucket(Bucket="bench")
        with tempfile.TemporaryDirectory() as tmp:
            apps = []
            for name in ("a", "b"):
                inst = Path(tmp) / name
                apps.append(
                    create_app(
                        {
                            "TESTING": True,
                            "INSTANCE_PATH": str(inst),
                            "DATABASE": str(inst / "oiap.sqlite3"),
                            "MODELS_DIR": str(inst / "models"),
                            "CACHE_DIR": str(inst / "cache"),
                            "SECRET_KEY": "bench",
                            "S3_BUCKET": "bench",
                            "S3_ENDPOINT_URL": url,
                        }
                    )
                )
                migrate(connect(apps[-1].config["DATABASE"]))
            db = connect(apps[0].config["DATABASE"])
            rng = random.Random(0)
            ids = [f"{i:016x}" for i in range(args.boxes)]
            with immediate(db):
                db["images"].insert_all(
                    (
                        {"id": i, "split": "train", "width": 1024, "height": 768, "created_at": "x"}
                        for i in ids
                    ),
                    batch_size=5000,
                )
                boxes = create_set(db, "bench-boxes", "face_box", "model")
                insert_annotations(
                    db,
                    (
                        annotation_row(boxes, i, "face_box", (0.1, 0.1, 0.5, 0.6), score=rng.random())
                        for i in ids
                    ),
                )
                lm = create_set(db, "bench-lm68", "face_landmarks68", "model")
                box_ids = [
                    r[0]
                    for r in db.execute("SELECT id FROM annotations ORDER BY id LIMIT ?", [args.landmarks])
                ]
                insert_annotations(
                    db,
                    (
                        annotation_row(
                            lm,
                            ids[n],
                            "face_landmarks68",
                            None,
                            [[rng.random(), rng.random(), 1] for _ in range(68)],
                            parent_id=b,
                        )
                        for n, b in enumerate(box_ids)
                    ),
                )
                db.execute("UPDATE annotations SET rating = 'good', rated_at = 'x' WHERE id % 3 = 0")
            db.close()
            n = args.boxes + args.landmarks
            for label, app, fn in (
                (
                    "push",
                    apps[0],
                    lambda d, app: push(
                        d, configured_bucket(app.config, app.extensions), cache_dir=app.config["CACHE_DIR"]
                    ),
                ),
                (
                    "push again",
                    apps[0],
                    lambda d, app: push(
                        d, configured_bucket(app.config, app.extensions), cache_dir=app.config["CACHE_DIR"]
                    ),
                ),
                (
                    "fetch",
                    apps[1],
                    lambda d, app: fetch(
                        d,
                        configured_bucket(app.config, app.extensions),
                        models_dir=app.config["MODELS_DIR"],
                        cache_dir=app.config["CACHE_DIR"],
                    ),
                ),
            ):
                with app.app_context():
                    d = connect(app.config["DATABASE"])
                    t = time.perf_counter()
                    report = fn(d, app)
                    dt = time.perf_counter() - t
                    d.close()
                moved = report.get("uploaded", report.get("fetched"))
                size = sum(i["size"] for i in moved)
                print(
                    f"{label:<11} {n} annotations: {dt:6.2f} s  ({len(moved)} objects, {size / 1e6:.1f} MB moved)"
                )
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
