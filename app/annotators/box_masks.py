"""Box -> mask annotators: given an image and object boxes, one instance mask per box.

Each annotator has `predict_many(rgb, boxes_px) -> list[np.ndarray]`: rgb is H x W x 3 uint8 (upright,
as bulk-annotate decodes it), boxes are (x0, y0, x1, y1) in its pixels, and each mask is a boolean
H x W array over the whole image, inside the box (an instance mask belongs to its box: what sticks
out of a box belongs to the objects around it).

- `GrabCutMasks` (any class): OpenCV's GrabCut initialised by the box, on a crop around the box
  reduced to at most `side` pixels (GrabCut's cost grows with pixels; a mask's outline needs few).
- `SelfieMasks` (people): MediaPipe's selfie segmentation (ONNX, scripts/export_selfie_segmentation.py)
  on the box's crop with a margin, stretched to its 256 x 256 input as MediaPipe does.
- `PromptedMasks` (any class, never shipped): a user's SAM-family encoder/decoder pair (ONNX),
  prompted by the box's two corners (see app/annotators/sam_masks.py).

Numpy, OpenCV and onnxruntime only: no store, no Flask, no torch.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .session import session

SELFIE_PATH = Path(__file__).parent / "models" / "selfie_segmentation.onnx"


def _clip_box(box: Sequence[float], w: int, h: int) -> tuple[int, int, int, int]:
    """The box as whole pixels covering it, inside the image, at least 1 pixel each way."""
    x0, y0, x1, y1 = (float(v) for v in box)
    ix0 = int(np.clip(np.floor(min(x0, x1)), 0, w - 1))
    iy0 = int(np.clip(np.floor(min(y0, y1)), 0, h - 1))
    ix1 = int(np.clip(np.ceil(max(x0, x1)), ix0 + 1, w))
    iy1 = int(np.clip(np.ceil(max(y0, y1)), iy0 + 1, h))
    return ix0, iy0, ix1, iy1


def _crop_around(box: tuple[int, int, int, int], margin: float, w: int, h: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    mx, my = round((x1 - x0) * margin), round((y1 - y0) * margin)
    return max(0, x0 - mx), max(0, y0 - my), min(w, x1 + mx), min(h, y1 + my)


def _paste(mask_crop: np.ndarray, crop: tuple[int, int, int, int], box, shape) -> np.ndarray:
    """A crop's mask placed in a full-image mask and cut to the box."""
    out = np.zeros(shape, dtype=bool)
    cx0, cy0, cx1, cy1 = crop
    out[cy0:cy1, cx0:cx1] = mask_crop
    x0, y0, x1, y1 = box
    keep = np.zeros(shape, dtype=bool)
    keep[y0:y1, x0:x1] = True
    return out & keep


