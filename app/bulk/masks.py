"""The object_mask step of the bulk chain: `flask oiap bulk-annotate --kind object_mask` gives one mask
per box of a set, by the active object_mask model (or --model).

The boxes come from a set (`--boxes-from`: an object_box or face_box set, an import or a model run),
narrowed to `--classes`; each box's mask is written to one new object_mask set per run, with the
box's class as its label, the box as its box and parent_id the box's row. Images are taken as for
the other kinds (those no human labelled for object_mask, or whose machine mask was rated bad), in id
order; with --classes, only images with a box of those classes, and only human masks and bad ratings
of those classes count (app/bulk/selection.py).

The run itself is bulk-annotate's (app/bulk/local.py: batches, the writes through annotations/rows.py,
run_errors, the cursor, resume, supersession, progress) on any engine: the chain (app/bulk/chain.py)
decodes the photo upright as for the other kinds and calls `box_masks` here, which turns the
annotator's masks back and resizes them to the stored file's grid before they are encoded, so masks
sit on the same grid as boxes.
"""

import numpy as np

from ..annotations import masks
from ..images.decode import Decoded

KIND = "object_mask"


def mask_to_file(d: Decoded, m: np.ndarray) -> np.ndarray:
    """A mask on the decoded (upright, maybe reduced) pixels -> the stored file's grid (width x height)."""
    return masks.to_file_grid(m, d.orientation.mirror, d.orientation.turns, d.width, d.height)


def load_masker(model: dict, threads: int | None):
    """The annotator of an object_mask model row (its files verified against their sha256)."""
    from ..models.builtin import verified_files
    from ..models.mask_models import load_mask_annotator

    return load_mask_annotator(model, verified_files(model), threads)


def box_masks(masker, d: Decoded, boxes: list[dict]) -> list[dict]:
    """The masks of one photo's boxes ({"id", "label", "box"}, the box normalised on the file's grid):
    {"parent_id", "label", "box", "mask" (COCO RLE JSON on the file's grid)} per box whose mask is not
    empty."""
    if not boxes:
        return []
    preds = masker.predict_many(
        d.rgb, [d.box_to_decoded(b["box"]) for b in boxes], [b["label"] for b in boxes]
    )
    out = []
    for b, m in zip(boxes, preds, strict=True):
        full = mask_to_file(d, m)
        if full.any():
            out.append(
                {"parent_id": b["id"], "label": b["label"], "box": b["box"], "mask": masks.encode(full)}
            )
    return out
