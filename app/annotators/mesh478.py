"""MediaPipe's attention face mesh (ONNX, onnxruntime only): 478 points per face, with MediaPipe's
region of interest (a square crop rotated by the eye line) and its refinement of the eye, lip and iris
contours.

A region of interest (ROI) is (cx, cy, size, angle) in image pixels: a square of side `size` centred
on (cx, cy), its x axis turned by `angle` radians from the image's (y down)."""

from functools import cache
from pathlib import Path

import numpy as np

from .session import session

MODEL_PATH = Path(__file__).parent / "models" / "facemesh_attention.onnx"
LITE_MODEL_PATH = Path(__file__).parent / "models" / "facemesh.onnx"
INPUT_SIZE = 192
# MediaPipe's face_landmark graphs: RGB in [0, 1]; the ROI is the face's box (a detection's, or the
# bounding box of the previous landmarks) scaled 1.5x and made square on its long side, turned so
# that the eye line (vertex 33 -> 263, or the detector's eyes) is horizontal. We scale by 1.4 (issue
# 16's prototype): of 1.3 / 1.4 / 1.5 / 1.6 on faces-dev's training file (from MTCNN) NME 0.060 /
# 0.058 / 0.061 / 0.070; the testing file, measured once: 0.0512 at 1.5, 0.0486 at 1.4.
ROI_SCALE = 1.4
# The crop's anti-aliasing (reduction()): a crop reading REDUCE_FROM or more image pixels a crop pixel
# reads the ROI's region area-reduced by int(scale / REDUCE_TO). faces-dev's faces are too small for it
# (at most 0.73 image pixels a crop pixel), so scripts/eval_mesh_crop.py upscales the training file's
# photos k times: NME on the given boxes, k = 1 / 4 / 8 / 12, with no reduction 0.0607 / 0.0627 /
# 0.0627 / 0.0629, with PIL's earlier rule (from 4, to 2) 0.0607 / 0.0627 / 0.0627 / 0.0628, with
# 2 / 1 (kept) 0.0607 / 0.0627 / 0.0625 / 0.0624.
REDUCE_FROM = 2.0
REDUCE_TO = 1.0
EYE_LINE = (33, 263)
# Faces per onnxruntime call (all of an image's faces, up to this): the attention mesh's CPU a face falls
# from 7.30 ms one at a time to 4.07 with an image's 4.75 faces (scripts/bench_mesh_stage.py); its wall
# ms a face, one thread, 5.26 / 3.24 / 3.24 / 3.21 at 1 / 5 / 8 / 16 faces a call
# (scripts/bench_facemesh_batch.py --model .../facemesh_attention.onnx --sizes 1 5 8 16). The plain mesh
# does not gain (2.87 / 2.90 / 3.20 / 3.36: facemesh68.RUN_BATCH), so it runs one face a call.
RUN_BATCH = 8
LITE_RUN_BATCH = 1

# Which mesh vertices each refinement output overwrites (x, y only), in output order: MediaPipe's
# tensors_to_face_landmarks_with_attention.pbtxt (Apache-2.0). "left_eye" is the image-left one.
# fmt: off
LIPS = [
    61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291,  # lower outer
    185, 40, 39, 37, 0, 267, 269, 270, 409,  # upper outer (no corners)
    78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308,  # lower inner
    191, 80, 81, 82, 13, 312, 311, 310, 415,  # upper inner (no corners)
    76, 77, 90, 180, 85, 16, 315, 404, 320, 307, 306,  # lower semi-outer
    184, 74, 73, 72, 11, 302, 303, 304, 408,  # upper semi-outer
    62, 96, 89, 179, 86, 15, 316, 403, 319, 325, 292,  # lower semi-inner
    183, 42, 41, 38, 12, 268, 271, 272, 407,  # upper semi-inner
]
LEFT_EYE = [
    33, 7, 163, 144, 145, 153, 154, 155, 133,  # lower contour
    246, 161, 160, 159, 158, 157, 173,  # upper contour (no corners)
    130, 25, 110, 24, 23, 22, 26, 112, 243,  # halo x2 lower
    247, 30, 29, 27, 28, 56, 190,  # halo x2 upper
    226, 31, 228, 229, 230, 231, 232, 233, 244,  # halo x3 lower
    113, 225, 224, 223, 222, 221, 189,  # halo x3 upper
    35, 124, 46, 53, 52, 65,  # halo x4 upper or eyebrow inner contour
    143, 111, 117, 118, 119, 120, 121, 128, 245,  # halo x5 lower
    156, 70, 63, 105, 66, 107, 55, 193,  # halo x5 upper or eyebrow outer contour
]
RIGHT_EYE = [
    263, 249, 390, 373, 374, 380, 381, 382, 362,
    466, 388, 387, 386, 385, 384, 398,
    359, 255, 339, 254, 253, 252, 256, 341, 463,
    467, 260, 259, 257, 258, 286, 414,
    446, 261, 448, 449, 450, 451, 452, 453, 464,
    342, 445, 444, 443, 442, 441, 413,
    265, 353, 276, 283, 282, 295,
    372, 340, 346, 347, 348, 349, 350, 357, 465,
    383, 300, 293, 334, 296, 336, 285, 417,
]
# fmt: on
LEFT_IRIS = list(range(468, 473))  # centre, then edges right, top, left, bottom
RIGHT_IRIS = list(range(473, 478))
OUTPUTS = ("mesh", "lips", "left_eye", "right_eye", "left_iris", "right_iris", "face_flag")
REFINED = (LIPS, LEFT_EYE, RIGHT_EYE, LEFT_IRIS, RIGHT_IRIS)


