"""68 iBUG points from our own trained CNN (ONNX, onnxruntime + numpy only): a square crop around the
face box, resized to INPUT_SIZE, gives 136 coordinates in crop space, mapped back to image pixels.

The pre-processing constants live here once; app/training/landmarks.py imports them, so what the
net saw in training is what it sees here.
"""

from pathlib import Path

import numpy as np
from PIL import Image

from .session import session

ARCH = "oiap-crop68-v1"  # params["arch"] of our models: warm starts only load this architecture
INPUT_SIZE = 96
# The crop: a square centred on the box centre, CROP_EXPAND times the box's longer side (the jaw and
# brows reach outside dlib's and MTCNN's boxes).
CROP_EXPAND = 1.3
# RGB uint8 -> float: (x / 255 - MEAN) / STD.
MEAN = 0.5
STD = 0.25


def crop_square(box_px, expand: float = CROP_EXPAND) -> tuple[float, float, float]:
    """(centre x, centre y, side) in image pixels of the crop around a box (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = (float(v) for v in box_px)
    side = max(x1 - x0, y1 - y0, 1.0) * expand
    return (x0 + x1) / 2, (y0 + y1) / 2, side


def sample_square(pil: Image.Image, cx: float, cy: float, side: float, size: int) -> np.ndarray:
    """The square [cx +- side/2] x [cy +- side/2] resampled to size x size (HxWx3 uint8), bilinear;
    big downscales reduce the image first so that sampling does not alias; outside the image is black."""
    scale = side / size  # image pixels per crop pixel
    x0, y0 = cx - side / 2, cy - side / 2
    factor = int(scale // 2) if scale >= 4 else 1
    if factor > 1:
        pil = pil.reduce(factor)
        scale, x0, y0 = scale / factor, x0 / factor, y0 / factor
    data = (scale, 0.0, x0, 0.0, scale, y0)
    out = pil.transform((size, size), Image.Transform.AFFINE, data, Image.Resampling.BILINEAR)
    return np.asarray(out)


def to_input(crops: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 crops -> NCHW float32, normalised as in training."""
    x = crops.astype(np.float32).transpose(0, 3, 1, 2) * np.float32(1 / (255.0 * STD)) - np.float32(
        MEAN / STD
    )
    return np.ascontiguousarray(x)


def from_crop(points01: np.ndarray, cx: float, cy: float, side: float) -> np.ndarray:
    """(68, 2) coordinates in [0, 1] of the crop -> image pixels."""
    return (np.asarray(points01, dtype=np.float64) - 0.5) * side + np.array([cx, cy])


class Crop68:
    """Our trained 68-point CNN: looks only at the box (five points, when given, are not needed)."""

    name = "crop68"

    def __init__(self, model_path: str | Path):
        self.model_path = Path(model_path)

    def predict(self, img_rgb: np.ndarray, box_px, points5_px=None) -> np.ndarray:
        """Return (68, 2) pixel coordinates for one face."""
        return self.predict_many(img_rgb, [box_px])[0]

    def predict_many(self, img_rgb: np.ndarray, boxes, points5s=None) -> list[np.ndarray]:
        """(68, 2) pixel coordinates for each face of one image, run as one batch."""
        if len(boxes) == 0:
            return []
        pil = Image.fromarray(np.ascontiguousarray(img_rgb, dtype=np.uint8))
        squares = [crop_square(b) for b in boxes]
        crops = np.stack([sample_square(pil, *sq, INPUT_SIZE) for sq in squares])
        sess = session(self.model_path)
        out = sess.run(None, {sess.get_inputs()[0].name: to_input(crops)})[0]
        return [from_crop(o.reshape(68, 2), *sq) for o, sq in zip(out, squares, strict=True)]
