"""The annotator chain of a bulk run: what the models of one run do to a batch of images. Every engine
runs it (the local thread pool in app/bulk/local.py, worker processes in app/bulk/process_engine.py,
Ray actors in app/bulk/ray_engine.py), for every kind (object_mask: app/bulk/masks.py's step)."""

import threading
from dataclasses import dataclass
from time import thread_time

import numpy as np

from ..errors import InvalidInput, NotFound
from ..images.decode import BadImage, decode


class Timer(dict):
    """CPU seconds per stage (thread time), summed over the worker threads."""

    def __init__(self):
        super().__init__()
        self._lock = threading.Lock()

    def add(self, key: str, seconds: float) -> None:
        with self._lock:
            self[key] = self.get(key, 0.0) + seconds


class Chain:
    """The models of one run and what they do to a batch of images (runs in worker threads)."""

    def __init__(self, kind, detector, landmarks68, config, max_side, boxes_from, classes=None, masker=None):
        self.kind = kind
        self.masker = masker
        self.classes = set(classes) if classes else None
        self.detector = detector
        self.landmarks68 = landmarks68
        self.config = config
        self.max_side = max_side
        self.boxes_from = boxes_from
        self.timer = Timer()

    def _decode(self, row: dict):
        from ..images.layout import image_path

        t0 = thread_time()
        try:
            path = image_path(self.config, row)
            return decode(path, self.max_side, row.get("rotation"))
        except BadImage as e:
            return e
        except (NotFound, InvalidInput) as e:
            return BadImage(f"missing: {e}")
        finally:
            self.timer.add("decode", thread_time() - t0)

    def run(self, rows: list[dict]) -> list[dict]:
        """Decode and annotate a batch; one result per row: {"image_id", "error"} or {"image_id", "faces"}
        (for object_box, "faces" holds the objects, each with its class MID as "label"; for object_mask,
        the masks of the row's boxes, app/bulk/masks.py)."""
        decoded = [self._decode(r) for r in rows]
        ok = [i for i, d in enumerate(decoded) if not isinstance(d, BadImage)]
        out = [
            {"image_id": r["id"], "error": str(d)}
            if isinstance(d, BadImage)
            else {"image_id": r["id"], "faces": []}
            for r, d in zip(rows, decoded, strict=True)
        ]
        if self.kind == "object_mask":
            from .masks import box_masks

            t0 = thread_time()
            for i in ok:
                out[i]["faces"] = box_masks(self.masker, decoded[i], rows[i]["boxes"])
            self.timer.add("masks", thread_time() - t0)
            return out
        if self.kind == "object_box":
            # Object detectors give (box_px, score, Open Images MID): one row per box, labelled.
            t0 = thread_time()
            dets = self.detector.detect_batch([decoded[i].rgb for i in ok]) if ok else []
            self.timer.add("detect", thread_time() - t0)
            for i, objects in zip(ok, dets, strict=True):
                d = decoded[i]
                out[i]["faces"] = [
                    {
                        "box_px": np.asarray(box, dtype=np.float64),
                        "box": d.normalise_box(box),
                        "score": score,
                        "label": mid,
                    }
                    for box, score, mid in objects
                    # Also here, for a detector that was not told the classes: --classes always holds.
                    if self.classes is None or mid in self.classes
                ]
        elif self.boxes_from is None:
            t0 = thread_time()
            dets = self.detector.detect_batch([decoded[i].rgb for i in ok]) if ok else []
            self.timer.add("detect", thread_time() - t0)
            for i, faces in zip(ok, dets, strict=True):
                d = decoded[i]
                out[i]["faces"] = [
                    {
                        "box_px": np.asarray(box, dtype=np.float64),
                        "box": d.normalise_box(box),
                        "score": score,
                        "points5_px": pts,
                        "points5": d.normalise_xy(pts),
                    }
                    for box, score, pts in faces
                ]
        else:
            for i in ok:
                d = decoded[i]
                out[i]["faces"] = [
                    {
                        "box_px": d.box_to_decoded(b["box"]),
                        "box": tuple(b["box"]),
                        "score": None,
                        "parent_id": b["id"],
                    }
                    for b in rows[i]["boxes"]
                ]
        if self.kind == "face_landmarks68":
            t0 = thread_time()
            for i in ok:
                faces, d = out[i]["faces"], decoded[i]
                if not faces:
                    continue
                preds = self.landmarks68.predict_many(
                    d.rgb, [f["box_px"] for f in faces], [f.get("points5_px") for f in faces]
                )
                for f, p in zip(faces, preds, strict=True):
                    f["points68"] = d.normalise_xy(p)
            self.timer.add("landmarks68", thread_time() - t0)
        return out


@dataclass
class ChainSpec:
    """What a Chain is built from: plain data, so a Ray actor can build its own."""

    kind: str
    box_model: dict | None
    landmarks68_model: dict | None
    max_side: int | None
    boxes_from: int | None
    classes: list[str] | None = None  # object_box: the Open Images MIDs to keep (None: all)
    mask_model: dict | None = None  # object_mask: the model that puts a mask in each box

    def chain(self, config, threads: int | None, cls: type | None = None) -> "Chain":
        """Load the annotators (files verified against their sha256) into a Chain."""
        from ..models.builtin import load_annotator
        from .masks import load_masker

        return (cls or Chain)(
            self.kind,
            (load_annotator(self.box_model, threads, classes=self.classes) if self.box_model else None),
            load_annotator(self.landmarks68_model, threads) if self.landmarks68_model else None,
            config,
            self.max_side,
            self.boxes_from,
            self.classes,
            load_masker(self.mask_model, threads) if self.mask_model else None,
        )
