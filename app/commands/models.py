"""`flask oiap models list | add | activate`: the model registry from the command line."""

import click
from flask import current_app
from flask.cli import AppGroup

from ..cli import echo_json, fail_on_domain_error, oiap_cli
from ..db import get_db
from ..kinds import KINDS

models_cli = AppGroup("models", help="Models: list, add a file, activate one per kind.")
oiap_cli.add_command(models_cli)


@models_cli.command("list")
@click.option("--kind", type=click.Choice(list(KINDS)), default=None, help="Only models of this kind.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@fail_on_domain_error
def models_list(kind, as_json):
    """List models (newest first) with kind, status, source and hash."""
    from ..models.builtin import ensure_builtin_models
    from ..models.registry import list_models

    db = get_db()
    ensure_builtin_models(db)
    models = list_models(db, kind)
    if as_json:
        echo_json(models)
        return
    click.echo(f"{'id':>4}  {'kind':<18} {'name':<16} {'status':<9} {'source':<8} {'sha256':<12}  path")
    for m in models:
        click.echo(
            f"{m['id']:>4}  {m['kind']:<18} {m['name']:<16} {m['status']:<9} {m['source']:<8} "
            f"{m['sha256'][:12]}  {m['path']}"
        )


@models_cli.command("add")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--kind", required=True, type=click.Choice(list(KINDS)), help="What the model annotates.")
@click.option("--name", default=None, help="A name (default: the file's stem).")
@click.option(
    "--runner",
    default=None,
    help="Code that runs it: 'mtcnn' is not possible for one file; 'landmarks68:facemesh68' for a face-mesh ONNX; "
    "'landmarks68:dlib68' for dlib's shape_predictor (the default for a .dat file); "
    "'mask:sam' for a SAM-family encoder with --decoder.",
)
@click.option("--licence", default=None, help="Licence of the weights.")
@click.option("--origin", default=None, help="Where the file comes from.")
@click.option("--activate", "then_activate", is_flag=True, help="Make it the active model of its kind.")
@click.option(
    "--decoder",
    type=click.Path(dir_okay=False),
    default=None,
    help="object_mask with --runner mask:sam: the pair's mask decoder ONNX (PATH is the image encoder).",
)
@fail_on_domain_error
def models_add(path, kind, name, runner, licence, origin, then_activate, decoder):
    """Register a model file (copied into the instance's models folder by its sha256).

    A dlib shape_predictor (.dat, e.g. Debian's /usr/share/dlib/shape_predictor_68_face_landmarks.dat)
    is read and checked first, runs without dlib, and is recorded with its licence caveat, printed here.
    """
    from ..annotators.checks import check_model_file
    from ..models.dlib68 import add_dlib_predictor, is_dlib_predictor
    from ..models.registry import activate_model, get_model, register_model

    db = get_db()
    models_dir = current_app.config["MODELS_DIR"]
    if is_dlib_predictor(path, runner):
        # Not ONNX: read whole by our reader (a truncated or corrupt file is refused, named) instead.
        model_id = add_dlib_predictor(db, path, kind, models_dir, name=name, origin=origin)
        c = get_model(db, model_id)["params"]["cascade"]
        signature = (
            f"dlib shape_predictor: {c['levels']} levels of {c['trees_per_level']} trees of depth {c['depth']}, "
            f"{c['feature_pixels']} feature pixels a level; runner landmarks68:dlib68"
        )
        runner = "landmarks68:dlib68"
    else:
        # Loaded (and run once by its runner) now, so a file that cannot run is refused here, not in a try.
        signature = check_model_file(path, kind, runner, decoder=decoder)
        params = {"runner": runner} if runner else {}
        if decoder is not None:
            from ..models.mask_models import decoder_params

            params["files"] = decoder_params(decoder, models_dir)
        model_id = register_model(
            db,
            path,
            kind,
            name=name,
            source="added",
            models_dir=models_dir,
            params=params,
            licence=licence,
            origin=origin,
        )
    db.conn.commit()
    if then_activate:
        activate_model(db, model_id)
    m = get_model(db, model_id)
    click.echo(f"model {m['id']}: {m['kind']} {m['name']} sha256 {m['sha256'][:12]} ({m['status']})")
    click.echo(f"  {signature}")
    if m["params"].get("licence_caveat"):
        click.echo(f"Licence: {m['params']['licence_caveat']}")
    if not runner:
        click.echo("  no --runner: it loads, but nothing runs it until it is added again with one")


@models_cli.command("activate")
@click.argument("model_id", type=int)
@fail_on_domain_error
def models_activate(model_id):
    """Make a model the active one of its kind (its file is verified by hash first)."""
    from ..models.registry import activate_model

    m = activate_model(get_db(), model_id)
    click.echo(f"model {m['id']} ({m['name']}) is the active {m['kind']} model")
