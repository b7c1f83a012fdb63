"""What one big photo costs the server: time and peak memory of a resized copy, random crops and a
model try on an N x N JPEG, each kind of request in a fresh process (issue 19 point 5).

    python scripts/bench_big_image.py --side 8000
    python scripts/bench_big_image.py --side 8000 --repo /tmp/oiap-before   # another checkout, same bench

Each line: the request, its wall time per request, and the process's peak RSS after it (ru_maxrss),
with the RSS of a process that only built the app and logged in as the baseline.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, random, resource, sys, time
sys.path.insert(0, sys.argv[1])
from app import create_app
from app.db import connect
inst, kind, image_id, model_id, n = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])
app = create_app({"TESTING": True, "INSTANCE_PATH": inst, "DATABASE": inst + "/oiap.sqlite3",
    "CACHE_DIR": inst + "/cache", "IMAGES_DIR": inst + "/images", "MODELS_DIR": inst + "/models",
    "SECRET_KEY": "bench", "WTF_CSRF_ENABLED": False, "RATELIMIT_ENABLED": False})
c = app.test_client()
assert c.post("/login", data={"username": "admin", "password": "bench password"}).status_code == 302
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rng = random.Random(0)
urls = []
for i in range(n):
    if kind == "resized":
        urls.append(f"/images/{image_id}/512")
    elif kind == "crop":
        x, y = rng.uniform(0, 0.8), rng.uniform(0, 0.8)
        urls.append(f"/images/{image_id}/crop?box={x:.4f},{y:.4f},{x + 0.1:.4f},{y + 0.1:.4f}&size=256")
    else:
        urls.append(f"/models/{model_id}/try?image_id={image_id}")
t0 = time.perf_counter()
codes = []
for u in urls:
    r = c.get(u)
    codes.append(r.status_code)
    r.close()
dt = (time.perf_counter() - t0) / n
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"kind": kind, "codes": sorted(set(codes)), "s_per_request": round(dt, 3),
    "peak_rss_mb": round(peak / 1024), "base_rss_mb": round(base / 1024)}))
"""

SETUP = r"""
import sys
sys.path.insert(0, sys.argv[1])
from app import create_app
from app.auth.users import create_user
from app.db import connect, migrate, now
from app.annotators.facemesh68 import MODEL_PATH
from app.models.registry import register_model
inst, path = sys.argv[2], sys.argv[3]
app = create_app({"TESTING": True, "INSTANCE_PATH": inst, "DATABASE": inst + "/oiap.sqlite3",
    "IMAGES_DIR": inst + "/images", "MODELS_DIR": inst + "/models", "SECRET_KEY": "bench"})
db = connect(inst + "/oiap.sqlite3")
migrate(db)
create_user(db, "admin", "bench password", "admin")
image_id = "00000000000000ee"
db.execute("INSERT INTO images (id, split, path, created_at) VALUES (?, 'train', ?, ?)", [image_id, path, now()])
if "image_folders" in db.table_names():
    db.execute("INSERT INTO image_folders (path, source, added_at) VALUES (?, 'bench', ?)", [str(__import__('pathlib').Path(path).parent), now()])
db.execute("INSERT INTO annotation_sets (name, kind, source, status, created_at) VALUES ('b', 'face_box', 'human', 'open', ?)", [now()])
db.execute("INSERT INTO annotations (set_id, image_id, kind, label, x0, y0, x1, y1, created_at) VALUES (1, ?, 'face_box', '/m/0dzct', 0.4, 0.3, 0.6, 0.6, ?)", [image_id, now()])
model_id = register_model(db, MODEL_PATH, "face_landmarks68", name="mesh", source="added",
    models_dir=inst + "/models", params={"runner": "landmarks68:facemesh68"})
db.conn.commit()
print(image_id, model_id)
"""


def main() -> None:
    """Build the photo and instance, then time each kind of request in its own process."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--side", type=int, default=8000, help="The photo's width and height in pixels.")
    ap.add_argument("--repo", default=str(Path(__file__).resolve().parent.parent), help="Checkout to bench.")
    ap.add_argument("--crops", type=int, default=5, help="Random crop requests (each a new cache file).")
    args = ap.parse_args()
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        inst = Path(tmp) / "instance"
        (inst / "images").mkdir(parents=True)
        photo = inst / "images" / "big.jpg"
        src = Path(args.repo) / "app" / "demo_data" / "2008_001322.jpg"
        with Image.open(src) as im:
            im.convert("RGB").resize((args.side, args.side)).save(photo, "JPEG", quality=90)
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        out = subprocess.run(
            [sys.executable, "-c", SETUP, args.repo, str(inst), str(photo)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
            cwd=tmp,
        ).stdout.split()
        image_id, model_id = out[-2], out[-1]
        for kind, n in (("resized", 1), ("crop", args.crops), ("try", 1)):
            r = subprocess.run(
                [sys.executable, "-c", CHILD, args.repo, str(inst), kind, image_id, model_id, str(n)],
                capture_output=True,
                text=True,
                env=env,
                cwd=tmp,
            )
            line = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-500:]
            print(json.dumps({"side": args.side, **json.loads(line)}) if line.startswith("{") else line)


if __name__ == "__main__":
    main()
