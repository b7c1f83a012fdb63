"""One turn of the loop: train a candidate, evaluate it, promote it if it beats the active model, then
bulk-annotate with it the images no human labelled and those whose machine annotation was rated bad."""

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
) -> dict:
    """Train, evaluate and promote on the test split (PromotionRefused when not better: nothing is annotated),
    bulk-annotate with the new active model; returns each step's result."""
    from .bulk.local import bulk_annotate
    from .models.builtin import ensure_builtin_models
    from .training.trainer import train

    ensure_builtin_models(db)
    trained = train(db, config, kind, progress=progress, **(train_kw or {}))
    # promote() measures the candidate (and the active model) on the test split and stores it: that is
    # the evaluation, done once.
    promotion = promote(db, config, trained["model_id"], user_id=user_id, progress=progress)
    metrics = get_model(db, trained["model_id"])["metrics"]["test"]
    annotated = bulk_annotate(db, config, kind, workers=workers, progress=progress)
    trained.pop("loss_curve", None)
    return {"train": trained, "evaluate": metrics, "promotion": promotion, "annotate": annotated}
