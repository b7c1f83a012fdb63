"""`flask oiap bulk-annotate`: the active models over the data set (see app/bulk/local.py)."""

import click
from flask import current_app

from ..bulk.engine_choice import CHOICES as ENGINES
from ..bulk.engine_choice import PROCESS_FROM_IMAGES
from ..cli import echo_json, fail_on_domain_error, oiap_cli
from ..db import get_db
from ..errors import Interrupted
from ..images.layout import SPLITS


@oiap_cli.command("bulk-annotate")
@click.option(
    "--kind",
    type=click.Choice(["face_box", "face_landmarks5", "face_landmarks68", "object_box", "object_mask"]),
    default="face_box",
    show_default=True,
)
@click.option("--split", type=click.Choice(SPLITS), default=None, help="Only this split.")
@click.option(
    "--prefix",
    default=None,
    help="Only image ids starting with these hex characters (3f), or a range of prefixes (0..7).",
)
@click.option("--limit", type=int, default=None, help="At most N images.")
@click.option(
    "--images-file", type=click.Path(dir_okay=False, exists=True), help="Only the ids listed, one a line."
)
@click.option(
    "--boxes-from",
    default=None,
    help="face_landmarks68, object_mask: on the boxes of this set (e.g. an import).",
)
@click.option(
    "--classes",
    default=None,
    help="object_box, object_mask: only these Open Images classes, MIDs separated by commas (/m/01g317,/m/0k4j).",
)
@click.option(
    "--model",
    default=None,
    help="object_box, object_mask: this model (id or name) instead of the active one.",
)
@click.option("--resume", type=int, default=None, help="Finish an interrupted run (its options are reused).")
@click.option("--batch", type=int, default=8, show_default=True, help="Images per inference batch and write.")
@click.option(
    "--workers",
    type=int,
    default=2,
    show_default=True,
    help="Threads decoding and annotating (process: processes; ray: actors).",
)
@click.option(
    "--max-side",
    type=int,
    default=1024,
    show_default=True,
    help="JPEGs longer than this are decoded reduced (1/2, 1/4, 1/8), never below it; 0: full size.",
)
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="auto",
    show_default=True,
    help=f"auto: process from {PROCESS_FROM_IMAGES} images to do on more than one CPU (and --workers 2 or more), else local; "
    "local: threads here; process: worker processes here; ray: Ray Data actors "
    "(requirements-cluster.txt; README, Running on a Ray cluster).",
)
@click.option(
    "--address",
    default=None,
    help="Ray: 'auto' or HEAD_IP:6379, run on a node of the cluster (default: a local Ray instance); "
    "ray:// client addresses are not supported.",
)
@click.option("--actor-cpus", type=float, default=1.0, show_default=True, help="Ray: CPUs per actor.")
@click.option("--chunk", type=int, default=20000, show_default=True, help="Ray: images per Ray dataset.")
@click.option(
    "--s3-images", default=None, help="Ray: read Open Images files from s3://BUCKET[/PREFIX]/SPLIT/ID.jpg."
)
@click.option(
    "--min-face-size",
    type=int,
    default=None,
    help="MTCNN: the smallest face in pixels (default: the model's, 20); 40 finds what dlib's HOG detector "
    "finds at upsample 1, at less than half the CPU.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@fail_on_domain_error
def bulk_annotate_command(
    kind,
    split,
    prefix,
    limit,
    images_file,
    boxes_from,
    classes,
    model,
    resume,
    batch,
    workers,
    max_side,
    engine,
    address,
    actor_cpus,
    chunk,
    s3_images,
    min_face_size,
    as_json,
):
    """Annotate the images no human labelled (and those rated bad) with the active models, into new sets."""
    from ..bulk.local import bulk_annotate
    from ..classes import parse_classes

    try:
        s = bulk_annotate(
            get_db(),
            current_app.config,
            kind,
            split=split,
            prefix=prefix,
            limit=limit,
            images_file=images_file,
            boxes_from=boxes_from,
            classes=parse_classes(classes),
            model=model,
            resume=resume,
            batch=batch,
            workers=workers,
            max_side=max_side or None,
            progress=not as_json,
            engine=engine,
            engine_options={
                "address": address,
                "actor_cpus": actor_cpus,
                "chunk": chunk,
                "s3_images": s3_images,
            }
            if engine == "ray"
            else None,
            min_face_size=min_face_size,
        )
    except Interrupted as e:
        raise click.ClickException(
            f"interrupted; `flask oiap bulk-annotate --resume {e.run_id}` continues"
        ) from None
    except KeyboardInterrupt:
        # Before the run was recorded (loading the models): nothing to resume.
        raise click.ClickException("interrupted before the run started; nothing was written") from None
    _echo_run(s, as_json)


def _echo_run(s: dict, as_json: bool) -> None:
    """A bulk run's summary: JSON, or its sets and a few of its errors."""
    if as_json:
        echo_json(s)
        return
    click.echo(
        f"run {s['run_id']} {s['status']}: {s['images']}/{s['total']} images, {s['images_per_s']} images/s"
    )
    for st in s["sets"].values():
        click.echo(f"  set {st['id']} {st['name']} ({st['kind']}): {st['annotations']} annotations")
    if s["errors"]:
        by_reason = s.get("errors_by_reason")
        reasons = f" ({', '.join(f'{k} {v}' for k, v in sorted(by_reason.items()))})" if by_reason else ""
        click.echo(f"  {s['errors']} image(s) skipped{reasons}, listed in run_errors; e.g.:")
        for line in s["error_samples"][:5]:
            click.echo(f"    {line}")


@oiap_cli.command("bulk-runs")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def bulk_runs_command(as_json):
    """List bulk-annotate runs (newest first) with status, progress and errors; resume one with --resume ID."""
    from ..bulk.local import list_runs

    runs = list_runs(get_db())
    if as_json:
        echo_json(runs)
        return
    click.echo(f"{'id':>4}  {'status':<12} {'kind':<18} {'progress':>13} {'errors':>7}  started")
    for r in runs:
        click.echo(
            f"{r['id']:>4}  {r['status']:<12} {r['kind'] or '':<18} {r['progress']:>6}/{r['total'] or 0:<6} "
            f"{r['errors']:>7}  {r['started_at']}"
        )
