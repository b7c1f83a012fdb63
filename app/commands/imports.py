"""Commands that bring images and annotations in: import-openimages, import-openimages-masks, import-dir, demo."""

import click
from flask import current_app

from ..cli import echo_json, fail_on_domain_error, oiap_cli
from ..db import get_db
from ..images.layout import SPLITS


def _note(message: str) -> None:
    # Notes go to stderr, so `--json` output on stdout stays parseable.
    click.echo(message, err=True)


@oiap_cli.command("import-openimages")
@click.option(
    "--meta-dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder with Open Images' CSVs (image metadata, class descriptions, *-annotations-bbox.csv).",
)
@click.option(
    "--split", "splits", multiple=True, type=click.Choice(SPLITS), help="Split(s) to import; default all."
)
@click.option("--classes", default=None, help="Comma-separated class MIDs; default /m/0dzct (Human face).")
@click.option(
    "--limit", type=int, default=None, help="At most N images per split (the first N of each file)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@fail_on_domain_error
def import_openimages_command(meta_dir, splits, classes, limit, as_json):
    """Import Open Images metadata: images, and one import set per class with its boxes."""
    from ..imports.openimages import import_openimages

    summary = import_openimages(
        get_db(), meta_dir, splits=splits or None, classes=classes, limit=limit, echo=_note
    )
    if as_json:
        echo_json(summary)
        return
    click.echo(f"images: {summary['images_added']} added, {summary['images_total']} in the store")
    for name, r in summary["boxes"].items():
        click.echo(
            f"{name}: {r['rows']} rows read in {r['seconds']} s ({r['rows_per_s']} rows/s), "
            f"{r['boxes']} boxes of the classes, {r['added']} added"
        )
    for name, set_id in summary["sets"].items():
        click.echo(f"set {name} (id {set_id})")
    if summary["errors"]:
        click.echo(
            f"{summary['errors']} malformed row(s) skipped (all in run {summary['run_id']}'s run_errors):"
        )
        for line in summary["error_samples"]:
            click.echo(f"  {line}")


@oiap_cli.command("import-openimages-masks")
@click.option(
    "--meta-dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder with <split>-annotations-object-segmentation.csv (and the class descriptions, for set names).",
)
@click.option(
    "--masks-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder with the <split>-masks-<c>.zip files; default --meta-dir.",
)
@click.option(
    "--split", "splits", multiple=True, type=click.Choice(SPLITS), help="Split(s) to import; default all."
)
@click.option("--classes", default=None, help="Comma-separated class MIDs; default every class in the files.")
@click.option(
    "--limit", type=int, default=None, help="At most N masks per file (the first N of the wanted classes)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@fail_on_domain_error
def import_openimages_masks_command(meta_dir, masks_dir, splits, classes, limit, as_json):
    """Import Open Images' instance masks (CSV + mask zips) of images in the store, one object_mask set per class."""
    from ..imports.openimages_masks import import_openimages_masks

    summary = import_openimages_masks(
        get_db(),
        current_app.config,
        meta_dir,
        masks_dir=masks_dir,
        splits=splits or None,
        classes=classes,
        limit=limit,
        echo=_note,
    )
    if as_json:
        echo_json(summary)
        return
    for name, r in summary["files"].items():
        click.echo(
            f"{name}: {r['rows']} rows read in {r['seconds']} s, {r['added']} masks added, "
            f"{r['present']} already there, {r['no_image']} of images not in the store"
        )
    for name, set_id in summary["sets"].items():
        click.echo(f"set {name} (id {set_id})")
    if summary["errors"]:
        click.echo(f"{summary['errors']} bad row(s) skipped (all in run {summary['run_id']}'s run_errors):")
        for line in summary["error_samples"]:
            click.echo(f"  {line}")


@oiap_cli.command("import-dir")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--split", default="train", show_default=True, type=click.Choice(SPLITS))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@fail_on_domain_error
def import_dir_command(directory, split, as_json):
    """Register a folder of JPEG/PNG files (id from the content; unreadable files are skipped)."""
    from ..imports.folder import import_dir

    summary = import_dir(get_db(), directory, split, echo=_note)
    if as_json:
        echo_json(summary)
        return
    click.echo(
        f"{summary['files']} file(s): {summary['added']} added, {summary['existing']} already registered, "
        f"{len(summary['errors'])} unreadable"
    )


@oiap_cli.command("demo")
@click.option("--if-empty", is_flag=True, help="Do nothing when the store has images already.")
@fail_on_domain_error
def demo_command(if_empty):
    """Build the demo instance: ten real photos, their face boxes and 68-point landmarks."""
    from ..imports.demo import build_demo

    result = build_demo(get_db(), if_empty=if_empty)
    if result is None:
        click.echo("the store has images already; demo not loaded")
        return
    sets = ", ".join(f"{name} (+{n})" for name, n in result["sets"].items())
    click.echo(f"demo: {result['images']} images; sets {sets}")
    from ..bulk.local import annotate_demo

    run = annotate_demo(get_db(), current_app.config)
    if run:
        made = ", ".join(f"{st['name']} (+{st['annotations']})" for st in run["sets"].values())
        click.echo(f"demo: annotated by the builtin models (run {run['run_id']}): {made}")