def roi_transform(roi) -> tuple[np.ndarray, np.ndarray]:
    """(m, t) mapping crop pixels to image pixels for an ROI."""
    cx, cy, size, angle = roi
    c, s = np.cos(angle), np.sin(angle)
    m = (size / INPUT_SIZE) * np.array([[c, -s], [s, c]])
    t = np.array([cx, cy]) - m @ np.array([INPUT_SIZE / 2, INPUT_SIZE / 2])
    return m, t


def first_roi(box_px, points5_px=None) -> tuple[float, float, float, float]:
    """The ROI of a detection: its box scaled by ROI_SCALE, square, turned by its eyes when given."""
    x0, y0, x1, y1 = (float(v) for v in box_px)
    angle = 0.0
    if points5_px is not None:
        (ex0, ey0), (ex1, ey1) = np.asarray(points5_px, dtype=np.float64)[:2]
        angle = float(np.arctan2(ey1 - ey0, ex1 - ex0))
    return (x0 + x1) / 2, (y0 + y1) / 2, ROI_SCALE * max(x1 - x0, y1 - y0), angle


def roi_from_landmarks(points: np.ndarray) -> tuple[float, float, float, float]:
    """MediaPipe's ROI for the next pass: the landmarks' bounding box scaled by ROI_SCALE, square on its
    long side, turned by the eye line (face_landmark_landmarks_to_roi.pbtxt)."""
    p = np.asarray(points, dtype=np.float64)
    lo, hi = p.min(0), p.max(0)
    (ex0, ey0), (ex1, ey1) = p[EYE_LINE[0]], p[EYE_LINE[1]]
    angle = float(np.arctan2(ey1 - ey0, ex1 - ex0))
    cx, cy = (lo + hi) / 2
    return float(cx), float(cy), float(ROI_SCALE * (hi - lo).max()), angle


def reduction(scale: float) -> int:
    """The integer factor an ROI's image region is area-reduced by before the bilinear warp, for a crop
    of `scale` image pixels per crop pixel: bilinear sampling reads 2x2 pixels, so past 2 image pixels
    a crop pixel it skips pixels and aliases (REDUCE_FROM, REDUCE_TO: how they were chosen is beside
    them)."""
    return max(1, int(scale / REDUCE_TO)) if scale >= REDUCE_FROM else 1


