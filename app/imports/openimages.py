"""`flask oiap import-openimages`: Open Images' own metadata CSVs into images and import sets.

Files are found by the names Google publishes (v4 to v7) in --meta-dir (not its subfolders):

- image metadata, per split: `train-images-boxable-with-rotation.csv`,
  `validation-images-with-rotation.csv`, `test-images-with-rotation.csv` (also
  `oidv6-<split>-images-with-labels-with-rotation.csv`, `<split>-images-boxable.csv`), or else the
  all-splits `image_ids_and_rotation.csv` (filtered by its Subset column);
- class names: `oidv7-class-descriptions-boxable.csv` or `class-descriptions-boxable.csv` (with or
  without the `LabelName,DisplayName` header), or the full `oidv{6,7}-class-descriptions.csv`;
- boxes: `oidv6-<split>-annotations-bbox.csv` or `<split>-annotations-bbox.csv`;
- human-verified image-level labels, per split (imports/openimages_labels.py):
  `<split>-annotations-human-imagelabels-boxable.csv` and the v6/v7 names;
- the class hierarchy: `bbox_labels_600_hierarchy.json` (stored whole, for the detection metric).

Decisions:
- Images come from the metadata files: every image of a wanted split, with or without a box of a
  wanted class (the model annotates them all; Open Images labels boxable images exhaustively, so an
  image without a face box has no face). When a split has no metadata file, its images are created
  from the bbox file instead (id and split only) and a note says so.
- A box is imported only onto an image in the store; boxes of images left out by --limit are skipped.
- Idempotent: a box already in its set (same image and coordinates) is not added again, so a second
  run, or a rerun after an interruption, adds nothing twice. Identical duplicate rows collapse.
- A malformed row (wrong column count, bad ImageID, a coordinate that is not a number in [0, 1]) is
  counted, reported with file and line, stored in run_errors, and skipped. Rows of classes that were
  not asked for are only checked for their column count (the bbox pass stays fast).
- Open Images' XClick points and Confidence are not stored; Source and the Is* flags go into flags.
- Image-level labels of the wanted classes go into image_labels (positive and verified negative),
  after the boxes, by the same rules.
"""

import csv
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from sqlite_utils import Database
from tqdm import tqdm

from ..annotations.rows import BOX_IF_NEW_SQL, insert_counted_by_batch
from ..classes import boxable, parse_classes
from ..db import immediate, now
from ..errors import InvalidInput
from ..images.labels import store_hierarchy
from ..images.layout import IMAGE_ID_RE, SPLITS, validate_split
from ..images.records import insert_images
from ..kinds import FACE_LABEL
from ..links import http_url
from ..runs import add_run_errors, finish_failed, finish_run, set_progress, start_run
from ..sets.queries import get_or_create_set
from .openimages_labels import find_hierarchy_file, find_label_files, import_labels, read_hierarchy
from .openimages_rows import csv_rows, header_index, need_columns, split_line

ALL_IMAGES_FILE = "image_ids_and_rotation.csv"
CLASS_FILES = (
    "oidv7-class-descriptions-boxable.csv",
    "class-descriptions-boxable.csv",
    "oidv7-class-descriptions.csv",
    "oidv6-class-descriptions.csv",
    "class-descriptions.csv",
)
FLAG_COLUMNS = ("IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside")
BATCH = 20_000
MAX_STORED_ERRORS = 10_000
IMPORT_CACHE_KIB = -262_144  # negative: KiB, i.e. 256 MiB


def image_files(split: str) -> tuple[str, ...]:
    """Names of a split's image metadata file, in order of preference."""
    return (
        f"{split}-images-boxable-with-rotation.csv",
        f"{split}-images-with-rotation.csv",
        f"oidv6-{split}-images-with-labels-with-rotation.csv",
        f"{split}-images-boxable.csv",
        f"{split}-images.csv",
    )


