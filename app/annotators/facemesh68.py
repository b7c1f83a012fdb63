"""68 iBUG points from MediaPipe's face mesh (ONNX, onnxruntime only): align a 192x192 crop by the five
points, run the mesh, pick 68 of its 468 vertices, map them back to image pixels."""

from pathlib import Path

import numpy as np
from PIL import Image

from .session import session
from .template68 import apply, fit_to_box, five_from_68, mean_shape, similarity

MODEL_PATH = Path(__file__).parent / "models" / "facemesh.onnx"
INPUT_SIZE = 192
# RGB scaled to [0, 1]: the .tflite's own metadata normalises by mean 0, std 255.
INPUT_RANGE = (0.0, 1.0)
# Crop geometry: the mean face (outer eye corners one unit apart, centroid at the origin) is placed at
# CROP_SCALE crop pixels per unit, its centroid CROP_DY units below the crop centre. MediaPipe crops 1.5x
# its detector's box, which puts about 2.5 eye-corner distances across the crop.
CROP_SCALE = 66.0
CROP_DY = 0.0
# Faces per onnxruntime call. Per-face time grows with the batch (activations outgrow the cache):
# 1.77 / 1.82 / 1.87 / 2.12 / 2.66 ms per face at 1 / 2 / 4 / 8 / 19 (scripts/bench_facemesh_batch.py).
RUN_BATCH = 1

# iBUG 68 -> face mesh vertex, chosen per iBUG point as the vertex nearest to it on average over the 18
# faces of app/demo_data/training_with_face_landmarks.xml (scripts/eval_landmarks68.py --fit-mapping),
# kept unique. The testing file was never used to choose.
# fmt: off
MESH_TO_IBUG68 = [
    127, 227, 177, 215, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 361, 323, 356,  # jaw 0-16
    46, 63, 52, 65, 55, 285, 295, 334, 293, 383,  # brows 17-26
    168, 197, 5, 4, 75, 97, 164, 326, 460,  # nose 27-35
    163, 159, 157, 112, 22, 145, 381, 385, 387, 255, 254, 380,  # eyes 36-47
    61, 73, 72, 11, 302, 304, 291, 405, 314, 17, 84, 181,  # outer lip 48-59
    77, 38, 13, 268, 292, 316, 15, 86,  # inner lip 60-67
]
# fmt: on


def canonical_five() -> np.ndarray:
    """Where the five points of the mean face sit in the crop, in crop pixels."""
    five = five_from_68(mean_shape())
    return five * CROP_SCALE + np.array([INPUT_SIZE / 2, INPUT_SIZE / 2 - CROP_DY * CROP_SCALE])


def five_for(box_px, points5_px) -> np.ndarray:
    """The given five points, or those of the mean face placed in the box."""
    if points5_px is not None:
        return np.asarray(points5_px, dtype=np.float64).reshape(5, 2)
    return five_from_68(fit_to_box(box_px))


def _crop(pil: Image.Image, m: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Warp one crop: (m, t) maps crop pixels to image pixels; big downscales pre-reduce the image."""
    scale = np.sqrt(abs(np.linalg.det(m)))  # image pixels per crop pixel
    factor = int(scale // 2) if scale >= 4 else 1
    if factor > 1:
        # Reduce first so that bilinear sampling does not alias: a box-filtered image at 1/factor.
        pil = pil.reduce(factor)
        m, t = m / factor, (t + 0.5) / factor - 0.5
    # PIL samples pixel centres: output (u+0.5, v+0.5) -> input coefficients in corner coordinates.
    c = t + m @ np.array([0.5, 0.5]) + 0.5
    data = (m[0, 0], m[0, 1], c[0], m[1, 0], m[1, 1], c[1])
    out = pil.transform((INPUT_SIZE, INPUT_SIZE), Image.Transform.AFFINE, data, Image.Resampling.BILINEAR)
    return np.asarray(out)


def crop_faces(img_rgb: np.ndarray, fives: list[np.ndarray]) -> tuple[np.ndarray, list]:
    """NCHW float32 crops in INPUT_RANGE, one per face, and each crop's (m, t) from crop to image pixels."""
    pil = Image.fromarray(np.ascontiguousarray(img_rgb, dtype=np.uint8))
    canon = canonical_five()
    crops, xforms = [], []
    for five in fives:
        m, t = similarity(canon, five)
        crops.append(_crop(pil, m, t))
        xforms.append((m, t))
    lo, hi = INPUT_RANGE
    x = np.stack(crops).astype(np.float32).transpose(0, 3, 1, 2) * ((hi - lo) / 255.0) + lo
    return np.ascontiguousarray(x), xforms


def mesh_to_image(mesh: np.ndarray, xform) -> np.ndarray:
    """(1404,) mesh output in crop pixels -> (468, 2) image pixels."""
    m, t = xform
    return apply(m, t, mesh.reshape(-1, 3)[:, :2])


def predict_mesh_many(img_rgb: np.ndarray, boxes, points5s=None, model_path=MODEL_PATH) -> list[np.ndarray]:
    """All 468 mesh vertices in image pixels for each face of one image, RUN_BATCH faces per run."""
    if len(boxes) == 0:
        return []
    points5s = points5s if points5s is not None else [None] * len(boxes)
    fives = [five_for(b, p) for b, p in zip(boxes, points5s, strict=True)]
    x, xforms = crop_faces(img_rgb, fives)
    sess = session(model_path)
    name = sess.get_inputs()[0].name
    mesh = np.concatenate(
        [sess.run(["mesh"], {name: x[i : i + RUN_BATCH]})[0] for i in range(0, len(x), RUN_BATCH)]
    )
    return [mesh_to_image(mesh[i], xforms[i]) for i in range(len(fives))]


class FaceMeshLandmarks68:
    """68 points from the MediaPipe face mesh, aligned by five points when given, else by the box."""

    name = "facemesh68"

    def __init__(self, model_path: str | Path = MODEL_PATH):
        self.model_path = Path(model_path)

    def predict(self, img_rgb: np.ndarray, box_px, points5_px=None) -> np.ndarray:
        """Return (68, 2) pixel coordinates for one face."""
        return self.predict_many(img_rgb, [box_px], None if points5_px is None else [points5_px])[0]

    def predict_many(self, img_rgb: np.ndarray, boxes, points5s=None) -> list[np.ndarray]:
        """(68, 2) pixel coordinates for each face of one image.

        A face given by its box alone is run twice: the box says nothing about roll, so the second
        crop is aligned by the five points of the first answer (NME 0.072 -> 0.065 on the training
        file; with five points given a second pass gained nothing)."""
        return [p for p, _ in self.predict_many_with_mesh(img_rgb, boxes, points5s)]

    def predict_many_with_mesh(self, img_rgb: np.ndarray, boxes, points5s=None) -> list[tuple]:
        """((68, 2), (468, 2)) pixel coordinates per face: the 68 points and every mesh vertex of the final
        pass. A trained mesh head (meshhead68.MeshHead68) maps these to its own 68 points."""
        points5s = list(points5s) if points5s is not None else [None] * len(boxes)
        meshes = predict_mesh_many(img_rgb, boxes, points5s, self.model_path)
        redo = [i for i, p in enumerate(points5s) if p is None]
        if redo:
            fives = [five_from_68(meshes[i][MESH_TO_IBUG68]) for i in redo]
            again = predict_mesh_many(img_rgb, [boxes[i] for i in redo], fives, self.model_path)
            for i, v in zip(redo, again, strict=True):
                meshes[i] = v
        return [(v[MESH_TO_IBUG68], v) for v in meshes]
