"""Mirror averaging for the attention mesh: each face's crop and its horizontal mirror image go through
the mesh in one onnxruntime call (batch 2; the mesh's batch dimension is dynamic), the mirror's 478
points are mapped back through the mesh's left/right vertex pairing (mesh478.mirror478, derived from
the canonical face model's geometry, never from labels) and averaged with the crop's.

The mesh is not exactly mirror-symmetric (a face and its mirror image give points up to 0.035 NME
apart, tests/test_attention68.py): the average cancels that part of its error. From MTCNN on faces-dev's
training file NME 0.0556 -> 0.0545 (with the derived table of mesh_ibug68.py); testing file, measured
once after the choice: 0.0481 -> 0.0479. It costs a second image in the final pass's call: measured
7.9 -> 11.4 ms for the call (batch 1 -> 2, one thread, load 3.3), about 3.5 ms a face; in
scripts/bench_annotate.py's 68-point stage 4.6-5.2 CPU ms a face (README, 68-point face landmarks)."""

from pathlib import Path

import numpy as np

from .mesh478 import INPUT_SIZE, MODEL_PATH, OUTPUTS, assemble, crop_rois, mirror478
from .session import session

# Crop pixel centres sit at integer coordinates (mesh478.warp), so flipping a crop maps u to 191 - u.
# (MediaPipe's own convention, pixel corners at integers, would be 192 - u: on faces-dev's training file
# NME 0.0565 against 0.0557 with 191, before the table's brow and nose change.)
MIRROR_X = INPUT_SIZE - 1


def unmirror(points: np.ndarray) -> np.ndarray:
    """478 crop-pixel points predicted on a mirrored crop, as points of the crop itself: each vertex
    takes its mirror partner's place and x turns back."""
    q = np.array(points, dtype=np.float64)[mirror478()]
    q[:, 0] = MIRROR_X - q[:, 0]
    return q


def mirrored_pair(crop: np.ndarray) -> np.ndarray:
    """(2, 3, H, W): an NCHW crop (1, 3, H, W) and its horizontal mirror image, one batch."""
    return np.ascontiguousarray(np.concatenate([crop, crop[:, :, :, ::-1]]))


def average_outputs(outs: dict) -> np.ndarray:
    """(478, 2) crop pixels: the mesh's points on a crop (batch item 0) averaged with those on its
    mirror image (item 1) mapped back."""
    return (assemble(outs, 0) + unmirror(assemble(outs, 1))) / 2


def run_crop_mirrored(crop: np.ndarray, model_path: str | Path = MODEL_PATH) -> np.ndarray:
    """(478, 2) crop pixels for one NCHW crop (1, 3, 192, 192), mirror-averaged, in one mesh call."""
    sess = session(model_path)
    outs = sess.run(list(OUTPUTS), {"image": mirrored_pair(crop)})
    return average_outputs(dict(zip(OUTPUTS, outs, strict=True)))


def run_rois_mirrored(img_rgb: np.ndarray, rois, model_path: str | Path = MODEL_PATH) -> list[np.ndarray]:
    """mesh478.run_rois with mirror averaging: 478 points in image pixels for each ROI of one image."""
    if not rois:
        return []
    x, xforms = crop_rois(img_rgb, rois)
    return [run_crop_mirrored(x[i : i + 1], model_path) @ m.T + t for i, (m, t) in enumerate(xforms)]
