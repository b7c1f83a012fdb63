"""Mirror averaging for the attention mesh: each face's crop and its horizontal mirror image go through
the mesh in the same onnxruntime call (the mesh's batch dimension is dynamic), the mirror's 478
points are mapped back through the mesh's left/right vertex pairing (mesh478.mirror478, derived from
the canonical face model's geometry, never from labels) and averaged with the crop's.

The mesh is not exactly mirror-symmetric (a face and its mirror image give points up to 0.035 NME
apart, tests/test_attention68.py): the average cancels that part of its error. From MTCNN on faces-dev's
training file NME 0.0556 -> 0.0545 (with the derived table of mesh_ibug68.py); testing file, measured
once after the choice: 0.0481 -> 0.0479. It costs a second crop in the final pass's call: one face
alone 7.9 -> 11.4 ms for the call (batch 1 -> 2, one thread, load 3.3); with up to three faces and their
mirrors a call (then; FACES_PER_CALL is 4 now), scripts/bench_annotate.py's 68-point stage costs 2.3-3.2 CPU ms
a face more than without the mirror (README, 68-point face landmarks)."""

from pathlib import Path

import numpy as np

from .mesh478 import INPUT_SIZE, MODEL_PATH, OUTPUTS, assemble, mirror478, run_crops, run_each

# Crop pixel centres sit at integer coordinates (mesh478.warp), so flipping a crop maps u to 191 - u.
# (MediaPipe's own convention, pixel corners at integers, would be 192 - u: on faces-dev's training file
# NME 0.0565 against 0.0557 with 191, before the table's brow and nose change.)
MIRROR_X = INPUT_SIZE - 1
# The mesh's time per crop falls with the batch to a floor (wall ms a crop, one thread, load 0.5-2.0:
# 3.39 / 3.22 / 3.03 / 2.95 / 2.96 / 2.97 at batch 2 / 4 / 6 / 8 / 10 / 12, scripts/bench_facemesh_batch.py
# --model .../facemesh_attention.onnx --sizes 2 4 6 8 10 12 --seconds 4), so up to 4 faces (8 crops) go
# in one call. On the bench's given boxes (60 images of 2-7 faces, 5 alternating rounds, load 0.6) the
# 68-point stage took 8.40 CPU ms a face with 3 faces a call (an earlier measurement under load had
# found 10 crops slower than 6), 8.16 with 4, 8.23 with 5, 8.12 with 8; points within 1.5e-5 px.
FACES_PER_CALL = 4


def unmirror(points: np.ndarray) -> np.ndarray:
    """478 crop-pixel points predicted on a mirrored crop, as points of the crop itself: each vertex
    takes its mirror partner's place and x turns back."""
    q = np.array(points, dtype=np.float64)[mirror478()]
    q[:, 0] = MIRROR_X - q[:, 0]
    return q


def with_mirrors(crops: np.ndarray) -> np.ndarray:
    """(2n, 3, H, W): n NCHW crops, then their horizontal mirror images, as one batch."""
    return np.ascontiguousarray(np.concatenate([crops, crops[:, :, :, ::-1]]))


def average_outputs(outs: dict, n: int, k: int) -> np.ndarray:
    """(478, 2) crop pixels of crop k of a with_mirrors batch of n crops: the mesh's points on the crop
    averaged with those on its mirror image (item n + k) mapped back."""
    return (assemble(outs, k) + unmirror(assemble(outs, n + k))) / 2


def _averaged(o: list, k: int) -> np.ndarray:
    """average_outputs for crop k of a call on a with_mirrors batch (its first half the crops)."""
    return average_outputs(dict(zip(OUTPUTS, o, strict=True)), len(o[0]) // 2, k)


def run_crops_mirrored(crops: np.ndarray, model_path: str | Path = MODEL_PATH) -> list[np.ndarray]:
    """(478, 2) crop pixels for each NCHW crop (n, 3, 192, 192), mirror-averaged, FACES_PER_CALL faces
    (twice as many crops) a mesh call."""
    return run_crops(crops, model_path, list(OUTPUTS), _averaged, FACES_PER_CALL, feed=with_mirrors)


def run_rois_mirrored(img_rgb: np.ndarray, rois, model_path: str | Path = MODEL_PATH) -> list[np.ndarray]:
    """mesh478.run_rois with mirror averaging: 478 points in image pixels for each ROI of one image."""
    return run_each(img_rgb, rois, model_path, list(OUTPUTS), _averaged, FACES_PER_CALL, feed=with_mirrors)