def bbox_files(split: str) -> tuple[str, ...]:
    """Names of a split's box annotation file, in order of preference."""
    return (f"oidv6-{split}-annotations-bbox.csv", f"{split}-annotations-bbox.csv")


def _first(meta_dir: Path, names: Iterable[str]) -> Path | None:
    for name in names:
        if (meta_dir / name).is_file():
            return meta_dir / name
    return None


def set_name(display_name: str) -> str:
    """The import set's name for a class: openimages-<display name as a slug>."""
    return "openimages-" + (re.sub(r"[^0-9a-z]+", "-", display_name.lower()).strip("-") or "class")


def read_classes(meta_dir: Path) -> dict[str, str]:
    """MID -> display name from the class descriptions file (header row or not); {} when absent."""
    path = _first(meta_dir, CLASS_FILES)
    if path is None:
        return {}
    out = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        for row in csv.reader(f):
            if len(row) >= 2 and row[0] != "LabelName":
                out[row[0]] = row[1]
    return out


class _Errors:
    """Malformed rows: counted, a few kept for the report, up to MAX_STORED_ERRORS stored."""

    def __init__(self, db: Database, run_id: int):
        self.db, self.run_id = db, run_id
        self.count = 0
        self.samples: list[str] = []
        self.pending: list[dict] = []

    def add(self, source: Path, line: int, reason: str, image_id: str | None = None) -> None:
        self.count += 1
        if len(self.samples) < 20:
            self.samples.append(f"{source.name}:{line}: {reason}")
        if self.count <= MAX_STORED_ERRORS:
            self.pending.append({"source": str(source), "line": line, "reason": reason, "image_id": image_id})

    def flush(self) -> None:
        """Store pending errors in the caller's transaction."""
        if self.pending:
            add_run_errors(self.db, self.run_id, self.pending)
            self.pending = []