def _resize_prob(prob: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    return cv2.resize(prob.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


class GrabCutMasks:
    """GrabCut (OpenCV) initialised by each box: inside probably object, outside background."""

    name = "grabcut"

    # Chosen on the training photos of tests/data/person_masks.json only (scripts/eval_masks.py --file
    # training): side 128/192/256 gave mean IoU 0.50/0.55/0.71, margin 0.05/0.15/0.3 at side 256 gave
    # 0.52/0.67/0.71; 3 or 6 iterations the same.
    def __init__(self, iterations: int = 3, side: int = 384, margin: float = 0.3):
        import cv2

        # Parallelism comes from bulk-annotate's workers (as onnxruntime's 1 intra-op thread).
        cv2.setNumThreads(1)
        self.iterations, self.side, self.margin = iterations, side, margin

    def predict_one(self, rgb: np.ndarray, box_px: Sequence[float]) -> np.ndarray:
        """The mask of one box."""
        import cv2

        h, w = rgb.shape[:2]
        box = _clip_box(box_px, w, h)
        crop = _crop_around(box, self.margin, w, h)
        cx0, cy0, cx1, cy1 = crop
        patch = rgb[cy0:cy1, cx0:cx1]
        ph, pw = patch.shape[:2]
        k = min(1.0, self.side / max(ph, pw))
        sw, sh = max(1, round(pw * k)), max(1, round(ph * k))
        small = cv2.resize(patch, (sw, sh), interpolation=cv2.INTER_AREA) if k < 1 else patch
        bx0 = int(np.floor((box[0] - cx0) * sw / pw))
        by0 = int(np.floor((box[1] - cy0) * sh / ph))
        bx1 = int(np.ceil((box[2] - cx0) * sw / pw))
        by1 = int(np.ceil((box[3] - cy0) * sh / ph))
        # GrabCut needs some background: a box that fills the crop (an object filling the photo) keeps
        # a one-pixel frame outside its rectangle.
        bx0, by0 = max(bx0, 1), max(by0, 1)
        bx1, by1 = min(bx1, sw - 1), min(by1, sh - 1)
        if bx1 - bx0 < 2 or by1 - by0 < 2:
            return _paste(np.ones((ph, pw), bool), crop, box, (h, w))
        mask = np.zeros((sh, sw), np.uint8)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(0)  # GrabCut's k-means starts from random centres: the same input, the same mask
        bgr = np.ascontiguousarray(small[:, :, ::-1])
        cv2.grabCut(
            bgr, mask, (bx0, by0, bx1 - bx0, by1 - by0), bgd, fgd, self.iterations, cv2.GC_INIT_WITH_RECT
        )
        fg = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.float32)
        return _paste(_resize_prob(fg, pw, ph) >= 0.5, crop, box, (h, w))

    def predict_many(self, rgb: np.ndarray, boxes_px: Sequence[Sequence[float]]) -> list[np.ndarray]:
        """One mask per box."""
        return [self.predict_one(rgb, b) for b in boxes_px]


class SelfieMasks:
    """MediaPipe's selfie segmentation on each box's crop (people)."""

    name = "selfie"
    SIZE = 256

    def __init__(self, path: str | Path = SELFIE_PATH, threads: int | None = None, margin: float = 0.1):
        self.sess = session(path, threads)
        self.input = self.sess.get_inputs()[0].name
        shape = self.sess.get_inputs()[0].shape
        if list(shape[1:]) != [self.SIZE, self.SIZE, 3]:
            raise ValueError(f"{path}: expected an NHWC {self.SIZE}x{self.SIZE}x3 input, got {shape}")
        self.margin = margin

    def probabilities(self, rgb: np.ndarray, crops: Sequence[tuple[int, int, int, int]]) -> list[np.ndarray]:
        """The person probability of each crop, at the crop's size."""
        import cv2

        xs = []
        for cx0, cy0, cx1, cy1 in crops:
            patch = rgb[cy0:cy1, cx0:cx1]
            xs.append(cv2.resize(patch, (self.SIZE, self.SIZE), interpolation=cv2.INTER_LINEAR))
        out = []
        # The graph's batch is fixed at 1.
        for (cx0, cy0, cx1, cy1), x in zip(crops, xs, strict=True):
            prob = self.sess.run(None, {self.input: (x.astype(np.float32) / 255.0)[None]})[0][0, :, :, 0]
            out.append(_resize_prob(prob, cx1 - cx0, cy1 - cy0))
        return out

    def predict_many(self, rgb: np.ndarray, boxes_px: Sequence[Sequence[float]]) -> list[np.ndarray]:
        """One mask per box: person probability >= 0.5 inside the box."""
        h, w = rgb.shape[:2]
        boxes = [_clip_box(b, w, h) for b in boxes_px]
        crops = [_crop_around(b, self.margin, w, h) for b in boxes]
        probs = self.probabilities(rgb, crops)
        return [_paste(p >= 0.5, c, b, (h, w)) for p, c, b in zip(probs, crops, boxes, strict=True)]
