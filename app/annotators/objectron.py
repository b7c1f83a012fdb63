"""MediaPipe Objectron's 2D object detector (SSD-MobileNetV2, 23 Open Images v4 classes + background) on onnxruntime.

The model is `object_detection_ssd_mobilenetv2_oidv4_fp16.tflite` from the npm package
@mediapipe/objectron@0.4.1675468480, converted by scripts/export_objectron.py. Everything around the
network follows MediaPipe's own graph for it, mediapipe/modules/objectron/object_detection_oid_v4_cpu.pbtxt:

- ImageTransformationCalculator: the whole image stretched to 300x300 (aspect ratio not kept);
- TfLiteConverterCalculator (default zero_center): RGB scaled to [-1, 1];
- SsdAnchorsCalculator: 6 layers, scales 0.2..0.95, strides 16..512, aspect ratios 1, 2, 0.5, 3, 0.3333
  (+ the interpolated 1.0 anchor), 3 fixed anchors in the lowest layer: 1917 anchors;
- TfLiteTensorsToDetectionsCalculator: boxes (y, x, h, w) / scales (10, 10, 5, 5) around each anchor,
  exp on the size, sigmoid scores, class 0 ("???", background) ignored, the best class per anchor;
- NonMaxSuppressionCalculator: IoU 0.4.

MediaPipe keeps one box (max_num_detections 1, min score 0.6) because Objectron tracks one object;
annotation wants every object, so here NMS runs per class and keeps every box above `score_threshold`.
(The graph's num_classes 195 is not this model's: its outputs have 24 classes, read from the file.)
Class names become Open Images MIDs through OIDV4_MIDS (the model file carries its own class list as
MIDs in its metadata, so a fine-tuned file with other classes runs through the same code).
"""

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .session import session

MODEL_PATH = Path(__file__).resolve().parent / "models" / "objectron_ssd_oidv4.onnx"
INPUT_SIZE = 300
NUM_ANCHORS = 1917
# ONNX metadata key holding the output classes as a JSON list of MIDs (index 0: background, "").
LABELS_KEY = "oiap_labels"

# The label map shipped beside the .tflite (bytes 0..184 of objectron_solution_packed_assets.data), in
# output order; "???" is the background class.
OIDV4_LABELS = (
    "???", "Bicycle", "Boot", "Laptop", "Person", "Chair", "Cattle", "Desk", "Cat", "Computer mouse",
    "Computer monitor", "Box", "Mug", "Coffee cup", "Stationary bicycle", "Table", "Bottle",
    "High heels", "Vehicle", "Footwear", "Dog", "Book", "Camera", "Car",
)  # fmt: skip

# Display name -> MID, copied from Open Images V4's class-descriptions-boxable.csv (the 600 boxable
# classes, https://storage.googleapis.com/openimages/2018_04/class-descriptions-boxable.csv; the same
# rows in V5-V7's oidv*-class-descriptions-boxable.csv). tests/test_objectron.py checks every name.
OIDV4_MIDS = {
    "Bicycle": "/m/0199g",
    "Boot": "/m/01b638",
    "Laptop": "/m/01c648",
    "Person": "/m/01g317",
    "Chair": "/m/01mzpv",
    "Cattle": "/m/01xq0k1",
    "Desk": "/m/01y9k5",
    "Cat": "/m/01yrx",
    "Computer mouse": "/m/020lf",
    "Computer monitor": "/m/02522",
    "Box": "/m/025dyy",
    "Mug": "/m/02jvh9",
    "Coffee cup": "/m/02p5f1q",
    "Stationary bicycle": "/m/03kt2w",
    "Table": "/m/04bcr3",
    "Bottle": "/m/04dr76w",
    "High heels": "/m/06k2mb",
    "Vehicle": "/m/07yv9",
    "Footwear": "/m/09j5n",
    "Dog": "/m/0bt9lr",
    "Book": "/m/0bt_c3",
    "Camera": "/m/0dv5r",
    "Car": "/m/0k4j",
}

# SsdAnchorsCalculatorOptions of object_detection_oid_v4_cpu.pbtxt.
ANCHOR_OPTIONS = {
    "num_layers": 6,
    "min_scale": 0.2,
    "max_scale": 0.95,
    "input_size_height": INPUT_SIZE,
    "input_size_width": INPUT_SIZE,
    "anchor_offset_x": 0.5,
    "anchor_offset_y": 0.5,
    "strides": (16, 32, 64, 128, 256, 512),
    "aspect_ratios": (1.0, 2.0, 0.5, 3.0, 0.3333),
    "reduce_boxes_in_lowest_layer": True,
    "interpolated_scale_aspect_ratio": 1.0,
}
# TfLiteTensorsToDetectionsCalculatorOptions: x_scale, y_scale, w_scale, h_scale.
BOX_SCALE = (10.0, 10.0, 5.0, 5.0)
NMS_IOU = 0.4
# Lower than MediaPipe's 0.6, which serves a tracker that needs one sure box: for review, a box a person
# rejects costs a key press, a missed object costs drawing it (not tuned on any labelled photo). AP is
# measured over a ranking, so an evaluation should keep low-score boxes too (EVAL_THRESHOLD, as
# scripts/dev_round_objects.py does).
SCORE_THRESHOLD = 0.3
EVAL_THRESHOLD = 0.05
MAX_DETECTIONS = 100


