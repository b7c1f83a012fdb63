"""A trained box -> mask net (`flask oiap train --kind object_mask`): ONNX inference on each box's crop.

The net refines a prior annotator's mask (the builtin's: the selfie segmenter on people, the SLIC cut
on other classes): its input is the box's crop, the box with MARGIN of its size on every side
stretched to INPUT_SIZE x INPUT_SIZE (as the selfie segmenter's crop is; what lies outside the image
is black), as RGB plus the prior's mask cut the same way. The net gives one logit map (N, 1, S, S); its probability is mapped back onto the image and cut to the box (an
instance mask belongs to its box, as in box_masks). `crop_affine` and `crop_input` are shared with
the trainer (app/training/masks.py), so training and inference cut the same pixels.

Numpy, OpenCV and onnxruntime only: no store, no Flask, no torch.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .box_masks import _clip_box
from .session import session

ARCH = "mask-unet-v1"
INPUT_SIZE = 96
MARGIN = 0.15


def crop_affine(box: Sequence[float], size: int = INPUT_SIZE, margin: float = MARGIN) -> np.ndarray:
    """The 2 x 3 affine map from image pixels to the crop's pixels for a box (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    bw, bh = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    cx0, cy0 = x0 - margin * bw, y0 - margin * bh
    sx, sy = size / (bw * (1 + 2 * margin)), size / (bh * (1 + 2 * margin))
    return np.array([[sx, 0.0, -sx * cx0], [0.0, sy, -sy * cy0]], dtype=np.float64)


def crop_input(rgb: np.ndarray, prior: np.ndarray, m: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """The net's input for one crop: (4, S, S) float32, pixels / 255 - 0.5 (black outside the image),
    then the prior's mask (H x W, 0 or 1) - 0.5."""
    import cv2

    patch = cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    p = cv2.warpAffine(prior.astype(np.float32), m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)
    return np.concatenate([patch.astype(np.float32).transpose(2, 0, 1) / 255.0, p[None]]) - 0.5


class TrainedMasks:
    """A trained mask net (ONNX, input 'image' (N, 4, S, S), output 'logits' (N, 1, S, S)) on box crops,
    refining `prior` (predict_many(rgb, boxes_px, labels) -> masks: the builtin's ByClass)."""

    name = "trained"

    def __init__(self, path: str | Path, prior, threads: int | None = None, margin: float = MARGIN):
        self.sess = session(path, threads)
        shape = self.sess.get_inputs()[0].shape
        if len(shape) != 4 or shape[1] != 4 or shape[2] != shape[3] or not isinstance(shape[2], int):
            raise ValueError(f"{path}: expected an NCHW 4 x S x S input (RGB + prior mask), got {shape}")
        self.size, self.margin, self.prior = int(shape[2]), margin, prior

    def probabilities(
        self, rgb: np.ndarray, boxes_px: Sequence[Sequence[float]], labels: Sequence[str | None] | None = None
    ) -> list[np.ndarray]:
        """The object probability of each box's crop, on the whole image (H x W float32)."""
        import cv2

        if not len(boxes_px):
            return []
        h, w = rgb.shape[:2]
        priors = self.prior.predict_many(rgb, boxes_px, labels)
        affines = [crop_affine(b, self.size, self.margin) for b in boxes_px]
        x = np.stack([crop_input(rgb, p, m, self.size) for p, m in zip(priors, affines, strict=True)])
        logits = self.sess.run(None, {"image": x})[0][:, 0]
        prob = 1.0 / (1.0 + np.exp(-logits))
        # WARP_INVERSE_MAP: m maps the destination (the image) to the source (the crop).
        return [
            cv2.warpAffine(p, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=0.0)
            for p, m in zip(prob.astype(np.float32), affines, strict=True)
        ]

    def predict_many(
        self, rgb: np.ndarray, boxes_px: Sequence[Sequence[float]], labels: Sequence[str | None] | None = None
    ) -> list[np.ndarray]:
        """One mask per box: probability >= 0.5 inside the box."""
        h, w = rgb.shape[:2]
        out = []
        for b, p in zip(boxes_px, self.probabilities(rgb, boxes_px, labels), strict=True):
            x0, y0, x1, y1 = _clip_box(b, w, h)
            keep = np.zeros((h, w), bool)
            keep[y0:y1, x0:x1] = p[y0:y1, x0:x1] >= 0.5
            out.append(keep)
        return out
