"""Time our dlib shape_predictor port (app/annotators/dlib68.py) against dlib itself (dlib-bin), same run.

Reads the .dat with our reader (wall and CPU seconds), then on the dev photos (app/demo_data/*.jpg)
predicts every face dlib's HOG detector finds at upsample 1, with our cascade (all faces of an image in
one call) and with dlib's predictor (one call a face), and prints CPU milliseconds a face for both and
how far apart the points are (dlib rounds to whole pixels: ours should round to exactly its points).

    .venv/bin/python scripts/bench_dlib68.py [--predictor /usr/share/dlib/shape_predictor_68_face_landmarks.dat]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.annotators import dlib68  # noqa: E402
from app.models.eval68 import load_rgb  # noqa: E402


def main(argv=None) -> int:
    """Read, predict, compare, print."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--predictor", default=str(dlib68.DEBIAN_PATH), help="the .dat (default: Debian's)")
    p.add_argument("--repeat", type=int, default=3, help="passes over the photos (default 3)")
    args = p.parse_args(argv)
    try:
        import dlib
    except ImportError:
        p.error("dlib-bin is not installed: pip install -r requirements-dev.txt")
    if not Path(args.predictor).is_file():
        p.error(
            f"--predictor {args.predictor} does not exist: apt-get install libdlib-data, or give its path"
        )

    w0, c0 = time.perf_counter(), time.process_time()
    ours = dlib68.read_shape_predictor(args.predictor)
    print(f"our reader: {time.perf_counter() - w0:.2f} s wall, {time.process_time() - c0:.2f} s CPU")
    w0, c0 = time.perf_counter(), time.process_time()
    theirs = dlib.shape_predictor(args.predictor)
    print(f"dlib's:     {time.perf_counter() - w0:.2f} s wall, {time.process_time() - c0:.2f} s CPU")

    detector = dlib.get_frontal_face_detector()
    photos = []
    for path in sorted((ROOT / "app" / "demo_data").glob("*.jpg")):
        img = load_rgb(path)
        rects = detector(img, 1)
        box = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], dtype=np.float64)
        photos.append((img, rects, box))
    n_faces = sum(len(r) for _, r, _ in photos)

    t_ours = t_dlib = 0.0
    worst, mismatched = 0.0, 0
    for _ in range(args.repeat):
        c0 = time.process_time()
        got = [dlib68.run_cascade(ours, dlib68.to_grey(img), box) for img, _, box in photos]
        t_ours += time.process_time() - c0
        c0 = time.process_time()
        want = [[theirs(img, r) for r in rects] for img, rects, _ in photos]
        t_dlib += time.process_time() - c0
    for g, w in zip(got, want, strict=True):
        for pts, shape in zip(g, w, strict=True):
            ref = np.array([[q.x, q.y] for q in shape.parts()], dtype=np.float64)
            worst = max(worst, float(np.abs(pts - ref).max()))
            mismatched += int((np.floor(pts + 0.5) != ref).any(axis=1).sum())
    per = 1000 / (n_faces * args.repeat)
    print(f"{n_faces} faces on {len(photos)} photos, {args.repeat} passes; CPU ms a face:")
    print(f"  ours {t_ours * per:.2f} (all faces of an image in one call), dlib {t_dlib * per:.2f}")
    print(
        f"points: largest difference {worst:.5f} px; rounded, {mismatched} of {n_faces * 68} differ from dlib's"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
