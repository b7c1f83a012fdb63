"""`flask oiap train | evaluate | promote | loop`: the training loop from the command line."""

import click
from flask import current_app

from ..cli import echo_json, fail_on_domain_error, oiap_cli
from ..db import get_db
from ..images.layout import SPLITS

TRAIN_KINDS = ["face_landmarks68", "face_box", "object_box", "object_mask"]


def _train_options(fn):
    for opt in reversed(
        [
            click.option("--kind", required=True, type=click.Choice(TRAIN_KINDS), help="What to train."),
            click.option("--epochs", type=int, default=None, help="Passes over the training data."),
            click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True),
            click.option("--seed", type=int, default=0, show_default=True),
            click.option("--batch-size", type=int, default=None, help="Samples per step."),
            click.option("--lr", type=float, default=None, help="Peak learning rate."),
            click.option(
                "--exclude-unrated", is_flag=True, help="Train only on human and good-rated annotations."
            ),
            click.option(
                "--unrated-weight",
                type=click.FloatRange(0, 1),
                default=0.5,
                show_default=True,
                help="Loss weight of unrated machine annotations (human and good-rated ones weigh 1).",
            ),
            click.option(
                "--arch",
                type=click.Choice(["meshhead68", "crop68"]),
                default="meshhead68",
                show_default=True,
                help="face_landmarks68 only: a head fitted on the default mesh, or the small CNN from scratch.",
            ),
            click.option(
                "--from",
                "from_model",
                type=int,
                default=None,
                help="Parent model id (default: the active one).",
            ),
        ]
    ):
        fn = opt(fn)
    return fn


def _train_kw(
    epochs, from_model, device, seed, batch_size, lr, exclude_unrated, unrated_weight, arch
) -> dict:
    """The trainer's keywords from the options of _train_options (train and loop both pass them on)."""
    return {
        "epochs": epochs,
        "from_model": from_model,
        "device": device,
        "seed": seed,
        "batch_size": batch_size,
        "lr": lr,
        "include_unrated": not exclude_unrated,
        "unrated_weight": unrated_weight,
        "arch": arch,
    }


def _train(kind, train_kw: dict, progress=True) -> dict:
    from ..models.builtin import ensure_builtin_models
    from ..training.trainer import train

    db = get_db()
    ensure_builtin_models(db)
    if kind == "object_mask":
        from ..models.mask_models import ensure_mask_models

        ensure_mask_models(db)  # the builtin mask row is the new model's parent and the one to beat
    return train(db, current_app.config, kind, **train_kw, progress=progress)


@oiap_cli.command("train")
@_train_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@fail_on_domain_error
def train_command(kind, as_json, **train_options):
    """Train a candidate model from the good labels of the train split and register it."""
    result = _train(kind, _train_kw(**train_options), not as_json)
    if as_json:
        echo_json(result)
        return
    curve = result.get("loss_curve") or []
    fit = result.get("nme_train")
    if curve:
        click.echo(
            f"model {result['model_id']} (candidate): {result['samples']} training samples, "
            f"loss {curve[0]:.4f} -> {curve[-1]:.4f}; run {result['run_id']}"
        )
    elif fit:
        cv = result.get("cross_validation")
        held = f", held-out NME {cv['default_nme']:.4f} -> {cv['nme']:.4f}" if cv else ""
        click.echo(
            f"model {result['model_id']} (candidate): mesh head on {result['samples']} training faces "
            f"(K {result['head']['k']}, lambda {result['head']['lambda']}), training NME "
            f"{fit['default']:.4f} -> {fit['fitted']:.4f}{held}; run {result['run_id']}"
        )
    else:
        click.echo(f"model {result['model_id']} (candidate); run {result['run_id']}")
    click.echo(f"next: flask oiap evaluate {result['model_id']} && flask oiap promote {result['model_id']}")


