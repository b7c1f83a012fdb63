"""Measure the 68-point annotators on the 43 dev faces (NME by outer eye corners 36-45).

Usage: python scripts/eval_landmarks68.py [--annotator NAME ...] [--calibrate] [--fit-mapping]
       [--dlib-predictor shape_predictor_68_face_landmarks.dat]
Conditions: "box" = true box only; "five" = five points derived from the true 68 (eye centres, nose tip
30, mouth corners 48/54); "mtcnn" = box and five points from the MTCNN detector matched to the true box
(IoU >= 0.3), "mtcnn_box" = that box alone; both only where app.annotators.mtcnn exists. n counts the
faces measured: a face MTCNN missed is left out.
With --dlib-predictor, dlib's regression-tree predictor (app/annotators/dlib68.py, run without dlib) is
measured too: "box" = the files' boxes; "dlibdet" = dlib's own HOG detector's box at upsample 1 (needs
dlib-bin), "mtcnn_five" = a box in dlib's convention from MTCNN's five points (dlib68.FIVE_MAP, what
bulk-annotate uses), "mtcnn_map" = MTCNN's box mapped (dlib68.BOX_MAP, used where a face has no five
points), "mtcnn_raw" = MTCNN's box as it is.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.annotations.geometry import box_iou  # noqa: E402
from app.annotators.landmarks68 import NAMES, get_landmarks68  # noqa: E402
from app.annotators.template68 import mean_shape, similarity  # noqa: E402
from app.images.decode import load_rgb  # noqa: E402
from app.imports.dlib_xml import load_faces  # noqa: E402
from app.models import eval68  # noqa: E402


def calibrate() -> None:
    """Print template68's box placement as measured on the training file's dlib boxes and, where
    MTCNN is installed, on MTCNN's boxes of the same faces."""
    faces = load_faces(eval68.DEMO_DATA / eval68.DEV_XMLS[0])
    kinds = {"dlib": [f.box for f in faces]}
    detector = eval68.get_detector()
    if detector is not None:
        boxes = []
        for f in faces:
            dets = detector.detect(load_rgb(eval68.DEMO_DATA / f.file))
            iou = box_iou(np.array([f.box]), np.array([d[0] for d in dets]))[0] if dets else [0]
            j = int(np.argmax(iou))
            boxes.append(dets[j][0] if iou[j] >= eval68.MATCH_IOU else None)
        kinds["mtcnn"] = boxes
    for kind, boxes in kinds.items():
        cal = []
        for f, box in zip(faces, boxes, strict=True):
            if box is None:
                continue
            m, t = similarity(mean_shape(), f.points)
            x0, y0, x1, y1 = box
            w, h = x1 - x0, y1 - y0
            cal.append((np.sqrt(abs(np.linalg.det(m)) / (w * h)), (t[1] - (y0 + y1) / 2) / h, h / w))
        s, dy, aspect = np.mean(cal, 0)
        print(
            f"{kind:<6} n={len(cal)} scale/sqrt(wh)={s:.3f} centroid below centre={dy:.3f} h  h/w={aspect:.3f}"
        )


class DlibDetector:
    """dlib's frontal face detector (dlib-bin) at upsample 1, with eval68's detect() interface."""

    def __init__(self):
        import dlib

        self.detector = dlib.get_frontal_face_detector()

    def detect(self, img: np.ndarray) -> list:
        """[(box, score, five points)]: dlib gives no five points (unused for "mtcnn_box")."""
        from app.annotators.dlib68 import rect_to_box

        rects = self.detector(img, 1)
        return [(rect_to_box((r.left(), r.top(), r.right(), r.bottom())), 1.0, None) for r in rects]


def eval_dlib(path: str, mtcnn) -> None:
    """Rows for dlib's predictor from the files' boxes, dlib's detector's and MTCNN's (mapped or not)."""
    from app.annotators.dlib68 import BOX_MAP, FIVE_MAP, DlibLandmarks68

    mapped, raw = DlibLandmarks68(path, BOX_MAP, five_map=FIVE_MAP), DlibLandmarks68(path)
    try:
        dlib_det = DlibDetector()
    except ImportError:
        dlib_det = None
        print("dlib-bin is not installed: no dlibdet rows (pip install -r requirements-dev.txt)")
    runs = [("box", raw, "box", None), ("dlibdet", raw, "mtcnn_box", dlib_det)]
    runs += [("mtcnn_five", mapped, "mtcnn", mtcnn), ("mtcnn_map", mapped, "mtcnn_box", mtcnn)]
    runs += [("mtcnn_raw", raw, "mtcnn_box", mtcnn)]
    for label, ann, cond, det in runs:
        if cond != "box" and det is None:
            continue
        nmes = []
        for xml in eval68.DEV_XMLS:
            per = eval68.face_nmes(ann, xml, cond, detector=det)
            nmes += per
            print(row("dlib68", label, xml, eval68.summary(per)))
        print(row("dlib68", label, "overall", eval68.summary(nmes)))


def row(name: str, cond: str, file: str, r: dict) -> str:
    """One line of the table."""
    return (
        f"{name:<11} {cond:<10} {file:<34} n={r['n']:<3} NME={r['mean_nme']:.4f} "
        f"fail@0.08={r['fail_0.08']:.3f} fail@0.10={r['fail_0.10']:.3f}"
    )


def main() -> None:
    """Print mean NME and failure rates per annotator, condition and file, and over all 43 faces."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--annotator", action="append", choices=NAMES)
    ap.add_argument("--calibrate", action="store_true", help="print template68's box constants")
    ap.add_argument("--fit-mapping", action="store_true", help="print facemesh68's 468->68 table")
    ap.add_argument(
        "--dlib-predictor",
        metavar="PATH",
        help="also measure dlib's predictor from this .dat (e.g. /usr/share/dlib/shape_predictor_68_face_landmarks.dat)",
    )
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
    detector = eval68.get_detector()
    conds = ["box", "five"] + (["mtcnn", "mtcnn_box"] if detector is not None else [])
    for name in args.annotator or NAMES:
        ann = get_landmarks68(name)
        for cond in conds:
            nmes = []
            for xml in eval68.DEV_XMLS:
                per = eval68.face_nmes(ann, xml, cond, detector=detector)
                nmes += per
                print(row(name, cond, xml, eval68.summary(per)))
            print(row(name, cond, "overall", eval68.summary(nmes)))
    if args.dlib_predictor:
        eval_dlib(args.dlib_predictor, detector)


if __name__ == "__main__":
    main()
