"""object_mask models: the builtin box -> mask row, a user's SAM-family pair, and turning a row into an annotator.

Runners (`params["runner"]`):
- `mask:builtin` (the builtin row, its file MediaPipe's selfie segmentation): people's boxes (the
  classes of PERSON_CLASSES) get the selfie segmenter's mask, every other class the graph cut over
  SLIC superpixels (app/annotators/box_masks.py); on the hand-drawn person masks' training photos
  (scripts/eval_masks.py) GrabCut gave mean IoU 0.708, the SLIC cut 0.762 (so it was kept), the selfie
  segmenter 0.854;
- `mask:slic`, `mask:grabcut`, `mask:selfie`: one of them for every class (same file);
- `mask:sam`: a user's encoder (the row's file) and decoder (`params["files"]["decoder"]`), added with
  `flask oiap models add ENCODER --kind object_mask --runner mask:sam --decoder DECODER`; never shipped;
- `mask:trained`: a U-Net on the box's crop, refining the builtin's mask (`params.prior`, its file
  `params.files.prior`), trained by `flask oiap train --kind object_mask` (app/training/masks.py, run
  by app/annotators/mask_net.py).
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sqlite_utils import Database

from ..errors import InvalidInput
from .registry import activate_model, active_model, register_model, sha256_file

KIND = "object_mask"
RUNNERS = ("mask:builtin", "mask:slic", "mask:grabcut", "mask:selfie", "mask:sam", "mask:trained")
# Open Images' person classes: Person, Man, Woman, Boy, Girl.
PERSON_CLASSES = ("/m/01g317", "/m/04yx4", "/m/03bt1vf", "/m/01bl7v", "/m/05r655")
SELFIE_ORIGIN = (
    "mediapipe 0.10.21 (PyPI) mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite, "
    "exported to ONNX by scripts/export_selfie_segmentation.py; people by it, other classes by a SLIC graph cut"
)


class ByClass:
    """People by the selfie segmenter, every other class by the SLIC graph cut."""

    def __init__(self, people, others, person_classes: Sequence[str] = PERSON_CLASSES):
        self.people, self.others, self.person_classes = people, others, set(person_classes)

    def predict_many(
        self, rgb: np.ndarray, boxes_px: Sequence[Sequence[float]], labels: Sequence[str | None] | None = None
    ) -> list[np.ndarray]:
        """One mask per box, each by the annotator of its class."""
        labels = list(labels) if labels is not None else [None] * len(boxes_px)
        out: list = [None] * len(boxes_px)
        for annotator, want in ((self.people, True), (self.others, False)):
            idx = [i for i, lab in enumerate(labels) if (lab in self.person_classes) == want]
            if idx:
                for i, m in zip(idx, annotator.predict_many(rgb, [boxes_px[i] for i in idx]), strict=True):
                    out[i] = m
        return out


class AnyClass:
    """One annotator for every class (labels ignored)."""

    def __init__(self, annotator):
        self.annotator = annotator

    def predict_many(self, rgb, boxes_px, labels=None) -> list[np.ndarray]:
        """One mask per box."""
        return self.annotator.predict_many(rgb, boxes_px)


def ensure_mask_models(db: Database) -> dict[str, int]:
    """Register the builtin object_mask row once and activate it when the kind has no active model."""
    from ..annotators.box_masks import SELFIE_PATH

    model_id = register_model(
        db,
        SELFIE_PATH,
        KIND,
        name="builtin-masks",
        source="builtin",
        params={"runner": "mask:builtin", "person_classes": list(PERSON_CLASSES)},
        licence="Apache-2.0 (MediaPipe selfie segmentation); the SLIC graph cut is our code",
        origin=SELFIE_ORIGIN,
        version="mediapipe-0.10.21",
    )
    if active_model(db, KIND) is None:
        activate_model(db, model_id)
    return {"builtin-masks": model_id}


def load_mask_annotator(model: dict, files: dict[str, Path], threads: int | None = None):
    """The annotator of an object_mask row (files already verified): predict_many(rgb, boxes_px, labels)."""
    from ..annotators.box_masks import GrabCutMasks, SelfieMasks, SlicCutMasks

    runner = model["params"].get("runner")
    if runner == "mask:builtin":
        return ByClass(
            SelfieMasks(files["main"], threads),
            SlicCutMasks(),
            model["params"].get("person_classes", PERSON_CLASSES),
        )
    if runner == "mask:selfie":
        return AnyClass(SelfieMasks(files["main"], threads))
    if runner == "mask:grabcut":
        return AnyClass(GrabCutMasks())
    if runner == "mask:slic":
        return AnyClass(SlicCutMasks())
    if runner == "mask:trained":
        from ..annotators.mask_net import MARGIN, TrainedMasks

        prior = model["params"].get("prior") or {}
        if "prior" not in files or prior.get("runner") not in ("mask:builtin", "mask:selfie", "mask:slic"):
            raise InvalidInput(
                f"model {model['id']} ({model['name']}): a mask:trained row needs its prior "
                "(params.prior.runner and params.files.prior); train it again with `flask oiap train --kind object_mask`"
            )
        prior_row = {"id": model["id"], "name": f"{model['name']} (prior)", "params": prior}
        return TrainedMasks(
            files["main"],
            load_mask_annotator(prior_row, {"main": files["prior"]}, threads),
            threads,
            model["params"].get("margin", MARGIN),
        )
    if runner == "mask:sam":
        from ..annotators.sam_masks import PromptedMasks

        if "decoder" not in files:
            raise InvalidInput(
                f"model {model['id']} ({model['name']}): a mask:sam row needs its decoder "
                "(params.files.decoder); add it again with --decoder DECODER.onnx"
            )
        return AnyClass(PromptedMasks(files["main"], files["decoder"], threads))
    raise InvalidInput(f"model {model['id']} ({model['name']}): unknown object_mask runner {runner!r}")


def decoder_params(decoder: str | Path, models_dir: str | Path) -> dict:
    """params.files for a pair's decoder: copied into the models folder by its sha256."""
    from .registry import place_file

    src = Path(decoder)
    if not src.is_file():
        raise InvalidInput(f"--decoder {src} does not exist")
    digest = sha256_file(src)
    return {"decoder": {"path": str(place_file(src, models_dir, digest)), "sha256": digest}}
