"""A user's SAM-family promptable segmenter (an image encoder and a mask decoder, both ONNX), prompted by boxes.

Never shipped (SAM's weights are Apache-2.0, but its derivatives vary; the user brings the pair with
`flask oiap models add ENCODER.onnx --kind object_mask --runner mask:sam --decoder DECODER.onnx`).
The layout is segment-anything's own ONNX export (and of the SAM-family exports that copy it):

- encoder: one input, NCHW float32 1 x 3 x S x S (S from the file, 1024 for SAM), the image resized so
  its long side is S, padded right and bottom, normalised by SAM's pixel mean and std; first output
  the image embeddings;
- decoder: inputs by name: `image_embeddings`, `point_coords` (1 x N x 2, in the resized frame),
  `point_labels` (1 x N; a box is its two corners labelled 2 and 3), and when present `mask_input`
  (1 x 1 x 4E x 4E zeros, E the embedding side), `has_mask_input` (0), `orig_im_size` (H, W); first
  output the mask logits (1 x K x h x w: at the image's size, or a low-resolution square over the
  padded frame), `iou_predictions` (1 x K), when present, picks the best of K.

The image is encoded once for all its boxes.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .box_masks import _clip_box, _paste, _resize_prob
from .session import session

PIXEL_MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
PIXEL_STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)


class PromptedMasks:
    """Box-prompted masks from an encoder/decoder pair."""

    name = "sam"

    def __init__(self, encoder: str | Path, decoder: str | Path, threads: int | None = None):
        self.enc = session(encoder, threads)
        self.dec = session(decoder, threads)
        shape = self.enc.get_inputs()[0].shape
        if len(shape) != 4 or not isinstance(shape[2], int) or shape[2] != shape[3]:
            raise ValueError(f"{encoder}: the encoder's input is {shape}, not a fixed square 1 x 3 x S x S")
        self.side = int(shape[2])
        self.enc_input = self.enc.get_inputs()[0].name
        self.dec_inputs = {i.name: i for i in self.dec.get_inputs()}
        missing = {"image_embeddings", "point_coords", "point_labels"} - set(self.dec_inputs)
        if missing:
            raise ValueError(
                f"{decoder}: the decoder has no input(s) {', '.join(sorted(missing))}; "
                f"its inputs are {', '.join(self.dec_inputs)} (expected segment-anything's ONNX layout)"
            )
        self.dec_outputs = [o.name for o in self.dec.get_outputs()]

    def _encode(self, rgb: np.ndarray) -> tuple[np.ndarray, float, tuple[int, int]]:
        import cv2

        h, w = rgb.shape[:2]
        k = self.side / max(h, w)
        rw, rh = max(1, round(w * k)), max(1, round(h * k))
        resized = cv2.resize(rgb, (rw, rh), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        x = np.zeros((self.side, self.side, 3), np.float32)
        x[:rh, :rw] = (resized - PIXEL_MEAN) / PIXEL_STD
        emb = self.enc.run(None, {self.enc_input: x.transpose(2, 0, 1)[None]})[0]
        return emb, k, (rh, rw)

    def _decode(self, emb: np.ndarray, box: Sequence[float], k: float, hw: tuple[int, int]) -> np.ndarray:
        feeds = {
            "image_embeddings": emb,
            "point_coords": (np.asarray(box, np.float32).reshape(1, 2, 2) * k).astype(np.float32),
            "point_labels": np.array([[2, 3]], np.float32),
        }
        if "mask_input" in self.dec_inputs:
            side = 4 * emb.shape[-1]
            feeds["mask_input"] = np.zeros((1, 1, side, side), np.float32)
        if "has_mask_input" in self.dec_inputs:
            feeds["has_mask_input"] = np.zeros(1, np.float32)
        if "orig_im_size" in self.dec_inputs:
            feeds["orig_im_size"] = np.array(hw, np.float32)
        outs = dict(zip(self.dec_outputs, self.dec.run(None, feeds), strict=True))
        logits = outs[self.dec_outputs[0]][0]  # K x h x w
        best = 0
        if "iou_predictions" in outs:
            best = int(np.argmax(outs["iou_predictions"][0]))
        return logits[best]

    def predict_many(self, rgb: np.ndarray, boxes_px: Sequence[Sequence[float]]) -> list[np.ndarray]:
        """One mask per box: the decoder's best mask for the box prompt, inside the box."""
        h, w = rgb.shape[:2]
        if not len(boxes_px):
            return []
        emb, k, (rh, rw) = self._encode(rgb)
        out = []
        for b in boxes_px:
            logits = self._decode(emb, b, k, (h, w))
            if logits.shape != (h, w):
                # A low-resolution mask over the padded square frame: up to the frame, cut the padding.
                frame = _resize_prob(logits, self.side, self.side)[:rh, :rw]
                logits = _resize_prob(frame, w, h)
            box = _clip_box(b, w, h)
            out.append(_paste(logits > 0, (0, 0, w, h), box, (h, w)))
        return out
