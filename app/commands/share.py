"""`flask oiap push`, `fetch` and `download-images`: share through S3, fetch Open Images files."""

from contextlib import contextmanager

import click
from flask import current_app
from tqdm import tqdm

from ..cli import echo_json, fail_on_domain_error, oiap_cli
from ..db import get_db, immediate
from ..images.layout import SPLITS
from ..runs import add_run_errors, finish_run, start_run


def _store_errors(db, run_id: int, errors: list[dict]) -> None:
    # finish_run rolls back an open transaction of a failed run: commit the errors first.
    if errors:
        with immediate(db):
            add_run_errors(db, run_id, errors)


@contextmanager
def _run(command: str, params: dict, dry_run: bool):
    """Record the job in `runs` (a dry run is not a job); yields a list to append per-item errors to."""
    errors: list[dict] = []
    if dry_run:
        yield errors
        return
    db = get_db()
    run_id = start_run(db, command, params)
    try:
        yield errors
    except KeyboardInterrupt:
        finish_run(db, run_id, "interrupted", "interrupted")
        raise
    except Exception as e:
        _store_errors(db, run_id, errors)
        finish_run(db, run_id, "failed", str(e))
        raise
    _store_errors(db, run_id, errors)
    finish_run(db, run_id, "failed" if errors else "done", f"{len(errors)} items failed" if errors else None)


def _bar(desc: str) -> tqdm:
    return tqdm(desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=False)


def _echo_items(report: dict, moved_key: str, verb: str) -> None:
    prefix = "would " if report["dry_run"] else ""
    for item in report[moved_key]:
        click.echo(
            f"{prefix}{verb} {item['what']} {item['name']}  {item['sha256'][:12]}  {item['size']} B  {item['key']}"
            + (f"  (replaces {item['replaces'][:12]} in the manifest)" if item.get("replaces") else "")
        )
    for item in report["skipped"]:
        click.echo(f"skip {item['what']} {item['name']}: {item['reason']}")


def _choose(models: bool, annotations: bool) -> tuple[bool, bool]:
    # Neither flag means both.
    return (True, True) if not (models or annotations) else (models, annotations)


@oiap_cli.command("push")
@click.option("--models", is_flag=True, help="Push models (default: models and annotation sets).")
@click.option("--annotations", is_flag=True, help="Push annotation sets.")
@click.option("--sets", "set_names", default=None, help="Only these sets: NAME,NAME,...")
@click.option("--dry-run", is_flag=True, help="List what would be uploaded; upload nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@fail_on_domain_error
def push_command(models, annotations, set_names, dry_run, as_json):
    """Upload models and annotation sets the bucket lacks, and the manifest (OIAP_S3_BUCKET)."""
    from ..share.s3 import configured_bucket, instance_name, push

    models, annotations = _choose(models, annotations or bool(set_names))
    names = [n.strip() for n in set_names.split(",") if n.strip()] if set_names else None
    params = {"models": models, "annotations": annotations, "sets": names}
    with _run("push", params, dry_run), _bar("push") as bar:
        report = push(
            get_db(),
            configured_bucket(current_app.config, current_app.extensions),
            models=models,
            annotations=annotations,
            sets=names,
            dry_run=dry_run,
            cache_dir=current_app.config["CACHE_DIR"],
            progress=bar.update,
            instance=instance_name(current_app.config, current_app.instance_path),
        )
    if as_json:
        echo_json(report)
        return
    _echo_items(report, "uploaded", "upload")
    click.echo(
        f"{report['bucket']}: {len(report['uploaded'])} {'to upload' if dry_run else 'uploaded'}, "
        f"{len(report['skipped'])} skipped, manifest {report['manifest']}"
    )


@oiap_cli.command("fetch")
@click.option("--models", is_flag=True, help="Fetch models (default: models and annotation sets).")
@click.option("--annotations", is_flag=True, help="Fetch annotation sets.")
@click.option("--dry-run", is_flag=True, help="List what would be downloaded; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@fail_on_domain_error
def fetch_command(models, annotations, dry_run, as_json):
    """Download the models and sets this store lacks from the bucket, verify their hashes, import them."""
    from ..errors import StorageError
    from ..share.s3 import configured_bucket, fetch

    models, annotations = _choose(models, annotations)
    with (
        _run("fetch", {"models": models, "annotations": annotations}, dry_run) as errors,
        _bar("fetch") as bar,
    ):
        report = fetch(
            get_db(),
            configured_bucket(current_app.config, current_app.extensions),
            models=models,
            annotations=annotations,
            dry_run=dry_run,
            models_dir=current_app.config["MODELS_DIR"],
            cache_dir=current_app.config["CACHE_DIR"],
            progress=bar.update,
        )
        errors.extend({"source": r["key"], "reason": r["reason"]} for r in report["refused"])
    if as_json:
        echo_json(report)
    else:
        _echo_items(report, "fetched", "fetch")
        click.echo(
            f"{report['bucket']}: {len(report['fetched'])} {'to fetch' if dry_run else 'fetched'}, "
            f"{len(report['skipped'])} skipped, {len(report['refused'])} refused"
        )
    if report["refused"]:
        raise StorageError("; ".join(f"{r['what']} {r['name']}: {r['reason']}" for r in report["refused"]))


@oiap_cli.command("download-images")
@click.option("--split", required=True, type=click.Choice(SPLITS))
@click.option("--prefix", default=None, help="Only ids starting with these hex characters (0..f).")
@click.option(
    "--ids-file", type=click.Path(exists=True, dir_okay=False), help="ImageIDs, one a line (or split/id)."
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most N images.")
@click.option("--workers", type=click.IntRange(min=1, max=64), default=8, show_default=True)
@click.option("--dry-run", is_flag=True, help="List what would be downloaded; download nothing.")
@click.option(
    "--signed",
    is_flag=True,
    help="Sign requests with your AWS credentials (as push/fetch), for a private bucket.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@fail_on_domain_error
def download_images_command(split, prefix, ids_file, limit, workers, dry_run, signed, as_json):
    """Download Open Images files of a split from the public bucket into OPEN_IMAGES_DIR (resumable)."""
    from ..errors import StorageError
    from ..images.download import download_images, ids_to_download

    ids = ids_to_download(get_db(), split, prefix=prefix, ids_file=ids_file, limit=limit)
    config = current_app.config
    params = {"split": split, "prefix": prefix, "ids_file": ids_file, "limit": limit, "images": len(ids)}
    with (
        _run("download-images", params, dry_run) as errors,
        tqdm(desc=f"{split} images", unit="B", unit_scale=True, unit_divisor=1024, disable=dry_run) as bar,
    ):
        report = download_images(
            config, split, ids, dry_run=dry_run, workers=workers, progress=bar, signed=signed
        )
        errors.extend({"image_id": r["image_id"], "reason": r["error"]} for r in report.get("failures", []))
    if as_json:
        echo_json(report)
    elif dry_run:
        for item in report["would_download"]:
            click.echo(f"would download {item['key']} -> {item['dest']}")
        click.echo(f"{len(report['would_download'])} to download, {report['present']} present")
    else:
        for err in report["errors"]:
            click.echo(f"  {err}", err=True)
        click.echo(
            f"{split}: {report['downloaded']} downloaded ({report['bytes']} B, {report['resumed']} resumed), "
            f"{report['present']} present, {report['missing']} missing, {report['failed']} failed"
        )
    if not dry_run and report["failed"]:
        raise StorageError(f"{report['failed']} downloads failed; run the command again to resume them")
