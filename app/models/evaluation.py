"""Evaluate a model on a split's ground truth, and promote a model only when it beats the active one.

Ground truth: ground_truth(db, kind, split) from the merge rules (human annotations and good-rated
machine ones, human overrides applied). No torch: models run on onnxruntime, as in bulk-annotate.

- face_box: the detector runs on every image of the split that has at least one ground-truth box (an
  image nobody labelled says nothing about false positives); AP at IoU 0.5 and recall.
- face_landmarks68: the annotator runs on the ground-truth boxes (the box a landmark row carries, or
  its parent box), not on detections, so a detector's misses never mix into the landmark error.
  NME by the outer eye corners (36, 45), failure rate at 0.08 and 0.10, CED AUC to 0.10, region errors.
- object_box: Open Images' detection metric (models/eval_objects.py): AP@0.5 per class with group-of
  boxes and verified image-level labels, on the images with ground-truth boxes or verified labels;
  mAP over the classes with ground truth decides promotion.
- object_mask: the model runs on the ground-truth masks' boxes; mean mask IoU and mask AP@0.5
  (COCOeval, iouType='segm'), in app/models/eval_masks.py.

Results are stored on the model row: metrics[split] = {...}, with the CED curve points ("ced") for
plotting.
"""

from collections.abc import Mapping

import numpy as np
from sqlite_utils import Database
from tqdm import tqdm

from ..audit.events import log_event
from ..db import immediate, now
from ..errors import Conflict, InvalidInput, NotFound
from ..export.merge import ground_truth
from ..images.decode import BadImage, decode
from ..images.layout import image_path
from ..runs import finish_run, start_run
from .metrics import average_precision, ced_curve, landmark_metrics, nme
from .registry import activate_model, active_model, get_model

# What "better" means per kind: (metric, higher is better).
MAIN_METRIC = {
    "face_landmarks68": ("nme", False),
    "face_box": ("ap", True),
    "object_box": ("map", True),
    "object_mask": ("mask_iou", True),
}
CED_MAX = 0.2
CED_STEPS = 41


class PromotionRefused(Conflict):
    """The candidate does not beat the active model; the message says by how much, outcome holds the figures."""

    def __init__(self, message: str, outcome: dict | None = None):
        super().__init__(message)
        self.outcome = outcome or {}


def load_annotator(model: dict):
    """The annotator that runs a model row (its files verified by hash)."""
    from .builtin import load_annotator as load

    return load(model)


def _by_image(rows) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in rows:
        out.setdefault(r.image_id, []).append(r)
    return out


def gather_ground_truth(db: Database, kind: str, split: str) -> dict[str, list]:
    """The split's ground truth grouped by image: image id -> rows; InvalidInput when there is none."""
    if kind not in MAIN_METRIC:
        raise InvalidInput(f"evaluate does {', '.join(MAIN_METRIC)}, not {kind}")
    if kind == "object_box":
        from .eval_objects import gather_object_truth

        return gather_object_truth(db, split)
    gt = _by_image(ground_truth(db, kind, split))
    if not gt:
        raise InvalidInput(
            f"no {kind} ground truth on the {split} split (human annotations or machine ones rated good)"
        )
    return gt


def _image_row(rows) -> dict:
    r = rows[0]
    return {"id": r.image_id, "split": r.split, "path": r.path}


def _readable_images(db: Database, config: Mapping, gt: dict[str, list], bar, skipped: list[int]):
    """Yield (image_id, rows, Decoded) for each ground-truth image whose file reads; count the rest.

    The pixels come upright (Open Images' rotation, else EXIF), as bulk-annotate gives them to the
    models; Decoded.orientation maps what the model finds back onto the file's grid.
    """
    for image_id, rows in gt.items():
        bar.update(1)
        rotation = db.execute("SELECT rotation FROM images WHERE id = ?", [image_id]).fetchone()
        try:
            d = decode(image_path(config, _image_row(rows)), None, rotation[0] if rotation else None)
        except (NotFound, InvalidInput, BadImage, OSError):
            skipped[0] += len(rows)
            continue
        yield image_id, rows, d
    bar.close()


