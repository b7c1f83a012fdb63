"""The attention mesh's region of interest straight from MTCNN's five points, in place of a first mesh
pass: the ROI the two-pass chain (attention68) would reach, predicted by a small linear map.

In the face's own frame (origin the eye centre, x along the eye line, unit the eye-centre to
mouth-centre distance), the two-pass chain's second ROI has centre (u, v) and side `size`, and those
follow the nose: a turned face moves its nose sideways (and the mesh's box with it), a face tipped
up or down moves it along v. The coefficients map [1, nose_u, nose_v] to (u, v, size); they were fitted
by scripts/fit_five_roi.py on every MTCNN face of faces-dev's training photos and their mirror images
(least squares, the mirror forcing the symmetric zeros), against the ROIs of our own two-pass chain:
no label of any file is read. On faces-dev's training file (from MTCNN) NME 0.0575 with two passes,
0.0578 with this ROI and one pass (worst face 0.083 and 0.093), at a third of the mesh's time; testing
file, measured once: 0.0482 and 0.0489 (worst 0.067 and 0.063).
"""

import numpy as np

from . import mtcnn

# Rows: the constant, nose_u, nose_v; columns: u, v, size (scripts/fit_five_roi.py prints them). Refitted
# when the mesh's crop moved from PIL's affine transform to OpenCV's warp (mesh478.warp): they moved by
# at most 0.0035; NME from MTCNN 0.0571 training, 0.0489 testing, as before to the fourth decimal.
# Refitted again when MTCNN's pyramid became torch's area bins (issue 22): the five points moved by
# fractions of a pixel, and nose_v's weight on the size, which 17 faces barely pin down (the size at
# the faces' mean nose_v stays 3.56), went 0.32 -> -0.44; NME from MTCNN (with PNet at 0.7) training
# 0.05570 -> 0.05531, testing 0.04770 -> 0.04783.
COEF = np.array(
    [
        [0.0000, 0.7240, 3.7975],
        [-1.1956, 0.0000, 0.0000],
        [0.0000, -0.6040, -0.4368],
    ]
)


def face_frame(points5) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(eye centre, rotation from face to image axes, eye-to-mouth distance, eye-line angle) of five
    points in MTCNN's order (eyes image-left then image-right, nose, mouth corners)."""
    p = np.asarray(points5, dtype=np.float64)
    ec, mc = (p[0] + p[1]) / 2, (p[3] + p[4]) / 2
    d = p[1] - p[0]
    a = float(np.arctan2(d[1], d[0]))
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return ec, rot, float(np.linalg.norm(mc - ec)), a


def features(points5) -> np.ndarray:
    """[1, nose_u, nose_v]: the nose tip in the face's frame."""
    ec, rot, s, _ = face_frame(points5)
    return np.array([1.0, *(rot.T @ (np.asarray(points5, dtype=np.float64)[2] - ec) / s)])


def roi_from_five(points5, coef: np.ndarray = COEF) -> tuple[float, float, float, float]:
    """(cx, cy, size, angle) in image pixels: the mesh's ROI for a face with five points."""
    ec, rot, s, a = face_frame(points5)
    u, v, size = features(points5) @ coef
    c = ec + rot @ (np.array([u, v]) * s)
    return float(c[0]), float(c[1]), float(size * s), a


def roi_in_frame(points5, roi) -> np.ndarray:
    """(u, v, size) of an ROI in a face's frame: what COEF predicts (for fitting)."""
    ec, rot, s, _ = face_frame(points5)
    u, v = rot.T @ (np.asarray(roi[:2], dtype=np.float64) - ec) / s
    return np.array([u, v, roi[2] / s])


def onet_points5(img_rgb: np.ndarray, boxes) -> list[np.ndarray | None]:
    """MTCNN's five points for given face boxes (pixels): its last net (ONet) on each box made square,
    as MTCNN's own third stage runs it, without its score threshold (the boxes are faces already);
    None for a box with nothing inside the image. For boxes that come without points (Open Images'
    own, `--boxes-from`): on faces-dev's training file, from its boxes, the mesh on these points'
    region scores NME 0.0598 against 0.0613 for the two-pass chain, at half the time a face (testing
    file, measured once after the choice: 0.0501 and 0.0484)."""
    out: list[np.ndarray | None] = [None] * len(boxes)
    if not len(boxes):
        return out
    det = mtcnn.MTCNN(threads=1)
    img = np.ascontiguousarray(img_rgb, dtype=np.uint8)
    sizes = np.array([img.shape[:2]], dtype=np.int64)
    b = mtcnn.rerec(np.array([[*map(float, box[:4]), 1.0] for box in boxes]))
    valid = np.flatnonzero(mtcnn.crop_bounds(b, np.repeat(sizes, len(b), axis=0))[4])
    if not len(valid):
        return out
    b = b[valid]
    # Each box's integral image over its own neighbourhood, not the whole photo's (12.7-16.2 -> 4.8-5.0
    # CPU ms an image of 4.75 faces, under load); integer sums, so the crops are exactly the same.
    iis, subs = [], []
    for row in b:
        x0, y0 = (max(int(np.trunc(v)) - 2, 0) for v in row[:2])
        x1, y1 = min(int(np.trunc(row[2])) + 2, img.shape[1]), min(int(np.trunc(row[3])) + 2, img.shape[0])
        sub = img[y0:y1, x0:x1] if x1 > x0 and y1 > y0 else img[:1, :1]
        iis.append(mtcnn.integral(np.ascontiguousarray(sub)))
        subs.append((x0, y0, sub.shape[0], sub.shape[1]))
    off = np.array([[x0, y0, x0, y0, 0.0] for x0, y0, _, _ in subs])
    sizes = np.array([[h, w] for _, _, h, w in subs], dtype=np.int64)
    _, _, crops = det._crops(iis, sizes, b - off, np.arange(len(b), dtype=np.int64), 48)
    _, lm, _ = det._run("onet", crops)
    w = b[:, 2] - b[:, 0] + 1
    h = b[:, 3] - b[:, 1] + 1
    px = w[:, None] * lm[:, :5] + b[:, 0:1] - 1
    py = h[:, None] * lm[:, 5:] + b[:, 1:2] - 1
    for i, p in zip(valid, np.stack([px, py], axis=2).astype(np.float64), strict=True):
        out[i] = p
    return out