def _scale(min_scale: float, max_scale: float, index: int, count: int) -> float:
    if count == 1:
        return (min_scale + max_scale) * 0.5
    return min_scale + (max_scale - min_scale) * index / (count - 1.0)


def ssd_anchors(opts: dict = ANCHOR_OPTIONS) -> np.ndarray:
    """(N, 4) anchors (y_center, x_center, h, w), normalised, in the order MediaPipe's
    SsdAnchorsCalculator makes them (non-multiscale path): per layer group, per cell (row-major), per
    anchor."""
    strides = list(opts["strides"])
    n = len(strides)
    out = []
    layer = 0
    while layer < opts["num_layers"]:
        ratios, scales = [], []
        last = layer
        # Layers of one stride share a grid; their anchors are merged, in layer order.
        while last < n and strides[last] == strides[layer]:
            scale = _scale(opts["min_scale"], opts["max_scale"], last, n)
            if last == 0 and opts["reduce_boxes_in_lowest_layer"]:
                ratios += [1.0, 2.0, 0.5]
                scales += [0.1, scale, scale]
            else:
                for r in opts["aspect_ratios"]:
                    ratios.append(r)
                    scales.append(scale)
                if opts["interpolated_scale_aspect_ratio"] > 0:
                    nxt = 1.0 if last == n - 1 else _scale(opts["min_scale"], opts["max_scale"], last + 1, n)
                    scales.append(np.sqrt(scale * nxt))
                    ratios.append(opts["interpolated_scale_aspect_ratio"])
            last += 1
        # The calculator computes in float32; doing the same keeps the anchors bit-equal to its own.
        r = np.sqrt(np.asarray(ratios, np.float32))
        s = np.asarray(scales, np.float32)
        h, w = s / r, s * r
        fh = int(np.ceil(opts["input_size_height"] / strides[layer]))
        fw = int(np.ceil(opts["input_size_width"] / strides[layer]))
        ys = (np.arange(fh, dtype=np.float32) + opts["anchor_offset_y"]) / fh
        xs = (np.arange(fw, dtype=np.float32) + opts["anchor_offset_x"]) / fw
        cy, cx, k = np.meshgrid(ys, xs, np.arange(len(s)), indexing="ij")
        out.append(np.stack([cy.ravel(), cx.ravel(), h[k.ravel()], w[k.ravel()]], 1))
        layer = last
    return np.concatenate(out).astype(np.float32)


ANCHORS = ssd_anchors()


def decode_boxes(raw: np.ndarray, anchors: np.ndarray = ANCHORS) -> np.ndarray:
    """Raw (..., N, 4) box encodings (y, x, h, w) -> (..., N, 4) boxes (x0, y0, x1, y1), normalised."""
    xs, ys, ws, hs = BOX_SCALE
    ay, ax, ah, aw = anchors[:, 0], anchors[:, 1], anchors[:, 2], anchors[:, 3]
    cy = raw[..., 0] / ys * ah + ay
    cx = raw[..., 1] / xs * aw + ax
    h = np.exp(raw[..., 2] / hs) * ah
    w = np.exp(raw[..., 3] / ws) * aw
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def encode_boxes(boxes: np.ndarray, anchors: np.ndarray = ANCHORS) -> np.ndarray:
    """The inverse of decode_boxes: (N, 4) boxes (x0, y0, x1, y1) -> raw encodings (y, x, h, w)."""
    xs, ys, ws, hs = BOX_SCALE
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    w = np.maximum(boxes[:, 2] - boxes[:, 0], 1e-6)
    h = np.maximum(boxes[:, 3] - boxes[:, 1], 1e-6)
    ay, ax, ah, aw = anchors[:, 0], anchors[:, 1], anchors[:, 2], anchors[:, 3]
    return np.stack(
        [(cy - ay) / ah * ys, (cx - ax) / aw * xs, np.log(h / ah) * hs, np.log(w / aw) * ws], 1
    ).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, limit: int) -> list[int]:
    """Greedy non-maximum suppression by IoU; indices kept, best first."""
    order = np.argsort(-scores, kind="stable")
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    keep: list[int] = []
    while len(order) and len(keep) < limit:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        xx0 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy0 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx1 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy1 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx1 - xx0, 0, None) * np.clip(yy1 - yy0, 0, None)
        union = area[i] + area[rest] - inter
        order = rest[inter <= iou * np.maximum(union, 1e-12)]
    return keep