def measure(
    db: Database,
    config: Mapping,
    model: dict,
    gt: dict[str, list],
    progress: bool = False,
    classes: list[str] | None = None,
    bar=None,
) -> dict:
    """Run a model over ground truth (from gather_ground_truth) and compute its metrics; stores nothing.
    classes: object_box only, the class MIDs to score (None: every class with ground truth).
    bar: anything with tqdm's update(n) and close() (the web's background job records progress with it)."""
    if bar is None:
        bar = tqdm(total=len(gt), desc=f"evaluate model {model['id']}", unit="img", disable=not progress)
    if model["kind"] == "object_mask":
        # Masks from the ground-truth boxes: mean mask IoU and COCO's mask AP (app/models/eval_masks.py).
        from .eval_masks import measure_masks

        return measure_masks(
            db, config, model, gt, bar, lambda g, b, skipped: _readable_images(db, config, g, b, skipped)
        )
    annotator = load_annotator(model)
    if model["kind"] == "object_box":
        from .eval_objects import measure_objects

        return measure_objects(config, annotator, gt, classes=classes, progress=progress, bar=bar)
    skipped = [0]
    images = _readable_images(db, config, gt, bar, skipped)
    if model["kind"] == "face_landmarks68":
        preds, truths = [], []
        for _image_id, rows, d in images:
            w, h, o = d.width, d.height, d.orientation
            faces = [r for r in rows if r.points and len(r.points) == 68]
            boxes = []
            for r in faces:
                pts = np.array([p[:2] for p in r.points]) * [w, h]
                b = r.box
                boxes.append(np.array(b) * [w, h, w, h] if b is not None else np.r_[pts.min(0), pts.max(0)])
                truths.append(pts)
            if not o.identity:  # boxes onto the upright pixels the model sees
                boxes = [d.box_to_decoded(b / [w, h, w, h]) for b in boxes]
            out = [np.asarray(p) for p in annotator.predict_many(d.rgb, boxes)] if boxes else []
            preds += out if o.identity else [o.to_file(p, w, h) for p in out]
        if not truths:
            raise InvalidInput("no ground-truth face could be read (missing image files?)")
        pred, truth = np.stack(preds), np.stack(truths)
        result = landmark_metrics(pred, truth)
        thresholds, fraction = ced_curve(nme(pred, truth), CED_MAX, CED_STEPS)
        result["ced"] = {"thresholds": thresholds.round(4).tolist(), "fraction": fraction.round(4).tolist()}
    else:
        detections, truth_boxes = [], {}
        for image_id, rows, d in images:
            w, h = d.width, d.height
            truth_boxes[image_id] = [r.box for r in rows if r.box is not None]
            for box, score, _pts in annotator.detect(d.rgb):
                if d.orientation.identity:
                    nb = (box[0] / w, box[1] / h, box[2] / w, box[3] / h)
                else:
                    nb = d.normalise_box(box)
                detections.append((image_id, nb, score))
        if not truth_boxes:
            raise InvalidInput("no ground-truth image could be read (missing image files?)")
        result = average_precision(detections, truth_boxes, 0.5)
        result["images"] = len(truth_boxes)
    result["skipped"] = skipped[0]
    return result


def store_metrics(db: Database, model_id: int, split: str, result: dict) -> None:
    """Keep a split's metrics on the model row (other splits' stay)."""
    import json

    with immediate(db):
        model = get_model(db, model_id)
        metrics = model["metrics"] | {split: result | {"evaluated_at": now()}}
        db.execute("UPDATE models SET metrics = ? WHERE id = ?", [json.dumps(metrics), model_id])


