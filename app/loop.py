"""One turn of the loop: train a candidate, evaluate it, promote it if it beats the active model, then
bulk-annotate with it the images no human labelled and those whose machine annotation was rated bad
(object_mask: inside the boxes of the set named by boxes_from, as `bulk-annotate --boxes-from`)."""

from collections.abc import Mapping

from sqlite_utils import Database

from .models.evaluation import promote
from .models.registry import get_model


def run_loop(
    db: Database,
    config: Mapping,
    kind: str,
    *,
    train_kw: dict | None = None,
    user_id: int | None = None,
    workers: int = 2,
    progress: bool = False,
    boxes_from: str | None = None,
) -> dict:
    """Train, evaluate and promote on the test split (PromotionRefused when not better: nothing is annotated),
    bulk-annotate with the new active model; returns each step's result. boxes_from: the box set the
    bulk step annotates inside (object_mask needs one; face_landmarks68 may take a face_box set)."""
    from .bulk.local import boxes_set_id, bulk_annotate
    from .models.builtin import ensure_builtin_models
    from .training.trainer import train

    # Checked first: a missing or wrong box set would otherwise fail only after the training and the
    # promotion, leaving a new active model and nothing annotated.
    boxes_set_id(db, kind, boxes_from)
    ensure_builtin_models(db)
    trained = train(db, config, kind, progress=progress, **(train_kw or {}))
    # promote() measures the candidate (and the active model) on the test split and stores it: that is
    # the evaluation, done once.
    promotion = promote(db, config, trained["model_id"], user_id=user_id, progress=progress)
    metrics = get_model(db, trained["model_id"])["metrics"]["test"]
    annotated = bulk_annotate(db, config, kind, workers=workers, progress=progress, boxes_from=boxes_from)
    trained.pop("loss_curve", None)
    return {"train": trained, "evaluate": metrics, "promotion": promotion, "annotate": annotated}
