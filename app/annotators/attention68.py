"""68 iBUG points from MediaPipe's attention face mesh, the way MediaPipe's face landmarker runs it:
a first pass on the detection's region of interest, a second on the region computed from the first
pass's landmarks (what MediaPipe tracks between video frames), then the derived 478 -> 68 table
(mesh_ibug68.py) and the jaw moved out to the visible outline of a turned face (silhouette_jaw)."""

from functools import cache
from pathlib import Path

import numpy as np

from .mesh478 import EYE_LINE, MODEL_PATH, first_roi, roi_from_landmarks, run_rois
from .mesh_ibug68 import canonical_2d, shipped_matrix

# The second pass is skipped where the first pass's region already agrees with the crop it ran on:
# centres within this fraction of the crop's side, sides within this ratio, angles within this many
# radians. The mesh then saw the face as the second pass would, up to a shift of a pixel or two.
SAME_CENTRE = 0.02
SAME_SIZE = 0.03
SAME_ANGLE = np.radians(2.0)


def same_roi(a, b) -> bool:
    """Whether two regions of interest crop nearly the same pixels (see SAME_*)."""
    (ax, ay, asize, aang), (bx, by, bsize, bang) = a, b
    turn = abs((aang - bang + np.pi) % (2 * np.pi) - np.pi)
    return (
        np.hypot(ax - bx, ay - by) <= SAME_CENTRE * asize
        and abs(np.log(bsize / asize)) <= np.log1p(SAME_SIZE)
        and turn <= SAME_ANGLE
    )


class AttentionMesh68:
    """68 points from the attention mesh with MediaPipe's two-pass region of interest."""

    name = "attention68"

    def __init__(self, model_path: str | Path = MODEL_PATH, passes: int = 2, flip: bool = False):
        self.model_path = Path(model_path)
        self.passes = passes
        self.flip = flip

    def predict(self, img_rgb: np.ndarray, box_px, points5_px=None) -> np.ndarray:
        """Return (68, 2) pixel coordinates for one face."""
        return self.predict_many(img_rgb, [box_px], None if points5_px is None else [points5_px])[0]

    def predict_mesh(self, img_rgb: np.ndarray, boxes, points5s=None) -> list[np.ndarray]:
        """The 478 refined mesh points in image pixels for each face, after the passes."""
        points5s = list(points5s) if points5s is not None else [None] * len(boxes)
        rois = [first_roi(b, p) for b, p in zip(boxes, points5s, strict=True)]
        pts = run_rois(img_rgb, rois, self.model_path, self.flip and self.passes == 1)
        for _ in range(self.passes - 1):
            nxt = [roi_from_landmarks(p) for p in pts]
            redo = [i for i in range(len(rois)) if not same_roi(rois[i], nxt[i])]
            again = run_rois(img_rgb, [nxt[i] for i in redo], self.model_path, self.flip)
            for i, p in zip(redo, again, strict=True):
                pts[i], rois[i] = p, nxt[i]
        return pts

    def predict_many(self, img_rgb: np.ndarray, boxes, points5s=None) -> list[np.ndarray]:
        """(68, 2) pixel coordinates for each face of one image."""
        w = shipped_matrix()
        return [silhouette_jaw(w @ p, p) for p in self.predict_mesh(img_rgb, boxes, points5s)]


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
    a frontal face, where the oval is the outline. Training file, from MTCNN: NME 0.0639 -> 0.0609
    (its turned face 0.134 -> 0.116); testing 0.0514 -> 0.0512."""
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
