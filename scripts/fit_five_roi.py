"""Fit app/annotators/five_roi.py's COEF: the attention mesh's second-pass ROI from MTCNN's five points.

Runs MTCNN on faces-dev's training photos (the files named by training_with_face_landmarks.xml; only
the names are read, no box or point), then for every detected face the two-pass chain's first pass
(attention68's lite mesh on the detection's ROI) and the ROI it gives the second pass; fits, by least
squares over those faces and their mirror images, the map from [1, nose_u, nose_v] to that ROI in
the face's frame, and prints the coefficients to paste into five_roi.COEF.

    python scripts/fit_five_roi.py
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.annotators import five_roi, mesh478  # noqa: E402
from app.images.decode import load_rgb  # noqa: E402
from app.imports.dlib_xml import parse_dlib_xml  # noqa: E402
from app.models import eval68  # noqa: E402

# The mirror image of a face negates nose_u and u: fitting both keeps the map mirror-symmetric.
MIRROR_X = np.array([1.0, -1.0, 1.0])
MIRROR_Y = np.array([-1.0, 1.0, 1.0])


def samples(xml: str = eval68.DEV_XMLS[0]) -> tuple[np.ndarray, np.ndarray]:
    """(features, targets) of every MTCNN face in the file's photos: [1, nose_u, nose_v] and the
    two-pass chain's second ROI as (u, v, size) in the face's frame."""
    detector = eval68.get_detector()
    xs, ys = [], []
    for file in sorted({im["file"] for im in parse_dlib_xml(eval68.DEMO_DATA / xml)}):
        img = load_rgb(eval68.DEMO_DATA / file)
        for box, _, five in detector.detect(img):
            first = mesh478.run_rois_lite(img, [mesh478.first_roi(box, five)])[0]
            xs.append(five_roi.features(five))
            ys.append(five_roi.roi_in_frame(five, mesh478.roi_from_landmarks(first)))
    return np.array(xs), np.array(ys)


def fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares on the faces and their mirror images; (3, 3), rounded to 4 decimals."""
    xx = np.vstack([x, x * MIRROR_X])
    yy = np.vstack([y, y * MIRROR_Y])
    coef, *_ = np.linalg.lstsq(xx, yy, rcond=None)
    return np.round(coef, 4) + 0.0  # + 0.0: no -0.0 in the printout


def main(argv=None) -> int:
    """Fit and print."""
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args(argv)
    x, y = samples()
    coef = fit(x, y)
    print(f"{len(x)} faces (and their mirror images)")
    print("COEF = np.array(")
    print("    [")
    for row in coef:
        print("        [" + ", ".join(f"{v:.4f}" for v in row) + "],")
    print("    ]")
    print(")")
    resid = np.vstack([y, y * MIRROR_Y]) - np.vstack([x, x * MIRROR_X]) @ coef
    print("residual std (u, v, size):", np.round(resid.std(0), 4).tolist())
    return 0


if __name__ == "__main__":
    sys.exit(main())
