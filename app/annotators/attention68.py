"""68 iBUG points from MediaPipe's attention face mesh, the way MediaPipe's face landmarker runs it:
a first pass on the detection's region of interest, a second on the region computed from the first
pass's landmarks (what MediaPipe tracks between video frames), its last pass averaged with the mesh on
the mirrored crop (mesh_mirror.py), then the derived 478 -> 68 table (mesh_ibug68.py) and the jaw moved
out to the visible outline of a turned face (silhouette_jaw)."""

from functools import cache
from pathlib import Path

import numpy as np

from .five_roi import onet_points5, roi_from_five
from .mesh478 import EYE_LINE, MODEL_PATH, first_roi, roi_from_landmarks, run_rois, run_rois_lite
from .mesh_ibug68 import canonical_2d, shipped_matrix
from .mesh_mirror import run_rois_mirrored

# With MTCNN's five points the second pass's ROI comes from them, without a first mesh pass: on
# faces-dev's training file NME 0.0578 against 0.0575 (within the 0.001 we allow for a speed lever),
# at a third of the mesh's time (five_roi.py). A face given by its box alone gets its five points from
# MTCNN's ONet on that box (five_roi.onet_points5): training file, from its boxes, 0.0598 against
# 0.0613 with the first pass.
FIVE_ROI = True
# ... but only for a face the five points show near-frontal: |nose x - eye midpoint x| / eye distance
# below FIVE_ROI_MAX_YAW. On faces-dev's training file the faces where the five-point ROI was worse
# than the first pass's (by > 0.003 NME) all had this yaw proxy >= 0.24, none below 0.2 (17 faces:
# 0.329 -> 0.083 two-pass vs 0.093 five-point); turned faces are where issue 16's prototype found the
# first pass's landmarks matter. So a turned face pays for the first pass, a frontal one does not.
# (Checked again with the brow and nose tip derivation and mirror averaging: training file 0.0545
# gated, 0.0553 with the first pass on every face, 0.0549 with the five-point ROI on every face.)
FIVE_ROI_MAX_YAW = 0.2
# The last pass runs the mesh on the crop and its mirror image and averages (mesh_mirror.py): on faces-dev's
# training file from MTCNN NME 0.0556 -> 0.0545 (worst face 0.081 -> 0.085), 2.3-3.2 CPU ms a face more;
# testing file, measured once: 0.0481 -> 0.0479 (worst 0.061 -> 0.067). The gain is spread over
# frontal and turned faces alike, so every face gets it.
MIRROR = True


def frontal(points5) -> bool:
    """Whether five points (eyes, nose, mouth corners) show a near-frontal face (see FIVE_ROI_MAX_YAW)."""
    p = np.asarray(points5, dtype=np.float64)[:, :2]
    eye_mid = (p[0] + p[1]) / 2
    d = float(np.linalg.norm(p[1] - p[0]))
    return d > 0 and abs(p[2, 0] - eye_mid[0]) / d < FIVE_ROI_MAX_YAW


