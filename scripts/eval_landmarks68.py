"""Measure the 68-point annotators on the 43 dev faces (NME by outer eye corners 36-45).

Usage: python scripts/eval_landmarks68.py [--annotator NAME ...] [--calibrate] [--fit-mapping]
Conditions: "box" = true box only; "five" = five points derived from the true 68 (eye centres, nose tip
30, mouth corners 48/54); "mtcnn" = box and five points from the MTCNN detector matched to the true box
by IoU, when the detector is installed (app.annotators.mtcnn).
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.annotators import eval68  # noqa: E402
from app.annotators.ibug_xml import load_faces  # noqa: E402
from app.annotators.landmarks68 import NAMES, get_landmarks68  # noqa: E402
from app.annotators.template68 import mean_shape, similarity  # noqa: E402


def calibrate() -> None:
    """Print the box placement constants of template68 as measured on the training file only."""
    cal = []
    for f in load_faces(eval68.DEMO_DATA / eval68.DEV_XMLS[0]):
        m, t = similarity(mean_shape(), f.points)
        x0, _y0, x1, y1 = f.box
        w = x1 - x0
        cal.append((np.sqrt(abs(np.linalg.det(m))) / w, (t[0] - (x0 + x1) / 2) / w, (y1 - t[1]) / w))
    s, dx, dy = np.mean(cal, 0)
    print(f"BOX_SCALE = {s:.3f}\nBOX_DX = {dx:.3f}\nBOX_DY = {dy:.3f}")


def row(name: str, cond: str, file: str, r: dict) -> str:
    """One line of the table."""
    return (
        f"{name:<11} {cond:<6} {file:<34} n={r['n']:<3} NME={r['mean_nme']:.4f} "
        f"fail@0.08={r['fail_0.08']:.3f} fail@0.10={r['fail_0.10']:.3f}"
    )


def main() -> None:
    """Print mean NME and failure rates per annotator, condition and file, and over all 43 faces."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--annotator", action="append", choices=NAMES)
    ap.add_argument("--calibrate", action="store_true", help="print template68's box constants")
    ap.add_argument("--fit-mapping", action="store_true", help="print facemesh68's 468->68 table")
    args = ap.parse_args()
    if args.calibrate:
        calibrate()
        return
    if args.fit_mapping:
        cost = eval68.mesh_vertex_costs(eval68.DEV_XMLS[0])
        table = eval68.unique_argmin(cost)
        print(f"MESH_TO_IBUG68 = {table}")
        print(f"training NME with this table {cost[np.arange(68), table].mean():.4f}")
        return
    conds = ["box", "five"] + (["mtcnn"] if eval68.mtcnn_available() else [])
    for name in args.annotator or NAMES:
        ann = get_landmarks68(name)
        for cond in conds:
            nmes = []
            for xml in eval68.DEV_XMLS:
                per = eval68.face_nmes(ann, xml, cond)
                nmes += per
                print(row(name, cond, xml, eval68.summary(per)))
            print(row(name, cond, "overall", eval68.summary(nmes)))


if __name__ == "__main__":
    main()
