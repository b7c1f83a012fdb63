"""MTCNN's PNet per pyramid level on one 1024x768 photo: the level's size, PNet's CPU ms (median of
20 runs, one onnxruntime thread) and its resize's (gathers over the photo's integral image, mean of 20): what
packing the small levels into one PNet call could win (their calls' overhead beyond their pixels).

    python scripts/bench_pnet_levels.py [--min-face-size 20]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.annotators import mtcnn as M  # noqa: E402
from app.models.eval68 import DEMO_DATA  # noqa: E402


def main(argv=None) -> int:
    """Print one line per level and the totals."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--min-face-size", type=int, default=M.MIN_FACE_SIZE)
    args = p.parse_args(argv)
    img = Image.open(DEMO_DATA / "2008_002506.jpg").convert("RGB").resize((1024, 768))
    ii = M.integral(np.asarray(img))
    det = M.MTCNN(threads=1, min_face_size=args.min_face_size)
    sess = M.session(det.paths["pnet"], 1)
    h, w = 768, 1024
    rows = []
    for s in det.scales(h, w):
        x = M.pyramid_level(ii, int(h * s + 1), int(w * s + 1))
        sess.run(None, {"image": x})
        ts = []
        for _ in range(20):
            t0 = time.thread_time()
            sess.run(None, {"image": x})
            ts.append(time.thread_time() - t0)
        t0 = time.thread_time()
        for _ in range(20):
            M.pyramid_level(ii, int(h * s + 1), int(w * s + 1))
        resize = (time.thread_time() - t0) / 20
        rows.append((x.shape[3], x.shape[2], 1000 * float(np.median(ts)), 1000 * resize))
        print(
            f"scale {s:.3f} {x.shape[3]:>4}x{x.shape[2]:<4} PNet {rows[-1][2]:7.3f} ms  resize {rows[-1][3]:6.3f} ms"
        )
    big = rows[0][2] / (rows[0][0] * rows[0][1])
    small = rows[4:]
    px = sum(a * b for a, b, _, _ in small)
    print(
        f"levels past the fourth: PNet {sum(r[2] for r in small):.2f} ms for {px} pixels "
        f"({big * px:.2f} ms at the first level's rate per pixel); their resizes {sum(r[3] for r in small):.2f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