class AttentionMesh68:
    """68 points from the attention mesh with MediaPipe's two-pass region of interest."""

    name = "attention68"

    def __init__(
        self,
        model_path: str | Path = MODEL_PATH,
        passes: int = 2,
        five_roi: bool = FIVE_ROI,
        mirror: bool = MIRROR,
    ):
        self.model_path = Path(model_path)
        self.passes = passes
        self.five_roi = five_roi
        self.mirror = mirror

    def predict(self, img_rgb: np.ndarray, box_px, points5_px=None) -> np.ndarray:
        """Return (68, 2) pixel coordinates for one face."""
        return self.predict_many(img_rgb, [box_px], None if points5_px is None else [points5_px])[0]

    def predict_mesh(self, img_rgb: np.ndarray, boxes, points5s=None) -> list[np.ndarray]:
        """The 478 refined mesh points in image pixels for each face, after the passes.

        The first pass only places the region of the next, so it runs MediaPipe's plain face mesh
        (same vertex numbering, 2.5 against 4.2 ms a face): from MTCNN, NME 0.0575 training and 0.0482
        testing against 0.0580 and 0.0486 with the attention mesh in both passes."""
        points5s = list(points5s) if points5s is not None else [None] * len(boxes)
        if self.five_roi and self.passes > 1 and any(p is None for p in points5s):
            # Given boxes without points (--boxes-from): MTCNN's ONet places five on each box.
            missing = [i for i, p in enumerate(points5s) if p is None]
            for i, p in zip(missing, onet_points5(img_rgb, [boxes[i] for i in missing]), strict=True):
                points5s[i] = p
        rois = [first_roi(b, p) for b, p in zip(boxes, points5s, strict=True)]
        if self.passes > 1:
            # A face with five points gets the second pass's ROI from them (five_roi.py), the others
            # from a first pass.
            five = [p is not None and self.five_roi and frontal(p) for p in points5s]
            lite = [i for i, f in enumerate(five) if not f]
            for i, p in zip(lite, run_rois_lite(img_rgb, [rois[i] for i in lite]), strict=True):
                rois[i] = roi_from_landmarks(p)
            for i, p in enumerate(points5s):
                if five[i]:
                    rois[i] = roi_from_five(p)
        for _ in range(self.passes - 2):
            rois = [roi_from_landmarks(p) for p in run_rois(img_rgb, rois, self.model_path)]
        return (run_rois_mirrored if self.mirror else run_rois)(img_rgb, rois, self.model_path)

    def predict_many(self, img_rgb: np.ndarray, boxes, points5s=None) -> list[np.ndarray]:
        """(68, 2) pixel coordinates for each face of one image."""
        return [p for p, _ in self.predict_many_with_mesh(img_rgb, boxes, points5s)]

    def predict_many_with_mesh(self, img_rgb: np.ndarray, boxes, points5s=None) -> list[tuple]:
        """(68 points, the 478 mesh points) per face, in image pixels: what a trained mesh head reads."""
        w = shipped_matrix()
        return [(silhouette_jaw(w @ p, p), p) for p in self.predict_mesh(img_rgb, boxes, points5s)]


@cache
def jaw_rows() -> list[tuple[np.ndarray, np.ndarray]]:
    """For each jaw point: its outward normal on the canonical face, and the mesh vertices inward of it
    within half the spacing to its neighbours along the jaw (so the rows tile the jaw)."""
    band = 0.5
    c = canonical_2d()
    w = shipped_matrix()
    jaw = w[:17] @ c
    rows = []
    for i in range(17):
        a, b = jaw[max(i - 1, 0)], jaw[min(i + 1, 16)]
        t = (b - a) / np.linalg.norm(b - a)
        n = np.array([-t[1], t[0]])  # outward: the jaw runs left to right under the face (y down)
        spacing = np.linalg.norm(b - a) / (2 if 0 < i < 16 else 1)
        d = c[:468] - jaw[i]
        along, out = d @ t, d @ n
        cand = np.nonzero((np.abs(along) <= band * spacing) & (out < 0))[0]
        rows.append((n, cand))
    return rows


def silhouette_jaw(points68: np.ndarray, mesh: np.ndarray) -> np.ndarray:
    """Move each jaw point out to the face's visible outline: the mesh's face oval is a fixed ring of
    vertices, and on a turned face the far side of that ring goes behind the cheek, whose outline is
    then made by vertices further in. So each jaw point goes out along its normal (turned with the
    eye line) to the outermost vertex of its row (jaw_rows), if any lies beyond it; nothing moves on
    a frontal face, where the oval is the outline. From MTCNN: NME 0.0606 -> 0.0575 on the training
    file (worst face 0.102 -> 0.083), 0.0488 -> 0.0482 on the testing file."""
    q = np.array(points68, dtype=np.float64)
    d = mesh[EYE_LINE[1]] - mesh[EYE_LINE[0]]
    a = np.arctan2(d[1], d[0])
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    for i, (n, cand) in enumerate(jaw_rows()):
        if len(cand):
            ni = rot @ n
            out = float(((mesh[cand] - q[i]) @ ni).max())
            if out > 0:
                q[i] += out * ni
    return q