def evaluate(
    db: Database,
    config: Mapping,
    model_id: int,
    split: str = "test",
    progress: bool = False,
    classes: list[str] | None = None,
) -> dict:
    """Evaluate a model on a split, store the result on its row (the job is a `runs` row), and return it.

    classes (object_box): score only these class MIDs; such a partial result is returned, not stored,
    so the row's metrics (what the pages and the promotion gate compare) always cover every class.
    """
    model = get_model(db, model_id)
    if classes is not None and model["kind"] != "object_box":
        raise InvalidInput(f"--classes is for object_box models; model {model_id} is {model['kind']}")
    gt = gather_ground_truth(db, model["kind"], split)
    params = {"model_id": model_id, "split": split} | ({"classes": classes} if classes else {})
    run_id = start_run(db, "evaluate", params, total=len(gt), model_id=model_id)
    try:
        result = measure(db, config, model, gt, progress, classes)
        if classes is None:
            store_metrics(db, model_id, split, result)
    except BaseException as e:
        finish_run(db, run_id, "failed", f"{type(e).__name__}: {e}")
        raise
    db.execute("UPDATE runs SET progress = total WHERE id = ?", [run_id])
    finish_run(db, run_id, "done")
    return result


def compare(kind: str, candidate: dict, active: dict) -> tuple[bool, float]:
    """(candidate is strictly better, how much better by the kind's main metric: positive = better)."""
    key, higher = MAIN_METRIC[kind]
    mine, theirs = candidate[key], active[key]
    # A metric that is missing or NaN (a diverged model) loses to any number.
    if mine is None or mine != mine:
        return False, float("-inf")
    if theirs is None or theirs != theirs:
        return True, float("inf")
    delta = mine - theirs
    gain = delta if higher else -delta
    return gain > 0, gain


def promote(
    db: Database,
    config: Mapping,
    model_id: int,
    *,
    force: bool = False,
    user_id: int | None = None,
    split: str = "test",
    progress: bool = False,
) -> dict:
    """Activate a model when it beats the active one on the split, both measured now on the same ground
    truth; PromotionRefused otherwise (unless force, which is audited)."""
    model = get_model(db, model_id)
    kind = model["kind"]
    if kind not in MAIN_METRIC:
        raise InvalidInput(f"promote does {', '.join(MAIN_METRIC)}, not {kind}")
    active = active_model(db, kind)
    key, _ = MAIN_METRIC[kind]
    if active is not None and active["id"] == model_id:
        return {"promoted": False, "already_active": True, "model_id": model_id}
    gt = gather_ground_truth(db, kind, split)
    mine = measure(db, config, model, gt, progress)
    store_metrics(db, model_id, split, mine)
    outcome = {"model_id": model_id, "metric": key, "split": split, "candidate": mine[key]}
    if active is not None:
        theirs = measure(db, config, active, gt, progress)
        store_metrics(db, active["id"], split, theirs)
        better, gain = compare(kind, mine, theirs)
        outcome |= {"active_id": active["id"], "active": theirs[key], "gain": gain, "better": better}
        if not better and not force:
            rel = abs(gain) / abs(theirs[key]) * 100 if theirs[key] else float("inf")
            # The metrics just stored are a change to the store: the refusal is audited too.
            with immediate(db):
                log_event(
                    db,
                    "promote_refused",
                    user_id=user_id,
                    target_type="model",
                    target_id=model_id,
                    before={"active": active["id"], key: theirs[key]},
                    after={key: mine[key], "split": split},
                )
            raise PromotionRefused(
                f"model {model_id} does not beat the active model {active['id']} on the {split} split: "
                f"{key} {mine[key]:.4f} vs {theirs[key]:.4f}, worse by {abs(gain):.4f} ({rel:.1f}%)"
                + (" (a tie is not better)" if gain == 0 else "")
                + "; --force activates it anyway (audited)",
                outcome | {"promoted": False, "refused": True},
            )
    else:
        outcome |= {"active_id": None, "better": True}
    activate_model(db, model_id, user_id)
    if force and not outcome["better"]:
        with immediate(db):
            log_event(
                db,
                "promote_forced",
                user_id=user_id,
                target_type="model",
                target_id=model_id,
                before={"active": outcome["active_id"], key: outcome.get("active")},
                after={"active": model_id, key: mine[key], "split": split},
            )
    return outcome | {"promoted": True, "forced": bool(force and not outcome["better"])}