def _rows(path: Path, errors: _Errors, bar: tqdm) -> Iterator[tuple[int, list[str], dict[str, int]]]:
    """(line, row, column index) for each data row; csv errors are reported and skipped."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        n = 0
        idx = None
        for row in csv_rows(reader, path, errors):
            if idx is None:
                idx = {name.strip(): i for i, name in enumerate(row)}
                continue
            n += 1
            if n % 65536 == 0:
                # The binary buffer's position is how far the text reader has got (within a block).
                bar.update(f.buffer.tell() - bar.n)
            yield reader.line_num, row, idx
        bar.update(max(0, bar.total - bar.n))


def _bar(path: Path, desc: str) -> tqdm:
    return tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=desc, mininterval=0.5, leave=False)


def _count_images(db: Database) -> int:
    return db.execute("SELECT count(*) FROM images").fetchone()[0]


IMAGE_COLUMNS = ("split", "rotation", "licence", "author", "author_url", "title", "url")


def _by_set(batch: list[tuple]) -> dict[int, list[tuple]]:
    # Box rows grouped by set (their first value), in order; one class (the usual case) costs no copy.
    first = batch[0][0] if batch else None
    if all(r[0] == first for r in batch):
        return {first: batch} if batch else {}
    out: dict[int, list[tuple]] = {}
    for r in batch:
        out.setdefault(r[0], []).append(r)
    return out


def _float_or_none(value: str) -> float | None:
    if value == "" or value.lower() == "nan":
        return None
    return float(value)


def import_images(
    db: Database, path: Path, splits: list[str], limit: int | None, errors: _Errors, file_split: str | None
) -> dict:
    """Create image rows from one metadata file; returns {'read': {split: n}, 'added': n}."""
    read = dict.fromkeys(splits, 0)
    created = now()
    before = _count_images(db)
    batch: list[tuple] = []

    def flush() -> None:
        with immediate(db):
            insert_images(db, IMAGE_COLUMNS, batch)
            errors.flush()
        batch.clear()

    with _bar(path, f"images {path.name}") as bar:
        cols = None
        for line, row, idx in _rows(path, errors, bar):
            if cols is None:
                need_columns(idx, ["ImageID"], path)
                if file_split is None:
                    need_columns(idx, ["Subset"], path)
                cols = [idx.get(c) for c in ("License", "Author", "AuthorProfileURL", "Title", "OriginalURL")]
                i_id, i_sub, i_rot, n_cols = idx["ImageID"], idx.get("Subset"), idx.get("Rotation"), len(idx)
            if len(row) != n_cols:
                errors.add(path, line, f"expected {n_cols} columns, got {len(row)}")
                continue
            image_id = row[i_id]
            split = row[i_sub] if i_sub is not None and row[i_sub] else file_split
            if split not in read:
                if split not in SPLITS:
                    errors.add(path, line, f"unknown Subset {split!r}", image_id)
                continue
            if limit is not None and read[split] >= limit:
                if all(n >= limit for n in read.values()):
                    break
                continue
            if not IMAGE_ID_RE.fullmatch(image_id):
                errors.add(path, line, f"bad ImageID {image_id!r}: expected 16 lowercase hex characters")
                continue
            try:
                rotation = _float_or_none(row[i_rot]) if i_rot is not None else None
            except ValueError:
                errors.add(path, line, f"bad Rotation {row[i_rot]!r}", image_id)
                continue
            licence, author, author_url, title, url = (
                row[i] or None if i is not None else None for i in cols
            )
            # Pages link to these: only http(s) URLs are kept (a javascript: link would run there).
            author_url, url = http_url(author_url), http_url(url)
            batch.append((image_id, split, rotation, licence, author, author_url, title, url, created))
            read[split] += 1
            if len(batch) >= BATCH:
                flush()
        flush()
    return {"read": read, "added": _count_images(db) - before}


def import_boxes(
    db: Database,
    path: Path,
    split: str,
    sets: dict[str, tuple[int, str]],
    errors: _Errors,
    *,
    create_images: bool = False,
    limit: int | None = None,
    run_id: int | None = None,
) -> dict:
    """Import the boxes of wanted classes from one bbox file; returns rows read, boxes added and seconds.

    sets maps LabelName -> (set id, kind). With create_images, images missing from the store are
    created from the file (id and split only), at most `limit` of them.
    """
    created = now()
    batch: list[tuple] = []
    new_images: list[tuple] = []
    seen_images: set[str] = set()  # only filled with create_images and a limit: at most `limit` ids
    counts = {"rows": 0, "boxes": 0, "added": 0}
    t0 = time.perf_counter()

    def flush() -> None:
        with immediate(db):
            if new_images:
                insert_images(db, ("split",), new_images)
            counts["added"] += insert_counted_by_batch(db, BOX_IF_NEW_SQL, _by_set(batch))
            errors.flush()
            if run_id is not None:
                set_progress(db, run_id, line - 1, cursor=f"{path.name}:{line}")
        batch.clear()
        new_images.clear()

    # Bbox files hold ids, MIDs and numbers only: a line is matched as bytes before it is parsed,
    # so the 93% of rows of other classes cost a substring test (they are not otherwise checked).
    needles = [f",{mid},".encode() for mid in sets]
    only = needles[0] if len(needles) == 1 else None
    line = 1
    with open(path, "rb") as f, _bar(path, f"boxes {path.name}") as bar:
        idx = header_index(f, path, ["ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax"])
        n_cols = len(idx)
        i_id, i_label = idx["ImageID"], idx["LabelName"]
        i_x0, i_x1, i_y0, i_y1 = idx["XMin"], idx["XMax"], idx["YMin"], idx["YMax"]
        i_source = idx.get("Source")
        flag_idx = [(c, idx[c]) for c in FLAG_COLUMNS if c in idx]
        for raw in f:
            line += 1
            if not line & 0xFFFF:
                bar.update(f.tell() - bar.n)
            if only is not None:
                if only not in raw:
                    continue
            elif not any(n in raw for n in needles):
                continue
            row = split_line(raw, n_cols, errors, path, line)
            if row is None:
                continue
            target = sets.get(row[i_label])
            if target is None:
                continue
            image_id = row[i_id]
            if not IMAGE_ID_RE.fullmatch(image_id):
                errors.add(path, line, f"bad ImageID {image_id!r}: expected 16 lowercase hex characters")
                continue
            try:
                x0, x1, y0, y1 = float(row[i_x0]), float(row[i_x1]), float(row[i_y0]), float(row[i_y1])
                flags = {c: int(row[i]) for c, i in flag_idx if row[i] != ""}
            except ValueError as e:
                errors.add(path, line, f"not a number: {e}", image_id)
                continue
            if not (0.0 <= x0 <= x1 <= 1.0 and 0.0 <= y0 <= y1 <= 1.0):
                errors.add(
                    path, line, f"box XMin={x0} XMax={x1} YMin={y0} YMax={y1} is not inside [0, 1]", image_id
                )
                continue
            if create_images:
                # Without a limit, ON CONFLICT DO NOTHING dedups, so memory stays constant.
                if limit is not None and image_id not in seen_images:
                    if len(seen_images) >= limit:
                        continue
                    seen_images.add(image_id)
                new_images.append((image_id, split, created))
            if i_source is not None:
                flags["Source"] = row[i_source]
            set_id, kind = target
            batch.append((set_id, image_id, kind, row[i_label], x0, y0, x1, y1, json.dumps(flags), created))
            counts["boxes"] += 1
            if len(batch) >= BATCH:
                flush()
        counts["rows"] = line - 1
        flush()
        bar.update(max(0, bar.total - bar.n))
    seconds = time.perf_counter() - t0
    counts["seconds"] = round(seconds, 3)
    counts["rows_per_s"] = round(counts["rows"] / seconds) if seconds > 0 else None
    return counts


def plan(meta_dir: Path, splits: list[str]) -> dict:
    """Which files an import reads: {'images': [(path, split or None)], 'boxes': [(path, split)], 'bare': [...]}."""
    images: list[tuple[Path, str | None]] = []
    uncovered = []
    for split in splits:
        path = _first(meta_dir, image_files(split))
        if path:
            images.append((path, split))
        else:
            uncovered.append(split)
    if uncovered and (meta_dir / ALL_IMAGES_FILE).is_file():
        images.append((meta_dir / ALL_IMAGES_FILE, None))
        uncovered = []
    boxes = [(p, s) for s in splits if (p := _first(meta_dir, bbox_files(s)))]
    return {"images": images, "boxes": boxes, "bare": uncovered}


def import_openimages(
    db: Database,
    meta_dir: str | Path,
    *,
    splits: Iterable[str] | None = None,
    classes: str | Iterable[str] | None = None,
    limit: int | None = None,
    echo: Callable[[str], None] = lambda s: None,
) -> dict:
    """Import images and boxes from Open Images metadata files; returns a summary (also in `runs`)."""
    meta_dir = Path(meta_dir)
    if not meta_dir.is_dir():
        raise InvalidInput(f"--meta-dir {meta_dir} is not a folder")
    splits = [validate_split(s) for s in (splits or SPLITS)]
    mids = parse_classes(classes) or [FACE_LABEL]  # faces unless asked
    if limit is not None and limit < 1:
        raise InvalidInput("--limit must be at least 1")
    files = plan(meta_dir, splits)
    label_paths = find_label_files(meta_dir, splits)
    hierarchy_path = find_hierarchy_file(meta_dir)
    # Read before anything is written: a malformed file fails the import at once.
    edges = read_hierarchy(hierarchy_path) if hierarchy_path is not None else None
    if not files["images"] and not files["boxes"] and not label_paths:
        raise InvalidInput(
            f"no Open Images metadata files in {meta_dir} for split(s) {', '.join(splits)}; expected e.g. "
            "train-images-boxable-with-rotation.csv or image_ids_and_rotation.csv, and "
            "oidv6-train-annotations-bbox.csv (see README, Open Images)"
        )
    names = read_classes(meta_dir)
    unknown = [m for m in mids if names and m not in names]
    if unknown:
        raise InvalidInput(f"class(es) {', '.join(unknown)} are not in the class descriptions file")
    params = {"meta_dir": str(meta_dir.resolve()), "splits": splits, "classes": mids, "limit": limit}
    run_id = start_run(db, "import-openimages", params)
    # A bigger page cache keeps the annotation indexes in memory while millions of rows go in, and
    # each insert's statement journal (the counter trigger needs one) stays in memory: 2x faster.
    cache_size = db.execute("PRAGMA cache_size").fetchone()[0]
    temp_store = db.execute("PRAGMA temp_store").fetchone()[0]
    db.execute(f"PRAGMA cache_size = {IMPORT_CACHE_KIB}")
    db.execute("PRAGMA temp_store = MEMORY")
    errors = _Errors(db, run_id)
    images_before = _count_images(db)
    summary: dict = {
        "run_id": run_id,
        "images_added": 0,
        "images_read": {},
        "sets": {},
        "boxes": {},
        "image_labels": {},
    }
    try:
        sets: dict[str, tuple[int, str]] = {}
        with immediate(db):
            for mid in mids:
                # Without a class file in --meta-dir, the shipped boxable list names the class.
                display = names.get(mid) or boxable().get(mid) or mid
                kind = "face_box" if mid == FACE_LABEL else "object_box"
                name = set_name(display)
                set_id = get_or_create_set(
                    db, name, kind, "import", label=mid, params={"label_name": mid, "display_name": display}
                )
                sets[mid] = (set_id, kind)
                summary["sets"][name] = set_id
        for path, file_split in files["images"]:
            echo(f"images: {path}")
            # The all-splits file covers only the splits without a file of their own.
            covered = {s for _, s in files["images"] if s}
            wanted = [file_split] if file_split else [s for s in splits if s not in covered]
            r = import_images(db, path, wanted, limit, errors, file_split)
            for s, n in r["read"].items():
                summary["images_read"][s] = summary["images_read"].get(s, 0) + n
        for split in files["bare"]:
            echo(f"note: no image metadata file for {split}; its images come from the bbox file (no licence)")
        for path, split in files["boxes"]:
            echo(f"boxes: {path}")
            r = import_boxes(
                db,
                path,
                split,
                sets,
                errors,
                create_images=split in files["bare"],
                limit=limit,
                run_id=run_id,
            )
            summary["boxes"][path.name] = r
        for path, _split in label_paths:
            echo(f"image-level labels: {path}")
            summary["image_labels"][path.name] = import_labels(db, path, mids, errors, run_id)
        if hierarchy_path is not None and edges is not None:
            echo(f"class hierarchy: {hierarchy_path}")
            with immediate(db):
                changed = store_hierarchy(db, edges)
            summary["hierarchy"] = {"file": hierarchy_path.name, "edges": len(set(edges)), "changed": changed}
        summary["images_total"] = _count_images(db)
        summary["images_added"] = summary["images_total"] - images_before
        summary["boxes_added"] = sum(r["added"] for r in summary["boxes"].values())
        summary["labels_written"] = sum(r["written"] for r in summary["image_labels"].values())
        summary["errors"] = errors.count
        summary["error_samples"] = errors.samples
        error_text = f"{errors.count} malformed row(s)" if errors.count else None
        finish_run(db, run_id, "done", error_text)
    except BaseException as e:
        finish_failed(db, run_id, e)
        raise
    finally:
        db.execute(f"PRAGMA cache_size = {int(cache_size)}")
        db.execute(f"PRAGMA temp_store = {int(temp_store)}")
    return summary
