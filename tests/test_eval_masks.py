"""`flask oiap evaluate` of object_mask models: mean mask IoU and COCO mask AP@0.5 on the test split."""

import json

import numpy as np
import pytest

from app.annotations import masks
from app.annotations.rows import annotation_row, insert_annotations
from app.db import immediate
from app.imports.folder import register_image_file
from app.models.eval_masks import coco_mask_ap
from app.models.mask_models import ensure_mask_models
from app.sets.queries import create_set
from tests.person_masks import PERSON, photos


def test_coco_mask_ap_counts_matches_at_iou_half():
    a = np.zeros((50, 80), bool)
    a[10:40, 10:40] = True
    b = np.zeros((50, 80), bool)
    b[5:45, 45:75] = True
    ra, rb = json.loads(masks.encode(a)), json.loads(masks.encode(b))
    half = np.zeros_like(a)
    half[10:40, 10:22] = True  # IoU 0.4 with a: a miss at 0.5
    truth = [(1, PERSON, ra), (1, PERSON, rb)]
    assert (
        coco_mask_ap(truth, [(1, PERSON, ra, 1.0), (1, PERSON, rb, 1.0)], {1: (80, 50)})["mask_ap50"] == 1.0
    )
    one = coco_mask_ap(
        truth, [(1, PERSON, json.loads(masks.encode(half)), 1.0), (1, PERSON, rb, 1.0)], {1: (80, 50)}
    )
    # Equal scores keep the given order: the miss ranks first, so precision is 0.5 up to recall 0.5,
    # and COCO's 101-point AP is 51 * 0.5 / 101.
    assert one["mask_ap50"] == pytest.approx(51 * 0.5 / 101, abs=1e-4)
    assert coco_mask_ap(truth, [], {1: (80, 50)})["mask_ap50"] == 0.0


def test_evaluate_the_builtin_masks_on_the_test_split(db, runner):
    with immediate(db):
        gt = create_set(db, "human-object_mask", "object_mask", "human")
        rows = []
        for p in photos("testing"):
            image_id, _ = register_image_file(db, p.path, "test")
            rows += [annotation_row(gt, image_id, "object_mask", label=PERSON, mask=m) for m in p.masks]
        insert_annotations(db, rows)
    ids = ensure_mask_models(db)
    db.conn.commit()
    r = runner.invoke(args=["oiap", "evaluate", str(ids["builtin-masks"]), "--json"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.output)
    # The selfie segmenter on people: 0.835 mean IoU on these five (scripts/eval_masks.py), each above 0.5.
    assert m["masks"] == 5 and m["images"] == 2 and m["skipped"] == 0
    assert m["mask_iou"] > 0.78 and m["mask_iou_by_class"][PERSON] == m["mask_iou"]
    assert m["mask_ap50"] > 0.9
    text = runner.invoke(args=["oiap", "evaluate", str(ids["builtin-masks"])]).output
    assert "mask IoU" in text and "mask AP@0.5" in text
    stored = json.loads(
        db.execute("SELECT metrics FROM models WHERE id = ?", [ids["builtin-masks"]]).fetchone()[0]
    )
    assert stored["test"]["mask_ap50"] == m["mask_ap50"]
