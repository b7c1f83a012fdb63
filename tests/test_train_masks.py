"""`flask oiap train --kind object_mask`: a mask net trained on the hand-drawn person masks of the training
photos (train split), measured on the testing photos (test split), and the promotion gate by mask IoU."""

import json

import numpy as np
import pytest

from app.annotations import masks
from app.annotations.rows import annotation_row, insert_annotations
from app.db import immediate
from app.imports.folder import register_image_file
from app.models.registry import active_model, get_model
from app.sets.queries import create_set
from tests.person_masks import PERSON, photos


@pytest.fixture
def mask_db(db):
    """The training photos' person masks as human rows on the train split, the testing photos' on test."""
    with immediate(db):
        rows = []
        for file, split in (("training", "train"), ("testing", "test")):
            gt = create_set(db, f"human-object_mask-{split}", "object_mask", "human")
            for p in photos(file):
                image_id, _ = register_image_file(db, p.path, split)
                rows += [
                    annotation_row(gt, image_id, "object_mask", label=PERSON, mask=m, box=masks.bbox(m))
                    for m in p.masks
                ]
        insert_annotations(db, rows)
    db.conn.commit()
    return db


def box_iou_baseline() -> float:
    """Mean IoU of each testing mask with its filled box: what a mask model must beat to be worth anything."""
    ious = []
    for p in photos("testing"):
        for m in p.masks:
            full = masks.decode(m)
            ys, xs = np.nonzero(full)
            box = np.zeros_like(full)
            box[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = True
            ious.append(full.sum() / box.sum())
    return float(np.mean(ious))


@pytest.mark.slow
def test_train_evaluate_and_promote_a_mask_net(app, mask_db, runner):
    db = mask_db
    r = runner.invoke(args=["oiap", "train", "--kind", "object_mask", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    model = get_model(db, out["model_id"])
    p = model["params"]
    builtin = active_model(db, "object_mask")
    assert (
        model["source"] == "trained"
        and model["status"] == "candidate"
        and model["parent_id"] == builtin["id"]
    )
    assert (
        p["runner"] == "mask:trained"
        and p["training"]["samples"] == 5
        and p["training"]["splits"] == ["train"]
    )
    curve = p["loss_curve"]
    assert len(curve) == 30 and curve[-1] < 0.8 * curve[0]
    assert p["onnx_parity"]["max_abs_diff"] < 1e-3

    r = runner.invoke(args=["oiap", "evaluate", str(out["model_id"]), "--json"])
    assert r.exit_code == 0, r.output
    trained = json.loads(r.output)
    # Held-out photos: the net's masks beat the filled boxes (0.638 on these five) by a margin.
    assert trained["masks"] == 5 and trained["mask_iou"] > box_iou_baseline() + 0.05, trained

    # The gate compares mean mask IoU with the active builtin (its selfie segmenter, 0.83 on these).
    r = runner.invoke(args=["oiap", "promote", str(out["model_id"]), "--json"])
    refused = r.exit_code != 0
    builtin_iou = get_model(db, builtin["id"])["metrics"]["test"]["mask_iou"]
    assert refused == (trained["mask_iou"] <= builtin_iou), r.output
    if refused:
        assert "mask_iou" in r.output and "does not beat the active model" in r.output
    assert (active_model(db, "object_mask")["id"] == out["model_id"]) == (not refused)

    # --from a trained mask net starts from its weights (the checkpoint beside its ONNX file).
    r = runner.invoke(
        args=[
            "oiap",
            "train",
            "--kind",
            "object_mask",
            "--from",
            str(out["model_id"]),
            "--epochs",
            "1",
            "--json",
        ]
    )
    assert r.exit_code == 0, r.output
    again = json.loads(r.output)
    assert again["warm_start_from"] == out["model_id"]
    assert get_model(db, again["model_id"])["parent_id"] == out["model_id"]


def test_train_object_mask_without_masks_names_what_is_missing(app, db, runner):
    r = runner.invoke(args=["oiap", "train", "--kind", "object_mask"])
    assert r.exit_code != 0 and "no object_mask training rows in the train split" in r.output


class GivenMasks:
    """A prior that answers each box with a given mask (the hand-drawn one): isolates the crop's geometry."""

    def __init__(self, given):
        self.given = given

    def predict_many(self, rgb, boxes_px, labels=None):
        """The given masks, one per box."""
        return self.given[: len(boxes_px)]


def test_an_untrained_net_gives_back_its_prior_through_the_crop(tmp_path):
    """The crop, the net's 96 x 96 logits and the way back onto the image keep the prior's mask: the untrained
    net (its correction starts at zero) answers the prior, so training starts from the builtin."""
    import torch

    from app.annotators.mask_net import INPUT_SIZE, TrainedMasks
    from app.images.decode import load_rgb
    from app.training.masks import MaskNet
    from app.training.onnx_export import export_checked

    torch.manual_seed(0)
    net = MaskNet()
    parity = export_checked(net, (2, 4, INPUT_SIZE, INPUT_SIZE), tmp_path / "m.onnx", ["logits"], atol=1e-4)
    assert parity["max_abs_diff"] < 1e-4
    for p in photos("testing"):
        rgb = load_rgb(p.path)
        h, w = rgb.shape[:2]
        given = [masks.decode(m) for m in p.masks]
        boxes = [np.array(b) * [w, h, w, h] for b in p.boxes()]
        got = TrainedMasks(tmp_path / "m.onnx", GivenMasks(given)).predict_many(
            rgb, boxes, [PERSON] * len(boxes)
        )
        for g, want in zip(got, given, strict=True):
            assert g.shape == (h, w) and (g & want).sum() / (g | want).sum() > 0.97
