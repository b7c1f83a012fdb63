"""Template 68-point annotator: a mean face shape placed by five points or by a face box (numpy only)."""

import json
from functools import cache
from pathlib import Path

import numpy as np

MEAN_FACE_PATH = Path(__file__).parent / "data" / "mean_face_68.json"

# Box placement, calibrated by scripts/eval_landmarks68.py --calibrate on the faces of
# training_with_face_landmarks.xml only, for two kinds of box: the file's own dlib boxes (square) and
# MTCNN's boxes of the same faces (about 0.87 as wide and 1.16 as tall as dlib's: h/w 1.34).
# The mean shape is normalised (centroid at 0, outer eye corners 36-45 one unit apart) and scaled by
# BOX_SCALE * sqrt(w * h): measured 0.556 for dlib boxes and 0.562 for MTCNN boxes. Its centroid sits
# at the box centre x and (BOX_DY + BOX_DY_PER_ASPECT * (h / w - 1)) * h below the box centre:
# measured 0.046 h for dlib boxes (h/w = 1) and 0.081 h for MTCNN boxes (h/w = 1.34), since MTCNN's
# extra height is mostly forehead.
BOX_SCALE = 0.56
BOX_DY = 0.046
BOX_DY_PER_ASPECT = 0.103


def five_from_68(points68: np.ndarray) -> np.ndarray:
    """Five MTCNN-order points from 68 iBUG points: eye centres, nose tip 30, mouth corners 48 and 54."""
    p = np.asarray(points68, dtype=np.float64)
    return np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]])


def similarity(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares similarity (Umeyama, no reflection) mapping src to dst: returns (M 2x2, t)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    sc, dc = src - mu_s, dst - mu_d
    cov = dc.T @ sc / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rot = u @ d @ vt
    scale = np.trace(np.diag(s) @ d) / sc.var(0).sum()
    m = scale * rot
    return m, mu_d - m @ mu_s


def apply(m: np.ndarray, t: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply x -> M x + t to an (N, 2) array."""
    return np.asarray(pts, dtype=np.float64) @ m.T + t


@cache
def mean_shape() -> np.ndarray:
    """The mean 68-point shape, centroid at the origin, outer eye corners one unit apart (y down)."""
    pts = np.array(json.loads(MEAN_FACE_PATH.read_text())["points"], dtype=np.float64)
    pts = pts - pts.mean(0)
    pts /= np.linalg.norm(pts[45] - pts[36])
    pts.setflags(write=False)
    return pts


def fit_to_five(points5_px: np.ndarray) -> np.ndarray:
    """Place the mean shape by the similarity that best maps its five points onto the given five."""
    shape = mean_shape()
    m, t = similarity(five_from_68(shape), np.asarray(points5_px, dtype=np.float64).reshape(5, 2))
    return apply(m, t, shape)


def fit_to_box(box_px) -> np.ndarray:
    """Place the mean shape in a face box (x0, y0, x1, y1), dlib-style or MTCNN-style, by the
    calibrated scale and offset."""
    x0, y0, x1, y1 = (float(v) for v in box_px)
    w, h = max(x1 - x0, 1e-6), max(y1 - y0, 1e-6)
    dy = (BOX_DY + BOX_DY_PER_ASPECT * (h / w - 1)) * h
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2 + dy])
    return mean_shape() * (BOX_SCALE * np.sqrt(w * h)) + centre


class TemplateLandmarks68:
    """68 points from the mean shape: fitted to five points when given, else placed in the box."""

    name = "template68"

    def predict(self, img_rgb: np.ndarray | None, box_px, points5_px=None) -> np.ndarray:
        """Return (68, 2) pixel coordinates; the image itself is not looked at."""
        if points5_px is not None:
            return fit_to_five(points5_px)
        return fit_to_box(box_px)

    def predict_many(self, img_rgb: np.ndarray | None, boxes, points5s=None) -> list[np.ndarray]:
        """predict() for each face of one image."""
        points5s = points5s if points5s is not None else [None] * len(boxes)
        return [self.predict(img_rgb, b, p) for b, p in zip(boxes, points5s, strict=True)]
