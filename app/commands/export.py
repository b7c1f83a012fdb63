"""`flask oiap export` and `flask oiap import-csv`: training data out, annotation CSVs in."""

import sys

import click
from flask import current_app

from ..cli import echo_json, fail_on_domain_error, oiap_cli
from ..db import get_db
from ..kinds import KINDS


def _split_list(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


@oiap_cli.command("export")
@click.option("--kind", required=True, type=click.Choice(list(KINDS)), help="Annotation kind.")
@click.option(
    "--format",
    "fmt",
    required=True,
    type=click.Choice(["csv", "coco", "dlib-xml", "yolo-pose", "yolo", "openimages", "original-csv"]),
    help=(
        "Output format (original-csv: the original project's face_bbox_/face_landmarks_ files; yolo and "
        "yolo-pose: YOLO labels, with keypoints for kinds with points). For object_box, coco has one "
        "category per class, yolo a classes.txt, and openimages writes <output>-classes.csv beside it."
    ),
)
@click.option(
    "--split",
    default="train",
    show_default=True,
    help="train, validation or both (train,validation); 'test' alone exports evaluation ground truth.",
)
@click.option("--sets", default=None, help="Only these sets (names or ids, comma-separated).")
@click.option("--no-unrated", is_flag=True, help="Leave out machine annotations nobody rated yet.")
@click.option(
    "--unrated-weight", default=0.5, show_default=True, type=float, help="Weight of unrated machine rows."
)
@click.option(
    "-o",
    "--output",
    required=True,
    help="File to write, '-' for stdout; for yolo and yolo-pose a folder (or a .zip file).",
)
@fail_on_domain_error
def export_command(kind, fmt, split, sets, no_unrated, unrated_weight, output):
    """Export merged training data (human + good + unrated machine rows) in a format."""
    from tqdm import tqdm

    from ..export import ImageInfo, count_candidates, select_rows, text_chunks, write_yolo_folder
    from ..export.files import class_names, yolo_zip_chunks
    from ..export.writers import CLASS_KINDS, YOLO_FORMATS, class_list_chunks

    db = get_db()
    splits = _split_list(split)
    rows = select_rows(
        db,
        kind,
        splits,
        sets=_split_list(sets) if sets else None,
        include_unrated=not no_unrated,
        unrated_weight=unrated_weight,
    )
    if splits == ("test",):
        click.echo("test split: exporting evaluation ground truth (human + good machine rows)", err=True)
    info = ImageInfo(current_app.config)
    to_stdout = output == "-"
    if not to_stdout:
        # An upper bound (the merge drops overridden rows), good enough for a progress bar.
        rows = tqdm(rows, total=count_candidates(db, kind, splits), unit="rows", desc=f"export {fmt}")
    n = 0
    labels: dict[str, None] = {}  # the classes met, in order
    names = class_names(db) if kind in CLASS_KINDS else None

    def counted(it):
        nonlocal n
        for r in it:
            n += 1
            if r.label is not None:
                labels[r.label] = None
            yield r

    if fmt in YOLO_FORMATS:
        if to_stdout or output.endswith(".zip"):
            out = sys.stdout.buffer if to_stdout else open(output, "wb")
            try:
                for chunk in yolo_zip_chunks(counted(rows), kind, info, names):
                    out.write(chunk)
            finally:
                if not to_stdout:
                    out.close()
        else:
            write_yolo_folder(counted(rows), kind, output, info, names)
    else:
        chunks = text_chunks(counted(rows), kind, fmt, info, names)  # a bad kind for the format fails here
        out = sys.stdout if to_stdout else open(output, "w", encoding="utf-8", newline="")
        try:
            for chunk in chunks:
                out.write(chunk)
        finally:
            if not to_stdout:
                out.close()
        if fmt == "openimages" and kind in CLASS_KINDS and not to_stdout:
            # Open Images ships its class list as a file of its own: so does this export.
            classes_file = (output[:-4] if output.endswith(".csv") else output) + "-classes.csv"
            with open(classes_file, "w", encoding="utf-8", newline="") as f:
                f.writelines(class_list_chunks(sorted(labels), names))
            click.echo(f"class list ({len(labels)} classes) written to {classes_file}", err=True)
    if info.not_openimages:
        click.echo(
            f"warning: {len(info.not_openimages)} image(s) left out, not Open Images images (imported "
            f"from a folder or the demo; e.g. {info.not_openimages[0]}); --format csv keeps them",
            err=True,
        )
    if info.missing:
        click.echo(
            f"warning: {len(info.missing)} image(s) skipped, size unknown and file not found "
            f"(e.g. {info.missing[0]})",
            err=True,
        )
    if not to_stdout:
        click.echo(f"exported {n} {kind} rows ({'+'.join(splits)}) as {fmt} to {output}", err=True)


@oiap_cli.command("import-csv")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--kind", required=True, type=click.Choice(list(KINDS)), help="Annotation kind.")
@click.option("--set", "set_name", required=True, help="Set to import into (created when missing).")
@click.option(
    "--source",
    type=click.Choice(["human", "model"]),
    default="human",
    show_default=True,
    help="human: trusted rows; model: machine rows to be rated (an 'import' set).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@fail_on_domain_error
def import_csv_command(file, kind, set_name, source, as_json):
    """Import an oiap training CSV or the original project's face_landmarks_/face_bbox_ CSVs."""
    from ..imports.csv import import_csv

    report = import_csv(get_db(), file, kind, set_name, source=source)
    if as_json:
        echo_json(report)
        return
    for e in report["errors"][:50]:
        click.echo(f"{file}:{e['line']}: {e['reason']}", err=True)
    if len(report["errors"]) > 50:
        click.echo(f"... and {len(report['errors']) - 50} more errors", err=True)
    click.echo(
        f"imported {report['imported']} rows into {set_name!r} ({report['format']} format); "
        f"{report['duplicates']} already there, {report['malformed']} malformed, "
        f"{report['unknown_images']} with unknown image ids"
    )
