"""Would mirror averaging pay only on turned faces? NME of attention68 when the last pass is
mirror-averaged only for faces whose five-point yaw proxy (attention68.frontal's |nose x - eye midpoint
x| / eye distance) is at least a threshold, the others run once (issue 22, lever 4).

Per face of faces-dev's two files and each condition of scripts/eval_landmarks68.py (box, five, mtcnn,
mtcnn_box), the chain runs with and without the mirror; the five points are the condition's own
(five: from the true 68; mtcnn: MTCNN's), else ONet's on the box, as attention68 places them. The
threshold is chosen on the training file only: the largest whose NME from MTCNN is not worse than
mirroring every face by more than --tolerance; the testing file is then read at that threshold.

    python scripts/eval_mirror_gate.py [--tolerance 0.00005]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

THRESHOLDS = (0.0, 0.03, 0.05, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3, float("inf"))


def yaw_proxy(points5) -> float:
    """attention68.frontal's measure: |nose x - eye midpoint x| / eye distance."""
    p = np.asarray(points5, dtype=np.float64)[:, :2]
    return float(abs(p[2, 0] - (p[0, 0] + p[1, 0]) / 2) / np.linalg.norm(p[1] - p[0]))


def per_face(xml: str, cond: str, detector) -> np.ndarray:
    """(n, 3): yaw proxy, NME with the mirror, NME without, for each face the condition finds."""
    from app.annotators.attention68 import AttentionMesh68
    from app.annotators.five_roi import onet_points5
    from app.images.decode import load_rgb
    from app.imports.dlib_xml import load_faces
    from app.models import eval68

    faces = load_faces(eval68.DEMO_DATA / xml)
    runs = [
        eval68.predict_faces(AttentionMesh68(mirror=m), faces, eval68.DEMO_DATA, cond, detector)
        for m in (True, False)
    ]
    by_file: dict[str, list[int]] = {}
    for i, f in enumerate(faces):
        by_file.setdefault(f.file, []).append(i)
    yaws: list = [None] * len(faces)
    for file, idx in by_file.items():
        img = load_rgb(eval68.DEMO_DATA / file)
        boxes, fives, found = eval68._inputs(img, [faces[i] for i in idx], cond, detector)
        fives = fives if fives is not None else onet_points5(img, boxes)
        for k, i in enumerate(idx):
            if found[k] and fives[k] is not None:
                yaws[i] = yaw_proxy(fives[k])
    return np.array(
        [
            (yaws[i], eval68.nme(runs[0][i], f.points), eval68.nme(runs[1][i], f.points))
            for i, f in enumerate(faces)
            if runs[0][i] is not None and yaws[i] is not None
        ]
    )


def gated(r: np.ndarray, t: float) -> float:
    """Mean NME with the mirror for faces of yaw proxy >= t only."""
    return float(np.where(r[:, 0] >= t, r[:, 1], r[:, 2]).mean())


def main(argv=None) -> int:
    """Print NME per threshold, file and condition, the threshold the training file picks, and testing's."""
    from app.models import eval68

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--tolerance", type=float, default=0.00005, help="training NME from MTCNN allowed above mirroring all"
    )
    args = p.parse_args(argv)
    detector = eval68.get_detector()
    if detector is None:
        raise SystemExit("MTCNN is not available: install the app's requirements.txt")
    files = {"training": eval68.DEV_XMLS[0], "testing": eval68.DEV_XMLS[1]}
    data = {(f, c): per_face(x, c, detector) for f, x in files.items() for c in eval68.CONDS}
    cols = [(f, c) for f in files for c in eval68.CONDS]
    print("mirror iff yaw >= t   " + "  ".join(f"{f[:5]}/{c:<9}" for f, c in cols) + "   (share mirrored)")
    for t in THRESHOLDS:
        cells = [f"{gated(data[k], t):.5f} ({100 * (data[k][:, 0] >= t).mean():3.0f}%)" for k in cols]
        print(f"t = {t:<5}  " + "  ".join(cells))
    train = data[("training", "mtcnn")]
    ok = [t for t in THRESHOLDS if gated(train, t) <= gated(train, 0.0) + args.tolerance]
    t = max(ok)
    test = data[("testing", "mtcnn")]
    print(
        f"chosen on training (from MTCNN, within {args.tolerance} of mirroring all): t = {t}: training "
        f"{gated(train, 0.0):.5f} -> {gated(train, t):.5f}, testing {gated(test, 0.0):.5f} -> {gated(test, t):.5f}"
        f" (mirrored: {100 * (test[:, 0] >= t).mean():.0f}% of testing's faces)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
