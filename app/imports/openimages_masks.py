"""`flask oiap import-openimages-masks`: Open Images' instance segmentations into object_mask sets.

Files, by the names Google publishes (v5 to v7):

- `<split>-annotations-object-segmentation.csv` (also with an `oidv6-`/`oidv7-` prefix) in
  --meta-dir: MaskPath, ImageID, LabelName, BoxID, BoxXMin, BoxXMax, BoxYMin, BoxYMax,
  PredictedIoU, Clicks;
- the mask PNGs in `<split>-masks-<c>.zip` in --masks-dir (default --meta-dir), one zip per first
  character c of MaskPath (0-9a-f). They are read member by member from the zip (never extracted).

Decisions:
- One set per class, `openimages-<display name>-masks` (kind object_mask, label = the MID), the
  display name from the class descriptions file when present (as import-openimages).
- A mask PNG is at reduced resolution: it is resized (nearest neighbour) to the image's size on its
  stored file's grid, then stored as COCO RLE (app/annotations/masks.py). The size comes from the
  image row, else from the image file's header; an image not in the store is skipped (counted), as
  import-openimages skips boxes of images left out.
- The row's box is the CSV's box (BoxXMin..BoxYMax: the object's box, the one its object_box row
  has), so merge and export see the same object; BoxID, MaskPath and PredictedIoU go into flags.
- Idempotent: a mask whose BoxID is already in its set (live, deleted or superseded) is not read
  again nor added, so a rerun or a resumed run adds nothing twice.
- A bad row (columns, ImageID, box, a MaskPath not in its zip, an unreadable or empty PNG, an image
  whose size is unknown) is counted, reported with file and line, stored in run_errors and skipped.
"""

import csv
import io
import json
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
from PIL import Image
from sqlite_utils import Database

from ..annotations import masks
from ..annotations.rows import MASK_IF_NEW_SQL, insert_counted_by_batch
from ..classes import check_label, parse_classes
from ..db import immediate, now
from ..errors import InvalidInput, NotFound
from ..images.layout import IMAGE_ID_RE, validate_split
from ..images.reading import header_size
from ..runs import finish_failed, finish_run, set_progress, start_run
from ..sets.queries import get_or_create_set
from .openimages import _Errors, read_classes, set_name
from .openimages_rows import csv_rows, need_columns

KIND = "object_mask"
COLUMNS = ("MaskPath", "ImageID", "LabelName", "BoxID", "BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax")
BATCH = 500  # masks per transaction: a few hundred bytes each, and readers wait for no long write
# A decoded mask PNG may not be bigger than this (Open Images' are about 1/4 of the image side).
MAX_MASK_PIXELS = 64_000_000


def segmentation_files(split: str) -> tuple[str, ...]:
    """Names of a split's segmentation CSV, in order of preference."""
    base = f"{split}-annotations-object-segmentation.csv"
    return (base, f"oidv7-{base}", f"oidv6-{base}")


def zip_name(split: str, mask_path: str) -> str:
    """The zip that holds a mask PNG: `<split>-masks-<first character of MaskPath>.zip`."""
    return f"{split}-masks-{mask_path[0]}.zip"


def mask_set_name(display_name: str) -> str:
    """The import set's name for a class's masks: openimages-<display name as a slug>-masks."""
    return set_name(display_name) + "-masks"


class _Zips:
    """The split's mask zips, opened when first needed and kept open; members found by base name."""

    def __init__(self, folder: Path, split: str):
        self.folder, self.split = folder, split
        self.open: dict[str, tuple[zipfile.ZipFile, dict[str, str]] | None] = {}

    def read(self, mask_path: str) -> bytes:
        """The PNG's bytes; InvalidInput names the zip or member that is missing."""
        name = zip_name(self.split, mask_path)
        if name not in self.open:
            path = self.folder / name
            if not path.is_file():
                self.open[name] = None
            else:
                try:
                    zf = zipfile.ZipFile(path)
                except zipfile.BadZipFile as e:
                    raise InvalidInput(f"{path}: not a zip file ({e}); download it again") from None
                # Google's zips hold the PNGs at their root; a re-zipped folder may nest them.
                members = {m.rsplit("/", 1)[-1]: m for m in zf.namelist() if not m.endswith("/")}
                self.open[name] = (zf, members)
        entry = self.open[name]
        if entry is None:
            raise InvalidInput(f"{name} is not in {self.folder}; pass --masks-dir with the mask zips")
        zf, members = entry
        member = members.get(mask_path)
        if member is None:
            raise InvalidInput(f"{mask_path} is not in {name}")
        try:
            return zf.read(member)
        except (zipfile.BadZipFile, OSError) as e:
            raise InvalidInput(f"{mask_path} in {name} cannot be read ({e})") from None

    def close(self) -> None:
        for entry in self.open.values():
            if entry is not None:
                entry[0].close()


