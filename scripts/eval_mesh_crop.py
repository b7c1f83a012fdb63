"""The attention mesh's crop anti-aliasing (mesh478.reduction) measured where it matters: faces much
larger than the mesh's 192 px input.

faces-dev's photos are small (every mesh ROI reads at most 0.73 image pixels a crop pixel), so each
photo is upscaled k times (PIL's Lanczos) with its boxes and 68 points, and the default annotator runs
on the given boxes (ONet's five points, one mesh pass): an ROI then reads about k times more image
pixels a crop pixel. For each (REDUCE_FROM, REDUCE_TO) option it prints the mean NME (and the worst
face) per factor k. Choose on the training file; the testing file is for reporting once.

    python scripts/eval_mesh_crop.py                                   # training file, k = 1 4 8 12
    python scripts/eval_mesh_crop.py --xml testing_with_face_landmarks.xml
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.annotators import mesh478  # noqa: E402
from app.annotators.attention68 import AttentionMesh68  # noqa: E402
from app.models import eval68  # noqa: E402

# name: (REDUCE_FROM, REDUCE_TO); "none" never reduces.
OPTIONS = {"none": (float("inf"), 2.0), "4/2": (4.0, 2.0), "3/1.5": (3.0, 1.5), "2/1": (2.0, 1.0)}


def main(argv=None) -> int:
    """Print NME per option and upscale factor."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--xml", default=eval68.DEV_XMLS[0], help="a faces-dev XML (default: the training file)")
    p.add_argument(
        "-k", type=int, nargs="+", default=[1, 4, 8, 12], help="upscale factors (default 1 4 8 12)"
    )
    p.add_argument("--options", nargs="+", choices=list(OPTIONS), default=list(OPTIONS))
    args = p.parse_args(argv)
    faces = eval68.load_faces(eval68.DEMO_DATA / args.xml)
    by_file: dict[str, list] = {}
    for f in faces:
        by_file.setdefault(f.file, []).append(f)
    photos = {name: Image.open(eval68.DEMO_DATA / name).convert("RGB") for name in by_file}
    ann = AttentionMesh68()
    keep = mesh478.REDUCE_FROM, mesh478.REDUCE_TO
    print(f"{args.xml}: {len(faces)} faces, the default annotator on the given boxes; NME mean (worst)")
    try:
        for k in args.k:
            imgs = {
                n: np.asarray(im.resize((im.width * k, im.height * k), Image.Resampling.LANCZOS))
                for n, im in photos.items()
            }
            row = []
            for name in args.options:
                mesh478.REDUCE_FROM, mesh478.REDUCE_TO = OPTIONS[name]
                nmes, t = [], 0.0
                for file, group in by_file.items():
                    # Pixel centres at integers: x -> (x + 0.5) k - 0.5.
                    boxes = [tuple(np.array(f.box) * k) for f in group]
                    t0 = time.thread_time()
                    preds = ann.predict_many(imgs[file], boxes)
                    t += time.thread_time() - t0
                    nmes += [
                        eval68.nme(q, (f.points + 0.5) * k - 0.5) for q, f in zip(preds, group, strict=True)
                    ]
                row.append(f"{name} {np.mean(nmes):.4f} ({max(nmes):.3f}) {1000 * t / len(faces):.1f} ms")
            print(f"k={k:<3} " + "  ".join(row), flush=True)
    finally:
        mesh478.REDUCE_FROM, mesh478.REDUCE_TO = keep
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
