"""Fit the map from MTCNN's face boxes to dlib's frontal face detector's (app/annotators/dlib68.BOX_MAP).

dlib's 68-point predictor was trained on its own detector's boxes and is very sensitive to the box, so a
face found by MTCNN is moved and scaled into that convention first. This script runs both detectors
(dlib-bin's HOG detector at upsample 1, our MTCNN) on the photos of the faces-dev TRAINING file
(app/demo_data/training_with_face_landmarks.xml; its landmarks are not read), each also mirrored (a
convention has no left or right: without the mirrors the 17 faces gave a centre shift of -0.064 widths
(sd 0.10), from the way most of those faces turn), pairs the detections at
IoU >= 0.3, and fits centre offsets (in units of MTCNN's width and height) and side scales by least
squares (the means of the per-face ratios). It prints the constants and the mean IoU with dlib's boxes
before and after the map.

    .venv/bin/python scripts/calibrate_dlib_boxes.py          # needs dlib-bin (requirements-dev.txt)
"""

import argparse
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app import metrics  # noqa: E402
from app.annotators.dlib68 import map_box, rect_to_box  # noqa: E402
from app.annotators.eval68 import DEMO_DATA, DEV_XMLS, load_rgb  # noqa: E402

PAIR_IOU = 0.3


def dlib_boxes(detector, img: np.ndarray) -> list[tuple]:
    """dlib's frontal face detector at upsample 1, as our boxes (x1, y1 exclusive)."""
    return [rect_to_box((r.left(), r.top(), r.right(), r.bottom())) for r in detector(img, 1)]


def pairs(xml_name: str = DEV_XMLS[0]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(MTCNN box, dlib box) for every face both detectors found on the file's photos."""
    import dlib

    from app.annotators.mtcnn import MTCNN

    files = [im.get("file") for im in ET.parse(DEMO_DATA / xml_name).getroot().iter("image")]
    detector, mtcnn = dlib.get_frontal_face_detector(), MTCNN()
    out = []
    for file in files:
        for img in (load_rgb(DEMO_DATA / file), load_rgb(DEMO_DATA / file)[:, ::-1].copy()):
            d = np.array(dlib_boxes(detector, img)).reshape(-1, 4)
            m = np.array([b for b, _s, _p in mtcnn.detect(img)]).reshape(-1, 4)
            if not len(d) or not len(m):
                continue
            iou = metrics.box_iou(m, d)
            for i in range(len(m)):
                j = int(iou[i].argmax())
                if iou[i, j] >= PAIR_IOU and int(iou[:, j].argmax()) == i:
                    out.append((m[i], d[j]))
    return out


def fit(found: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """The box map's four constants: means of the per-face offsets and ratios."""
    m = np.array([p[0] for p in found])
    d = np.array([p[1] for p in found])
    mw, mh = m[:, 2] - m[:, 0], m[:, 3] - m[:, 1]
    dw, dh = d[:, 2] - d[:, 0], d[:, 3] - d[:, 1]
    dx = ((d[:, 0] + d[:, 2]) - (m[:, 0] + m[:, 2])) / 2 / mw
    dy = ((d[:, 1] + d[:, 3]) - (m[:, 1] + m[:, 3])) / 2 / mh
    cols = {"dx": dx, "dy": dy, "sw": dw / mw, "sh": dh / mh}
    for k, v in cols.items():
        print(f"{k}: mean {v.mean():+.4f} sd {v.std():.4f} min {v.min():+.4f} max {v.max():+.4f}")
    return {k: round(float(v.mean()), 4) for k, v in cols.items()}


def main(argv=None) -> int:
    """Pair the detections, fit, print the constants and the IoU before and after."""
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args(argv)
    found = pairs()
    print(f"{len(found)} faces found by both detectors on {DEV_XMLS[0]}'s photos")
    box_map = fit(found)
    before = [metrics.box_iou(m[None], d[None])[0, 0] for m, d in found]
    after = [metrics.box_iou(np.array([map_box(m, box_map)]), d[None])[0, 0] for m, d in found]
    print(f"mean IoU with dlib's boxes: MTCNN {np.mean(before):.3f}, mapped {np.mean(after):.3f}")
    print(f"BOX_MAP = {box_map}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
