"""MTCNN alone under other settings: on the nine dev photos resized to 1024x768, the faces it returns,
the candidates RNet and ONet see an image, and its CPU ms an image by stage (one thread).

Each setting is PNET,RNET,ONET thresholds and the pyramid's factor, e.g. 0.7,0.7,0.7,0.709 (the
default). Quality is measured elsewhere: scripts/eval_pnet_threshold.py (faces found and NME per dev
file), scripts/eval_landmarks68.py.

    python scripts/bench_mtcnn_settings.py
    python scripts/bench_mtcnn_settings.py 0.6,0.7,0.7,0.709 0.7,0.7,0.7,0.709 0.7,0.8,0.7,0.709 0.7,0.7,0.7,0.6
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

DEFAULTS = [
    "0.6,0.7,0.7,0.709",
    "0.7,0.7,0.7,0.709",
    "0.7,0.8,0.7,0.709",
    "0.7,0.7,0.7,0.65",
    "0.7,0.7,0.7,0.6",
]


def main(argv=None) -> int:
    """Print one line a setting."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("settings", nargs="*", default=DEFAULTS, help="PNET,RNET,ONET,FACTOR")
    args = p.parse_args(argv)
    photos = [
        np.asarray(Image.open(f).convert("RGB").resize((1024, 768), Image.Resampling.BICUBIC))
        for f in sorted(DEMO_DATA.glob("20*.jpg"))
    ]
    for setting in args.settings:
        *th, factor = (float(v) for v in setting.split(","))
        det = M.MTCNN(threads=1, thresholds=th, factor=factor)
        seen: dict[str, int] = {}
        run = det._run

        def counted(net, x, run=run, seen=seen):
            seen[net] = seen.get(net, 0) + len(x)
            return run(net, x)

        det._run = counted
        det.detect(photos[0])  # sessions built outside the timing
        seen.clear()
        det.profile.clear()
        t0 = time.thread_time()
        faces = sum(len(det.detect(im)) for im in photos)
        ms = 1000 * (time.thread_time() - t0) / len(photos)
        stages = "  ".join(f"{k} {1000 * v / len(photos):.1f}" for k, v in det.profile.items())
        print(
            f"thresholds {th} factor {factor}: {faces} faces; an image: RNet {seen.get('rnet', 0) // len(photos)}"
            f" and ONet {seen.get('onet', 0) // len(photos)} candidates, {ms:.1f} CPU ms ({stages})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
