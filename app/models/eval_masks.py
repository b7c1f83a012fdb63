"""Evaluate an object_mask model on a split's ground-truth masks: mean mask IoU and mask AP@0.5.

The model is prompted with each ground-truth mask's box (box -> mask annotators; a detector's misses
never mix in), on the upright photo as bulk-annotate gives it; its masks are mapped back to the
file's grid and compared with the ground truth:

- `mask_iou` (the main metric, what promote compares): the mean IoU of each ground-truth mask with
  the mask predicted from its box (0 when the model gives none); `mask_iou_by_class` per class MID;
- `mask_ap50` and `mask_ap` (0.5:0.95): pycocotools' COCOeval with iouType='segm' over the same
  predictions, per class then averaged, as COCO does. Each prediction is scored 1 (a prompted model
  ranks nothing), so with misses the AP depends on the order of the ties: which is why promotion
  compares mean IoU.
"""

import contextlib
import io
import json
from collections.abc import Mapping

import numpy as np
from sqlite_utils import Database

from ..annotations import masks
from ..errors import InvalidInput


def _coco(images: list[dict], anns: list[dict], cats: list[dict]):
    from pycocotools.coco import COCO

    c = COCO()
    c.dataset = {"images": images, "annotations": anns, "categories": cats}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        c.createIndex()
    return c


def coco_mask_ap(
    truth: list[tuple[int, str, dict]], preds: list[tuple[int, str, dict, float]], sizes
) -> dict:
    """COCO segm AP@0.5 and AP@[0.5:0.95] of predicted RLEs against ground-truth RLEs.

    truth: (image no, class, rle); preds: (image no, class, rle, score); sizes: image no -> (w, h).
    """
    from pycocotools.cocoeval import COCOeval

    classes = sorted({c for _, c, _ in truth})
    cat = {c: i + 1 for i, c in enumerate(classes)}
    images = [{"id": i, "width": w, "height": h} for i, (w, h) in sizes.items()]
    gt_anns = []
    for k, (img, c, rle) in enumerate(truth, 1):
        area = masks.area(json.dumps(rle))
        gt_anns.append(
            {
                "id": k,
                "image_id": img,
                "category_id": cat[c],
                "segmentation": rle,
                "area": area,
                "bbox": [0, 0, 1, 1],
                "iscrowd": 0,
            }
        )
    gt = _coco(images, gt_anns, [{"id": i, "name": c} for c, i in cat.items()])
    dets = [
        {"image_id": img, "category_id": cat[c], "segmentation": rle, "score": score}
        for img, c, rle, score in preds
        if c in cat
    ]
    if not dets:
        return {"mask_ap50": 0.0, "mask_ap": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(dets), iouType="segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"mask_ap": round(float(ev.stats[0]), 4), "mask_ap50": round(float(ev.stats[1]), 4)}


def measure_masks(db: Database, config: Mapping, model: dict, gt: dict[str, list], bar, readable) -> dict:
    """Run an object_mask model on the ground-truth boxes of `gt` (image id -> rows) and score its masks.

    `readable(gt, bar, skipped)` yields (image_id, rows, Decoded) (models.evaluation's reader).
    """
    from .builtin import verified_files
    from .mask_models import load_mask_annotator

    annotator = load_mask_annotator(model, verified_files(model))
    skipped = [0]
    ious: list[float] = []
    by_class: dict[str, list[float]] = {}
    truth, preds, sizes = [], [], {}
    for image_no, (_image_id, rows, d) in enumerate(readable(gt, bar, skipped), 1):
        rows = [r for r in rows if r.mask is not None and r.box is not None]
        if not rows:
            continue
        w, h = d.width, d.height
        sizes[image_no] = (w, h)
        out = annotator.predict_many(d.rgb, [d.box_to_decoded(r.box) for r in rows], [r.label for r in rows])
        for r, m in zip(rows, out, strict=True):
            full = masks.to_file_grid(m, d.orientation.mirror, d.orientation.turns, w, h)
            want = r.mask
            if masks.size(want) != (h, w):
                # A ground truth stored at another size (an image row's size since corrected): compare on the file's grid.
                want = masks.encode(masks.to_file_grid(masks.decode(want), False, 0, w, h))
            got = masks.encode(full)
            iou = masks.iou(got, want)
            ious.append(iou)
            by_class.setdefault(r.label or "object", []).append(iou)
            truth.append((image_no, r.label or "object", json.loads(want)))
            if full.any():
                preds.append((image_no, r.label or "object", json.loads(got), 1.0))
    if not ious:
        raise InvalidInput("no ground-truth mask could be read (missing image files?)")
    result = {
        "mask_iou": round(float(np.mean(ious)), 4),
        "masks": len(ious),
        "images": len(sizes),
        "mask_iou_by_class": {c: round(float(np.mean(v)), 4) for c, v in sorted(by_class.items())},
    }
    result |= coco_mask_ap(truth, preds, sizes)
    result["skipped"] = skipped[0]
    return result
