"""MTCNN's PNet threshold against the faces it costs: recall and the 68 points, per dev file.

For each threshold: the dev faces found at IoU 0.5 (dlib's boxes) with each dev photo at its own size
and scaled down so its faces shrink towards MTCNN's smallest (20 px), and the attention68 default's
NME from MTCNN's box and five points (mean and worst face). The threshold is chosen on the training
file (the largest that finds the same faces at every scale down to 20 px faces, with NME within
0.0002 and no worse worst face); the testing file is the check.

    python scripts/eval_pnet_threshold.py                     # 0.6 (facenet's) to 0.8
    python scripts/eval_pnet_threshold.py --thresholds 0.6 0.7
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.annotators import mtcnn as M  # noqa: E402
from app.annotators.attention68 import AttentionMesh68  # noqa: E402
from app.images.decode import load_rgb  # noqa: E402
from app.models.eval68 import face_nmes  # noqa: E402
from app.models.eval_detector import DEMO_DATA, DEV_XMLS, dev_faces, match  # noqa: E402

SCALES = (1.0, 0.7, 0.5, 0.4)


def recall(detector, xml: str, scale: float) -> tuple[int, int, float]:
    """(faces found at IoU 0.5, faces, median face width in px) with the file's photos resized by scale."""
    found = total = 0
    widths = []
    for file, faces in dev_faces(DEMO_DATA, (xml,)).items():
        img = Image.fromarray(load_rgb(DEMO_DATA / file))
        if scale != 1.0:
            img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
        dets = detector.detect(np.asarray(img))
        true = [tuple(v * scale for v in f.box) for f in faces]
        widths += [t[2] - t[0] for t in true]
        found += sum(m is not None for m in match(true, [d[0] for d in dets], 0.5))
        total += len(true)
    return found, total, float(np.median(widths))


def main(argv=None) -> int:
    """Print one line per threshold and dev file."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.6, 0.65, 0.7, 0.75, 0.8])
    args = p.parse_args(argv)
    mesh = AttentionMesh68()
    for t in args.thresholds:
        det = M.MTCNN(thresholds=(t, *M.THRESHOLDS[1:]))
        for xml in DEV_XMLS:
            found = []
            for s in SCALES:
                hit, n, width = recall(det, xml, s)
                found.append(f"x{s}: {hit}/{n} ({width:.0f} px)")
            nmes = face_nmes(mesh, xml, "mtcnn", detector=det)
            print(
                f"pnet {t:.2f}  {xml.split('_')[0]:8}  found {'  '.join(found)}  "
                f"NME {np.mean(nmes):.5f} worst {max(nmes):.4f} (n={len(nmes)})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
