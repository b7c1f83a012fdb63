"""Open Images' human-verified image-level labels into `image_labels` (part of `import-openimages`).

Files, by the names Google publishes (v4 to v7), per split in --meta-dir:
`<split>-annotations-human-imagelabels-boxable.csv`, `oidv6-<split>-annotations-human-imagelabels.csv`,
`oidv7-<split>-annotations-human-imagelabels.csv` (v7 calls validation `val`), or
`<split>-annotations-human-imagelabels.csv`; columns ImageID,Source,LabelName,Confidence.

Decisions, as for boxes (imports/openimages.py):
- only labels of the classes asked for (--classes), and only on images in the store;
- streaming: a line is matched as bytes against the wanted MIDs before it is parsed, so the rows of
  other classes cost a substring test; rows go in by batches, each in one write transaction;
- idempotent: one row per image and class (a re-import changes nothing; a changed confidence or
  source replaces the stored one);
- a malformed row (wrong column count, bad ImageID, a Confidence other than 0 or 1) is reported
  with file and line, stored in run_errors, and skipped. Human-verified files hold only 0 and 1:
  a fraction is a machine label (the `*-machine-imagelabels` files), which says nothing verified.
"""

import time
from collections.abc import Iterable
from pathlib import Path

from sqlite_utils import Database

from ..db import immediate
from ..errors import InvalidInput
from ..images.labels import upsert_labels
from ..images.layout import IMAGE_ID_RE
from ..runs import set_progress
from .openimages_rows import header_index, split_line

BATCH = 20_000
COLUMNS = ("ImageID", "LabelName", "Confidence")


def label_files(split: str) -> tuple[str, ...]:
    """Names of a split's human-verified image-level label file, in order of preference."""
    short = "val" if split == "validation" else split
    return (
        f"{split}-annotations-human-imagelabels-boxable.csv",
        f"oidv7-{short}-annotations-human-imagelabels.csv",
        f"oidv6-{split}-annotations-human-imagelabels.csv",
        f"{split}-annotations-human-imagelabels.csv",
    )


def find_label_files(meta_dir: Path, splits: Iterable[str]) -> list[tuple[Path, str]]:
    """(path, split) of each split's label file that exists in meta_dir."""
    out = []
    for split in splits:
        for name in label_files(split):
            if (meta_dir / name).is_file():
                out.append((meta_dir / name, split))
                break
    return out


def import_labels(db: Database, path: Path, mids: Iterable[str], errors, run_id: int | None = None) -> dict:
    """Import one label file's rows of the wanted classes; returns rows read, labels of the classes, written.

    `errors` is the import's error collector (imports.openimages._Errors): add(path, line, reason, image_id)
    and flush() inside the batch's transaction.
    """
    wanted = set(mids)
    # No trailing comma: a row cut short after its LabelName still matches, and is reported.
    needles = [f",{mid}".encode() for mid in wanted]
    counts = {"rows": 0, "labels": 0, "written": 0}
    batch: list[tuple] = []
    line = 1
    t0 = time.perf_counter()

    def flush() -> None:
        with immediate(db):
            counts["written"] += upsert_labels(db, batch)
            errors.flush()
            if run_id is not None:
                set_progress(db, run_id, line - 1, cursor=f"{path.name}:{line}")
        batch.clear()

    with open(path, "rb") as f:
        idx = header_index(
            f, path, COLUMNS, "an image-level label file has ImageID,Source,LabelName,Confidence"
        )
        n_cols = len(idx)
        i_id, i_label, i_conf, i_source = (
            idx["ImageID"],
            idx["LabelName"],
            idx["Confidence"],
            idx.get("Source"),
        )
        for raw in f:
            line += 1
            if not any(n in raw for n in needles):
                continue
            row = split_line(raw, n_cols, errors, path, line)
            if row is None:
                continue
            label = row[i_label]
            if label not in wanted:
                continue  # the MID matched another column
            image_id = row[i_id]
            if not IMAGE_ID_RE.fullmatch(image_id):
                errors.add(path, line, f"bad ImageID {image_id!r}: expected 16 lowercase hex characters")
                continue
            conf = row[i_conf].strip()
            if conf not in ("0", "1", "0.0", "1.0"):
                errors.add(
                    path,
                    line,
                    f"Confidence {conf!r} is not 0 or 1: only human-verified labels (0 absent, 1 present) "
                    "are imported",
                    image_id,
                )
                continue
            source = row[i_source] if i_source is not None and row[i_source] else None
            batch.append((image_id, label, int(float(conf)), source))
            counts["labels"] += 1
            if len(batch) >= BATCH:
                flush()
        counts["rows"] = line - 1
        flush()
    seconds = time.perf_counter() - t0
    counts["seconds"] = round(seconds, 3)
    counts["rows_per_s"] = round(counts["rows"] / seconds) if seconds > 0 else None
    return counts


HIERARCHY_FILES = ("bbox_labels_600_hierarchy.json", "bbox_labels_500_hierarchy.json")


def find_hierarchy_file(meta_dir: Path) -> Path | None:
    """Open Images' class hierarchy file in meta_dir, if there is one."""
    for name in HIERARCHY_FILES:
        if (meta_dir / name).is_file():
            return meta_dir / name
    return None


def read_hierarchy(path: Path) -> list[tuple[str, str]]:
    """The (label, parent) "Subcategory" edges of a hierarchy JSON file ("Part" edges are not is-a and
    are left out, as Open Images' own expansion leaves them); InvalidInput names a malformed file."""
    import json

    try:
        with open(path, encoding="utf-8") as f:
            tree = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidInput(f"{path}: not a JSON class hierarchy ({e})") from None
    edges: list[tuple[str, str]] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict) or not isinstance(node.get("LabelName"), str):
            raise InvalidInput(
                f"{path}: a node without a LabelName ({str(node)[:80]}); is this Open Images' hierarchy?"
            )
        for child in node.get("Subcategory", []):
            if isinstance(child, dict) and isinstance(child.get("LabelName"), str):
                edges.append((child["LabelName"], node["LabelName"]))
            stack.append(child)
    return edges