def warp(img_rgb, m: np.ndarray, t: np.ndarray) -> np.ndarray:
    """One INPUT_SIZE crop whose pixel (u, v) samples the image at m @ (u, v) + t (pixel centres at
    integer coordinates in both), by OpenCV's bilinear warp; a big downscale first area-reduces the
    ROI's own region of the image by an integer factor (reduction()), so that bilinear does not alias.

    (facemesh68._crop samples at m @ (u + 1, v + 1) + t: its crops sit one crop pixel off.)"""
    import cv2

    cv2.setNumThreads(1)  # parallelism comes from bulk-annotate's workers (as onnxruntime's one thread)
    img = np.asarray(img_rgb)
    scale = np.sqrt(abs(np.linalg.det(m)))  # image pixels per crop pixel
    factor = reduction(scale)
    if factor > 1:
        # Only the region the crop reads (its corners' bounding box and a margin), cut to whole blocks
        # of factor x factor pixels: INTER_AREA at an integer factor is then the exact block mean.
        corners = np.array([[0, 0], [INPUT_SIZE - 1, 0], [0, INPUT_SIZE - 1], [INPUT_SIZE - 1] * 2]) @ m.T + t
        x0, y0 = (max(int(v) - 2 * factor, 0) for v in corners.min(0))
        x1, y1 = (int(v) + 2 * factor for v in corners.max(0))
        x1 = x0 + (min(x1, img.shape[1]) - x0) // factor * factor
        y1 = y0 + (min(y1, img.shape[0]) - y0) // factor * factor
        if x1 > x0 and y1 > y0:
            sub = img[y0:y1, x0:x1]
            img = cv2.resize(sub, ((x1 - x0) // factor, (y1 - y0) // factor), interpolation=cv2.INTER_AREA)
            # Reduced pixel (i, j) is the mean of image pixels factor * (i, j) + (x0, y0) + (factor - 1) / 2.
            m, t = m / factor, (t - np.array([x0, y0]) + 0.5) / factor - 0.5
    a = np.hstack([m, np.asarray(t, dtype=np.float64)[:, None]])
    return cv2.warpAffine(
        np.ascontiguousarray(img),
        a,
        (INPUT_SIZE, INPUT_SIZE),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def crop_rois(img_rgb: np.ndarray, rois) -> tuple[np.ndarray, list]:
    """NCHW float32 crops in [0, 1], one per ROI, and each crop's (m, t) from crop to image pixels."""
    img = np.ascontiguousarray(img_rgb, dtype=np.uint8)
    xforms = [roi_transform(r) for r in rois]
    x = np.empty((len(xforms), 3, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    for i, (m, t) in enumerate(xforms):
        np.multiply(warp(img, m, t).transpose(2, 0, 1), np.float32(1 / 255), out=x[i])
    return x, xforms


def assemble(outs: dict, i: int) -> np.ndarray:
    """(478, 2) crop pixels of face i: the mesh with its contours refined and the irises appended."""
    pts = np.zeros((478, 2), dtype=np.float64)
    pts[:468] = outs["mesh"][i].reshape(468, 3)[:, :2]
    for name, idx in zip(OUTPUTS[1:6], REFINED, strict=True):
        pts[idx] = outs[name][i].reshape(len(idx), 2)
    return pts


@cache
def mirror478() -> np.ndarray:
    """Each mesh vertex's mirror image across the face's midline, from the canonical model's geometry
    (the model is exactly symmetric: x -> -x maps its vertex set onto itself)."""
    v = np.loadtxt(Path(__file__).parent / "data" / "mediapipe_face_model_478.txt")
    flipped = v * np.array([-1.0, 1.0, 1.0])
    d = np.linalg.norm(v[:, None, :] - flipped[None, :, :], axis=2)
    perm = d.argmin(1)
    if not np.allclose(d[np.arange(len(v)), perm], 0, atol=1e-4) or len(set(perm)) != len(v):
        raise ValueError("the canonical face model is not symmetric")
    return perm


def run_rois(img_rgb: np.ndarray, rois, model_path: str | Path = MODEL_PATH) -> list[np.ndarray]:
    """478 refined landmarks in image pixels for each ROI of one image (up to RUN_BATCH faces a run)."""
    return run_each(
        img_rgb,
        rois,
        model_path,
        list(OUTPUTS),
        lambda o, i: assemble(dict(zip(OUTPUTS, o, strict=True)), i),
        RUN_BATCH,
    )


def run_rois_lite(img_rgb: np.ndarray, rois, model_path: str | Path = LITE_MODEL_PATH) -> list[np.ndarray]:
    """468 mesh vertices in image pixels for each ROI from MediaPipe's plain face mesh (facemesh68's
    model: same vertex numbering, no refinement, 60% of the attention mesh's time): enough to place
    the attention mesh's region of interest."""
    return run_each(
        img_rgb, rois, model_path, ["mesh"], lambda o, i: o[0][i].reshape(468, 3)[:, :2], LITE_RUN_BATCH
    )


def run_each(
    img_rgb: np.ndarray, rois, model_path, names: list[str], points_of, batch: int, feed=None
) -> list[np.ndarray]:
    """Crop every ROI, run the model on its crops (run_crops) and map each face's points (crop pixels)
    back to image pixels."""
    if not rois:
        return []
    x, xforms = crop_rois(img_rgb, rois)
    points = run_crops(x, model_path, names, points_of, batch, feed)
    return [p @ m.T + t for p, (m, t) in zip(points, xforms, strict=True)]


def run_crops(x: np.ndarray, model_path, names: list[str], points_of, batch: int, feed=None) -> list:
    """`points_of(outputs, i)` (crop pixels) for each NCHW crop of x, crop i of its call, up to `batch`
    crops a call; a call's input is feed(crops) when given (mesh_mirror adds the mirror images)."""
    sess = session(model_path)
    out = []
    for k in range(0, len(x), batch):
        chunk = x[k : k + batch]
        o = sess.run(names, {"image": chunk if feed is None else feed(chunk)})
        out += [points_of(o, i) for i in range(len(chunk))]
    return out