def _echo_metrics(model_id: int, split: str, m: dict) -> None:
    if "mask_iou" in m:
        click.echo(
            f"model {model_id} on {split}: mask IoU {m['mask_iou']:.4f}, mask AP@0.5 {m['mask_ap50']:.4f}, "
            f"AP@[.5:.95] {m['mask_ap']:.4f} over {m['masks']} masks ({m['images']} images, ground-truth boxes)"
        )
        return
    if "nme" in m:
        click.echo(
            f"model {model_id} on {split}: NME {m['nme']:.4f} over {m['faces']} faces (ground-truth boxes), "
            f"failure rate {m['failure_rate_0.08']:.3f} @0.08, {m['failure_rate_0.10']:.3f} @0.10, "
            f"CED AUC@0.10 {m['ced_auc_0.10']:.3f}"
        )
        for region, v in (m.get("regions") or {}).items():
            click.echo(f"  {region:<6} {v:.4f}")
    elif "map" in m:
        from ..export.files import class_names
        from ..models.eval_objects import echo_lines

        for line in echo_lines(model_id, split, m, class_names(get_db())):
            click.echo(line)
    else:
        click.echo(
            f"model {model_id} on {split}: AP@0.5 {m['ap']:.4f}, recall {m['recall']:.4f} "
            f"({m['true_positives']} of {m['ground_truth']} faces, {m['false_positives']} false positives, "
            f"{m['images']} images)"
        )


@oiap_cli.command("evaluate")
@click.argument("model_id", type=int)
@click.option("--split", type=click.Choice(SPLITS), default="test", show_default=True)
@click.option(
    "--classes",
    default=None,
    help="object_box: score only these class MIDs (comma-separated); printed, not stored on the model.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@fail_on_domain_error
def evaluate_command(model_id, split, classes, as_json):
    """Measure a model on a split's ground truth (human + good machine labels); stored on the model."""
    from ..classes import parse_classes
    from ..models.builtin import ensure_builtin_models
    from ..models.evaluation import evaluate
    from ..models.mask_models import ensure_mask_models

    db = get_db()
    ensure_builtin_models(db)
    ensure_mask_models(db)
    wanted = parse_classes(classes)
    m = evaluate(db, current_app.config, model_id, split, progress=not as_json, classes=wanted)
    if as_json:
        echo_json(m)
        return
    _echo_metrics(model_id, split, m)
    if wanted:
        click.echo(f"(only {len(wanted)} class(es) asked for: not stored on the model)")


def _echo_promotion(r: dict) -> None:
    if r.get("already_active"):
        click.echo(f"model {r['model_id']} is already active")
    elif r["active_id"] is None:
        click.echo(f"model {r['model_id']} is now active (there was no active model)")
    else:
        verb = "forced active" if r["forced"] else "is now active"
        click.echo(
            f"model {r['model_id']} {verb}: {r['metric']} {r['candidate']:.4f} vs {r['active']:.4f} "
            f"(model {r['active_id']}, now retired) on {r['split']}"
        )


@oiap_cli.command("promote")
@click.argument("model_id", type=int)
@click.option("--force", is_flag=True, help="Activate even when it does not beat the active model (audited).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@fail_on_domain_error
def promote_command(model_id, force, as_json):
    """Make a model active only if it beats the active one on the test split (both measured now)."""
    from ..models.builtin import ensure_builtin_models
    from ..models.evaluation import PromotionRefused, promote

    db = get_db()
    ensure_builtin_models(db)
    try:
        r = promote(db, current_app.config, model_id, force=force, progress=not as_json)
    except PromotionRefused as e:
        if not as_json:
            raise
        # A script reading --json gets the figures and the reason, and still a non-zero exit.
        echo_json(e.outcome | {"message": str(e)})
        click.get_current_context().exit(1)
    if as_json:
        echo_json(r)
        return
    _echo_promotion(r)


@oiap_cli.command("loop")
@_train_options
@click.option("--workers", type=int, default=2, show_default=True, help="bulk-annotate worker threads.")
@click.option(
    "--boxes-from",
    default=None,
    help="The box set the bulk step annotates inside, as bulk-annotate --boxes-from: object_mask needs "
    "one (an object_box or face_box set: masks for its boxes); face_landmarks68 may take a face_box set "
    "instead of the active detector's boxes. Checked before training.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@fail_on_domain_error
def loop_command(kind, workers, boxes_from, as_json, **train_options):
    """Train, evaluate, promote if better, then bulk-annotate the unlabelled and the rated-bad images."""
    from ..loop import run_loop
    from ..models.evaluation import PromotionRefused

    try:
        out = run_loop(
            get_db(),
            current_app.config,
            kind,
            train_kw=_train_kw(**train_options),
            workers=workers,
            progress=not as_json,
            boxes_from=boxes_from,
        )
    except PromotionRefused as e:
        raise click.ClickException(f"{e}; nothing annotated") from None
    if as_json:
        echo_json(out)
        return
    _echo_metrics(out["train"]["model_id"], "test", out["evaluate"])
    _echo_promotion(out["promotion"])
    a = out["annotate"]
    click.echo(f"bulk-annotate run {a['run_id']}: {a['images']} images, sets {a['sets']}")
