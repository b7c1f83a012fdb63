"""Fit the maps from MTCNN's face boxes and five points to dlib's frontal face detector's boxes
(app/annotators/dlib68.BOX_MAP and FIVE_MAP).

dlib's 68-point predictor was trained on its own detector's boxes and is very sensitive to the box, so a
face found by MTCNN is moved and scaled into that convention first. This script runs both detectors
(dlib-bin's HOG detector at upsample 1, our MTCNN) on the photos of the faces-dev TRAINING file
(app/demo_data/training_with_face_landmarks.xml; its landmarks are not read), each also mirrored (a
convention has no left or right: without the mirrors the 17 faces gave a centre shift of -0.064 widths
(sd 0.10), from the way most of those faces turn), pairs the detections at
IoU >= 0.3, and fits centre offsets and side scales by least squares (the means of the per-face
ratios): for BOX_MAP in units of MTCNN's width and height, for FIVE_MAP around the five points' centroid
in units of their scale (dlib68.five_scale). It prints the constants and the mean IoU with dlib's boxes
before and after each map.

    .venv/bin/python scripts/calibrate_dlib_boxes.py          # needs dlib-bin (requirements-dev.txt)
"""

import argparse
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.annotations.geometry import box_iou  # noqa: E402
from app.annotators.dlib68 import five_scale, five_to_box, map_box, rect_to_box  # noqa: E402
from app.models.eval68 import DEMO_DATA, DEV_XMLS, load_rgb  # noqa: E402

PAIR_IOU = 0.3


def dlib_boxes(detector, img: np.ndarray) -> list[tuple]:
    """dlib's frontal face detector at upsample 1, as our boxes (x1, y1 exclusive)."""
    return [rect_to_box((r.left(), r.top(), r.right(), r.bottom())) for r in detector(img, 1)]


def pairs(xml_name: str = DEV_XMLS[0]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(MTCNN box, MTCNN five points, dlib box) for every face both detectors found on the file's photos
    and their mirror images."""
    import dlib

    from app.annotators.mtcnn import MTCNN

    files = [im.get("file") for im in ET.parse(DEMO_DATA / xml_name).getroot().iter("image")]
    detector, mtcnn = dlib.get_frontal_face_detector(), MTCNN()
    out = []
    for file in files:
        for img in (load_rgb(DEMO_DATA / file), load_rgb(DEMO_DATA / file)[:, ::-1].copy()):
            d = np.array(dlib_boxes(detector, img)).reshape(-1, 4)
            faces = mtcnn.detect(img)
            m = np.array([b for b, _s, _p in faces]).reshape(-1, 4)
            if not len(d) or not len(m):
                continue
            iou = box_iou(m, d)
            for i in range(len(m)):
                j = int(iou[i].argmax())
                if iou[i, j] >= PAIR_IOU and int(iou[:, j].argmax()) == i:
                    out.append((m[i], np.asarray(faces[i][2], dtype=np.float64), d[j]))
    return out


def summarise(cols: dict) -> dict:
    """Print each column's spread; the map's constants are the means."""
    for k, v in cols.items():
        print(f"  {k}: mean {v.mean():+.4f} sd {v.std():.4f} min {v.min():+.4f} max {v.max():+.4f}")
    return {k: round(float(v.mean()), 4) for k, v in cols.items()}


def fit_box(found: list) -> dict:
    """BOX_MAP: centre offsets in MTCNN's width and height, side ratios."""
    m = np.array([p[0] for p in found])
    d = np.array([p[2] for p in found])
    mw, mh = m[:, 2] - m[:, 0], m[:, 3] - m[:, 1]
    dw, dh = d[:, 2] - d[:, 0], d[:, 3] - d[:, 1]
    dx = ((d[:, 0] + d[:, 2]) - (m[:, 0] + m[:, 2])) / 2 / mw
    dy = ((d[:, 1] + d[:, 3]) - (m[:, 1] + m[:, 3])) / 2 / mh
    return summarise({"dx": dx, "dy": dy, "sw": dw / mw, "sh": dh / mh})


def fit_five(found: list) -> dict:
    """FIVE_MAP: centre offsets from the five points' centroid and sides, in units of their scale."""
    rows = []
    for _m, five, d in found:
        c, scale = five_scale(five)
        centre = (d[:2] + d[2:]) / 2
        rows.append([*((centre - c) / scale), (d[2] - d[0]) / scale, (d[3] - d[1]) / scale])
    a = np.array(rows)
    return summarise({"dx": a[:, 0], "dy": a[:, 1], "sw": a[:, 2], "sh": a[:, 3]})


def mean_iou(boxes: list, found: list) -> float:
    """Mean IoU of boxes with dlib's boxes of the same faces."""
    return float(
        np.mean([box_iou(np.array([b]), p[2][None])[0, 0] for b, p in zip(boxes, found, strict=True)])
    )


def main(argv=None) -> int:
    """Pair the detections, fit, print the constants and the IoU before and after."""
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args(argv)
    found = pairs()
    print(f"{len(found)} faces found by both detectors on {DEV_XMLS[0]}'s photos and their mirrors")
    print("BOX_MAP (from MTCNN's box):")
    box_map = fit_box(found)
    print("FIVE_MAP (from MTCNN's five points):")
    five_map = fit_five(found)
    print(
        f"mean IoU with dlib's boxes: MTCNN's box {mean_iou([p[0] for p in found], found):.3f}, "
        f"mapped {mean_iou([map_box(p[0], box_map) for p in found], found):.3f}, "
        f"from five points {mean_iou([five_to_box(p[1], five_map) for p in found], found):.3f}"
    )
    print(f"BOX_MAP = {box_map}")
    print(f"FIVE_MAP = {five_map}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