def mask_from_png(data: bytes, width: int, height: int) -> np.ndarray:
    """A mask PNG's pixels (nonzero = in) resized by nearest neighbour to width x height, as bool."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format != "PNG":
                raise InvalidInput(f"a mask is a PNG file, not {im.format}")
            if im.width * im.height > MAX_MASK_PIXELS:
                raise InvalidInput(f"a {im.width} x {im.height} mask PNG is too big")
            gray = im.convert("L")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise InvalidInput(f"not a readable PNG ({type(e).__name__})") from None
    if gray.size != (width, height):
        gray = gray.resize((width, height), Image.Resampling.NEAREST)
    return np.asarray(gray) > 0


def _rows(path: Path, errors: _Errors) -> Iterator[tuple[int, dict[str, str]]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        rows = csv_rows(reader, path, errors)
        header = next(rows, None)
        if header is None:
            raise InvalidInput(f"{path}: empty file; expected the header {','.join(COLUMNS)},...")
        header = [h.strip() for h in header]
        need_columns(header, COLUMNS, path, "is this *-annotations-object-segmentation.csv?")
        for row in rows:
            if not row:
                continue
            if len(row) != len(header):
                errors.add(path, reader.line_num, f"expected {len(header)} columns, got {len(row)}")
                continue
            yield reader.line_num, dict(zip(header, row, strict=True))


def _box(r: dict[str, str]) -> tuple[float, float, float, float]:
    try:
        x0, x1, y0, y1 = (float(r[c]) for c in ("BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax"))
    except ValueError as e:
        raise InvalidInput(f"box not a number: {e}") from None
    if not (0.0 <= x0 <= x1 <= 1.0 and 0.0 <= y0 <= y1 <= 1.0):
        raise InvalidInput(f"box BoxXMin={x0} BoxXMax={x1} BoxYMin={y0} BoxYMax={y1} is not inside [0, 1]")
    return x0, y0, x1, y1


def import_mask_file(
    db: Database,
    config: Mapping,
    path: Path,
    zips: _Zips,
    sets: Callable[[str], int] | dict[str, int],
    errors: _Errors,
    *,
    limit: int | None = None,
    run_id: int | None = None,
) -> dict:
    """Import one segmentation CSV's masks of the wanted classes; returns counts and seconds.

    `sets` maps LabelName -> set id (a dict: only those classes), or is a function making the set
    of any class on first sight.
    """
    created = now()
    counts = {"rows": 0, "masks": 0, "added": 0, "present": 0, "no_image": 0}
    batch: list[tuple] = []
    sizes: dict[str, tuple[int, int] | None] = {}
    t0 = time.perf_counter()
    line = 1

    def flush() -> None:
        by_set: dict[int, list[tuple]] = {}
        for r in batch:
            by_set.setdefault(r[0], []).append(r)
        with immediate(db):
            counts["added"] += insert_counted_by_batch(db, MASK_IF_NEW_SQL, by_set)
            errors.flush()
            if run_id is not None:
                set_progress(db, run_id, counts["rows"], cursor=f"{path.name}:{line}")
        batch.clear()

    def image_size(image_id: str) -> tuple[int, int] | None:
        if image_id not in sizes:
            if len(sizes) > 100_000:
                sizes.clear()
            rows = list(
                db.query("SELECT id, split, path, width, height FROM images WHERE id = ?", [image_id])
            )
            if not rows:
                sizes[image_id] = None
            elif rows[0]["width"] and rows[0]["height"]:
                sizes[image_id] = (rows[0]["width"], rows[0]["height"])
            else:
                sizes[image_id] = header_size(config, rows[0])
        return sizes[image_id]

    for line, r in _rows(path, errors):
        counts["rows"] += 1
        mid = r["LabelName"]
        if isinstance(sets, dict):
            set_id = sets.get(mid)
            if set_id is None:
                continue
        else:
            set_id = None
        image_id, box_id, mask_path = r["ImageID"], r["BoxID"].strip(), r["MaskPath"].strip()
        try:
            if not IMAGE_ID_RE.fullmatch(image_id):
                raise InvalidInput(f"bad ImageID {image_id!r}: expected 16 lowercase hex characters")
            check_label(mid, "LabelName")  # the MID check of every --classes
            if not box_id:
                raise InvalidInput("empty BoxID")
            if not mask_path.endswith(".png") or "/" in mask_path or "\\" in mask_path:
                raise InvalidInput(f"MaskPath {mask_path!r} is not a PNG file name")
            box = _box(r)
            if set_id is None:
                set_id = sets(mid)
            counts["masks"] += 1
            if limit is not None and counts["masks"] > limit:
                break
            present = db.execute(
                "SELECT 1 FROM annotations INDEXED BY annotations_set_image"
                " WHERE set_id = ? AND image_id = ? AND json_extract(flags, '$.BoxID') = ?",
                [set_id, image_id, box_id],
            ).fetchone()
            if present:
                counts["present"] += 1
                continue
            try:
                size = image_size(image_id)
            except NotFound as e:
                raise InvalidInput(f"the image's size is unknown: {e}") from None
            if size is None:
                counts["no_image"] += 1
                continue
            data = zips.read(mask_path)
            try:
                mask = mask_from_png(data, *size)
            except InvalidInput as e:
                raise InvalidInput(f"{mask_path} in {zip_name(zips.split, mask_path)}: {e}") from None
            if not mask.any():
                raise InvalidInput(f"{mask_path} is empty (no pixel set)")
        except InvalidInput as e:
            errors.add(path, line, str(e), image_id if IMAGE_ID_RE.fullmatch(image_id) else None)
            continue
        flags = {"BoxID": box_id, "MaskPath": mask_path}
        try:
            flags["PredictedIoU"] = float(r.get("PredictedIoU") or "nan")
            if flags["PredictedIoU"] != flags["PredictedIoU"]:
                del flags["PredictedIoU"]
        except ValueError:
            pass
        batch.append((set_id, image_id, KIND, mid, *box, json.dumps(flags), created, masks.encode(mask)))
        if len(batch) >= BATCH:
            flush()
    flush()
    seconds = time.perf_counter() - t0
    counts["seconds"] = round(seconds, 3)
    return counts


def plan(meta_dir: Path, splits: Iterable[str]) -> list[tuple[Path, str]]:
    """The segmentation CSVs an import reads: [(path, split)]."""
    out = []
    for split in splits:
        for name in segmentation_files(split):
            if (meta_dir / name).is_file():
                out.append((meta_dir / name, split))
                break
    return out


def import_openimages_masks(
    db: Database,
    config: Mapping,
    meta_dir: str | Path,
    *,
    masks_dir: str | Path | None = None,
    splits: Iterable[str] | None = None,
    classes: str | Iterable[str] | None = None,
    limit: int | None = None,
    echo: Callable[[str], None] = lambda s: None,
) -> dict:
    """Import Open Images' segmentation masks of images in the store; returns a summary (also in `runs`).

    `classes`: comma-separated MIDs; None takes every class in the files.
    """
    meta_dir = Path(meta_dir)
    if not meta_dir.is_dir():
        raise InvalidInput(f"--meta-dir {meta_dir} is not a folder")
    masks_dir = Path(masks_dir) if masks_dir else meta_dir
    if not masks_dir.is_dir():
        raise InvalidInput(f"--masks-dir {masks_dir} is not a folder")
    splits = [validate_split(s) for s in (splits or ("train", "validation", "test"))]
    mids = parse_classes(classes)
    if limit is not None and limit < 1:
        raise InvalidInput("--limit must be at least 1")
    files = plan(meta_dir, splits)
    if not files:
        raise InvalidInput(
            f"no segmentation file in {meta_dir} for split(s) {', '.join(splits)}; expected e.g. "
            "validation-annotations-object-segmentation.csv (see README, Object masks)"
        )
    names = read_classes(meta_dir)
    params = {
        "meta_dir": str(meta_dir.resolve()),
        "masks_dir": str(masks_dir.resolve()),
        "splits": splits,
        "classes": mids,
        "limit": limit,
    }
    run_id = start_run(db, "import-openimages-masks", params)
    errors = _Errors(db, run_id)
    summary: dict = {"run_id": run_id, "sets": {}, "files": {}}

    def make_set(mid: str) -> int:
        display = names.get(mid) or mid
        name = mask_set_name(display)
        with immediate(db):
            set_id = get_or_create_set(
                db, name, KIND, "import", label=mid, params={"label_name": mid, "display_name": display}
            )
        summary["sets"][name] = set_id
        return set_id

    try:
        known: dict[str, int] = {}
        if mids is not None:
            for mid in mids:
                known[mid] = make_set(mid)

        def any_class(mid: str) -> int:
            if mid not in known:
                known[mid] = make_set(mid)
            return known[mid]

        for path, split in files:
            echo(f"masks: {path}")
            zips = _Zips(masks_dir, split)
            try:
                r = import_mask_file(
                    db,
                    config,
                    path,
                    zips,
                    known if mids is not None else any_class,
                    errors,
                    limit=limit,
                    run_id=run_id,
                )
            finally:
                zips.close()
            summary["files"][path.name] = r
        summary["masks_added"] = sum(r["added"] for r in summary["files"].values())
        summary["errors"] = errors.count
        summary["error_samples"] = errors.samples
        finish_run(db, run_id, "done", f"{errors.count} bad row(s)" if errors.count else None)
    except BaseException as e:
        finish_failed(db, run_id, e)
        raise
    return summary