def preprocess(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> (1, 3, 300, 300) float32 in [-1, 1]: the whole image stretched (bilinear)."""
    im = Image.fromarray(rgb).resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR)
    return to_input(np.asarray(im))


def to_input(rgb300: np.ndarray) -> np.ndarray:
    """(..., 300, 300, 3) uint8 -> (N, 3, 300, 300) float32 scaled as TfLiteConverterCalculator does."""
    x = np.asarray(rgb300, np.float32).reshape(-1, INPUT_SIZE, INPUT_SIZE, 3)
    return (x / np.float32(127.5) - np.float32(1.0)).transpose(0, 3, 1, 2).copy()


def model_labels(path: str | Path, threads: int | None = None) -> list[str]:
    """The output classes of a model file as MIDs (index 0 is the background, ""), from its metadata."""
    # Read through onnxruntime (the app's runtime has no `onnx` package); the session is cached anyway.
    props = session(path, threads).get_modelmeta().custom_metadata_map
    if LABELS_KEY not in props:
        raise ValueError(f"{path}: no {LABELS_KEY!r} metadata; export it with scripts/export_objectron.py")
    return json.loads(props[LABELS_KEY])


class ObjectronDetector:
    """detect(rgb) -> [(box_px (x0, y0, x1, y1), score, MID)], every class's boxes after NMS.

    classes: the MIDs to keep (None: all the file's classes); ValueError names one it cannot give."""

    def __init__(
        self,
        path: str | Path = MODEL_PATH,
        *,
        score_threshold: float = SCORE_THRESHOLD,
        classes: Sequence[str] | None = None,
        threads: int | None = None,
    ):
        self.path = Path(path)
        self.score_threshold = score_threshold
        self.labels = model_labels(self.path, threads)
        self.classes = None if classes is None else set(classes)
        if self.classes is not None and (unknown := sorted(self.classes - set(self.labels[1:]))):
            raise ValueError(
                f"{', '.join(unknown)} not among the classes of {self.path.name}: "
                + ", ".join(m for m in self.labels[1:])
            )
        self.threads = threads

    @property
    def session(self):
        """The onnxruntime session (shared per file, see annotators/session.py)."""
        return session(self.path, self.threads)

    def raw(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the network on (N, 3, 300, 300) input: (boxes (N, 1917, 4), logits (N, 1917, K))."""
        boxes, logits = self.session.run(["box_encodings", "class_predictions"], {"image": x})
        return boxes, logits

    def detect(self, rgb: np.ndarray) -> list[tuple[tuple[float, float, float, float], float, str]]:
        """Objects in an HxWx3 uint8 RGB image: [(box in pixels, score, MID)], best first."""
        h, w = rgb.shape[:2]
        raw, logits = self.raw(preprocess(rgb))
        return [
            (tuple(float(v) for v in box * [w, h, w, h]), score, mid)
            for box, score, mid in self.postprocess(raw[0], logits[0])
        ]

    def detect_batch(self, imgs: Sequence[np.ndarray]) -> list[list]:
        """detect() for several images, the network run once on all of them."""
        x = np.concatenate([preprocess(im) for im in imgs]) if len(imgs) else None
        if x is None:
            return []
        raw, logits = self.raw(x)
        out = []
        for im, r, lg in zip(imgs, raw, logits, strict=True):
            h, w = im.shape[:2]
            dets = self.postprocess(r, lg)
            out.append([(tuple(float(v) for v in b * [w, h, w, h]), s, m) for b, s, m in dets])
        return out

    def postprocess(self, raw: np.ndarray, logits: np.ndarray) -> list[tuple[np.ndarray, float, str]]:
        """One image's raw outputs -> [(normalised box clipped to the image, score, MID)], best first."""
        scores = 1.0 / (1.0 + np.exp(-logits[:, 1:].astype(np.float64)))  # class 0: background
        cls = scores.argmax(1)
        best = scores[np.arange(len(cls)), cls]
        boxes = decode_boxes(raw)
        keep = best >= self.score_threshold
        keep &= (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        out = []
        for c in np.unique(cls[keep]):
            mid = self.labels[c + 1]
            if self.classes is not None and mid not in self.classes:
                continue
            idx = np.flatnonzero(keep & (cls == c))
            for k in nms(boxes[idx], best[idx], NMS_IOU, MAX_DETECTIONS):
                b = np.clip(boxes[idx[k]], 0.0, 1.0)
                out.append((b, float(best[idx[k]]), mid))
        out.sort(key=lambda t: -t[1])
        return out[:MAX_DETECTIONS]
