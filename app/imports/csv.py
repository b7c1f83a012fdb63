"""import-csv: load an oiap training CSV, or the original project's face_landmarks_*/face_bbox_* CSVs.

Formats, told apart by the header:
- oiap: image_id, split, source, weight, annotation_id, set, x0, y0, x1, y1, 1x, 1y, ... (as export
  writes it; normalised coordinates). With --source model, a row's `source` column machine_good
  comes back rated good, anything else unrated.
- original: img_id, source, bbox left top right bottom, face_bbox left top right bottom, then
  x/y pairs (68 for landmarks files, none for bbox files), with or without a header. Zeros mean
  absent. The box is face_bbox when it is set, else bbox, else the extent of the points.
  Coordinates: a row with any value >= 2 is in pixels and is divided by the image's width and height
  (from the store); otherwise it is already normalised.
- original-bbox: the original project's face_bbox_*.csv as its FaceBoundingBoxAnnotationSet writes
  them: `img_id,left,top,right,bottom` (a header line when it created the file), one face a row,
  normalised (its detectors divide by the image's size).

The original project's boxes may reach a little past the image (its CNN detector widened boxes by
10%): values of the original layouts are clipped to [0, 1], as Open Images clips its boxes.

A malformed row is reported with its line number and skipped; so is a row whose image is not in
the store. Re-importing the same file adds nothing: a row equal to one already in the set (same
image, box and points) counts as a duplicate. An import that adds no row to a set it would create
leaves no set behind: it is an error naming the first failures.
"""

import csv
import math
import re

from sqlite_utils import Database

from ..annotations.rows import annotation_row, insert_annotations
from ..audit.events import log_event
from ..db import immediate
from ..errors import InvalidInput
from ..kinds import get_kind
from ..sets.queries import get_or_create_set
from .openimages_rows import reader_rows

IMAGE_ID = re.compile(r"[0-9a-f]{16}")
BATCH = 5000
ORIGINAL_BBOX_HEADER = ["img_id", "left", "top", "right", "bottom"]
# A row of an original layout with a value this large is in pixels: a normalised box widened past the
# image edge stays well below it.
PIXELS_FROM = 2.0


def _floats(values: list[str], line: int) -> list[float]:
    try:
        return [float(v) if v.strip() != "" else 0.0 for v in values]
    except ValueError as e:
        raise _Bad(line, f"not a number: {e}") from None


class _Bad(Exception):
    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


def _detect(first: list[str]) -> tuple[str, bool]:
    """(format, has_header) from the first row."""
    head = [c.strip().lower() for c in first]
    if head[:1] == ["image_id"] and "annotation_id" in head:
        return "oiap", True
    if head == ORIGINAL_BBOX_HEADER:
        return "original-bbox", True
    if head[:1] in (["img_id"], ["imageid"], ["image"]):
        return "original", True
    if len(head) == 5 and IMAGE_ID.fullmatch(head[0]) and all(_is_float(v) for v in head[1:]):
        return "original-bbox", False
    if len(head) > 2 and IMAGE_ID.fullmatch(head[0]) and _is_float(head[2]):
        return "original", False
    raise InvalidInput(
        "unrecognised CSV: expected an oiap export (image_id,split,source,weight,annotation_id,set,...), "
        "the original project's face_bbox_ layout (img_id,left,top,right,bottom) "
        "or its face_landmarks_ layout (img_id,source,bbox...,face_bbox...,1x,1y,...)"
    )


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _parse_oiap(row: list[str], line: int, n: int) -> dict:
    if len(row) != 10 + 2 * n:
        raise _Bad(line, f"expected {10 + 2 * n} columns for this kind, got {len(row)}")
    image_id, _split, source = row[0].strip(), row[1], row[2].strip()
    vals = _floats(row[6:], line)
    box = vals[:4] if row[6].strip() != "" else None
    xy = vals[4:]
    return {
        "image_id": image_id,
        "box": box,
        "xy": xy,
        "rating": "good" if source == "machine_good" else None,
        "pixels": False,
    }


def _parse_original(row: list[str], line: int, n: int) -> dict:
    if len(row) < 10:
        raise _Bad(line, f"expected at least 10 columns (img_id, source, bbox, face_bbox), got {len(row)}")
    vals = _floats(row[2:], line)
    bbox, face, xy = vals[0:4], vals[4:8], vals[8:]
    if xy and len(xy) % 2:
        raise _Bad(line, f"odd number of point coordinates ({len(xy)})")
    if n and xy and len(xy) != 2 * n:
        raise _Bad(line, f"expected {n} points for this kind, got {len(xy) // 2}")
    box = face if any(face) else bbox if any(bbox) else None
    # Original rows give (left, top, right, bottom): the same order as our x0, y0, x1, y1.
    return {
        "image_id": row[0].strip(),
        "box": box,
        "xy": xy if n else [],
        "rating": None,
        "pixels": any(v >= PIXELS_FROM for v in vals),
        "clip": True,
    }


def _parse_original_bbox(row: list[str], line: int, n: int) -> dict:
    if n:
        raise InvalidInput(
            "this is the original project's face_bbox layout (img_id,left,top,right,bottom): "
            "import it with --kind face_box"
        )
    if len(row) != 5:
        raise _Bad(line, f"expected 5 columns (img_id,left,top,right,bottom), got {len(row)}")
    vals = _floats(row[1:], line)
    return {
        "image_id": row[0].strip(),
        "box": vals,
        "xy": [],
        "rating": None,
        "pixels": any(v >= PIXELS_FROM for v in vals),
        "clip": True,
    }


PARSERS = {"oiap": _parse_oiap, "original": _parse_original, "original-bbox": _parse_original_bbox}


def _points(xy: list[float], n: int) -> list[list[float]] | None:
    if not n:
        return None
    if not xy:
        return None
    # (0, 0) means absent; it is kept as [0, 0, 0] so point order stays the kind's order.
    return [[x, y, 0 if (x == 0 and y == 0) else 1] for x, y in zip(xy[0::2], xy[1::2], strict=True)]


def _extent(points: list[list[float]] | None) -> list[float] | None:
    pts = [p for p in points or [] if p[2]]
    if not pts:
        return None
    return [min(p[0] for p in pts), min(p[1] for p in pts), max(p[0] for p in pts), max(p[1] for p in pts)]


def import_csv(
    db: Database, path: str, kind: str, set_name: str, source: str = "human", user_id=None
) -> dict:
    """Import a CSV into a set; returns counts and the per-line errors (malformed, unknown image)."""
    n = get_kind(kind).n_points
    if source not in ("human", "model"):
        raise InvalidInput(f"source is human or model, not {source!r}")
    report = {
        "format": None,
        "imported": 0,
        "duplicates": 0,
        "malformed": 0,
        "unknown_images": 0,
        "errors": [],
    }
    sizes: dict[str, tuple | None] = {}

    def image_size(image_id: str):
        # The image cache is bounded by the file's distinct images; a row lookup each would be slower.
        if image_id not in sizes:
            if len(sizes) > 100_000:
                sizes.clear()
            r = db.execute("SELECT width, height FROM images WHERE id = ?", [image_id]).fetchone()
            sizes[image_id] = r
        return sizes[image_id]

    with open(path, newline="", encoding=_encoding(path)) as f:
        reader = csv.reader(f)
        try:
            first = next(reader, None)
        except (csv.Error, UnicodeDecodeError) as e:
            raise InvalidInput(f"{path}:1: {_reason(e)}") from None
        if first is None:
            raise InvalidInput(f"{path} is empty")
        fmt, has_header = _detect(first)
        report["format"] = fmt
        parse = PARSERS[fmt]
        existed = db.execute("SELECT 1 FROM annotation_sets WHERE name = ?", [set_name]).fetchone()
        with immediate(db):
            set_id = get_or_create_set(
                db,
                set_name,
                kind,
                "human" if source == "human" else "import",
                created_by=user_id,
                params={"imported_from": str(path), "format": fmt},
            )
            batch: list[dict] = []
            rows = _rows(reader, report, path) if has_header else _chain(first, _rows(reader, report, path))
            for row in rows:
                line = reader.line_num
                if not row or all(not c.strip() for c in row):
                    continue
                try:
                    rec = parse(row, line, n)
                    dims = image_size(rec["image_id"])
                    if dims is None:
                        report["unknown_images"] += 1
                        report["errors"].append(
                            {"line": line, "reason": f"unknown image id {rec['image_id']!r}"}
                        )
                        continue
                    box, xy = rec["box"], rec["xy"]
                    if rec["pixels"]:
                        w, h = dims
                        if not w or not h:
                            raise _Bad(
                                line, f"pixel coordinates, but image {rec['image_id']} has no known size"
                            )
                        box = [box[0] / w, box[1] / h, box[2] / w, box[3] / h] if box else None
                        xy = [v / (w if i % 2 == 0 else h) for i, v in enumerate(xy)]
                    if rec.get("clip"):
                        box, xy = _clip(box), _clip(xy)
                    points = _points(xy, n)
                    if box is None:
                        box = _extent(points)
                    if box is None:
                        raise _Bad(line, "no box and no points")
                    if not (box[0] < box[2] and box[1] < box[3]):
                        raise _Bad(line, f"empty or inverted box {box}")
                    _check_range(box, points, line)
                except _Bad as e:
                    report["malformed"] += 1
                    report["errors"].append({"line": e.line, "reason": e.reason})
                    continue
                ann = annotation_row(
                    set_id,
                    rec["image_id"],
                    kind,
                    box,
                    points,
                    created_by=user_id,
                    rating=rec["rating"] if source == "model" else None,
                )
                if _exists(db, ann):
                    report["duplicates"] += 1
                    continue
                batch.append(ann)
                if len(batch) >= BATCH:
                    report["imported"] += insert_annotations(db, batch)
                    batch = []
            if batch:
                report["imported"] += insert_annotations(db, batch)
            if not existed and not report["imported"]:
                # Raised inside the transaction: the set made for this import goes with it.
                raise InvalidInput(_nothing_imported(path, set_name, report))
            log_event(
                db,
                "import_csv",
                user_id=user_id,
                target_type="annotation_set",
                target_id=set_id,
                set_id=set_id,
                after={k: v for k, v in report.items() if k != "errors"} | {"file": str(path)},
            )
    report["set_id"] = set_id
    return report


def _clip(values: list[float] | None) -> list[float] | None:
    """Values a little past the image (up to half its size) clipped to [0, 1]; others left for _check_range."""
    if not values or not all(-0.5 <= v <= 1.5 for v in values):
        return values
    return [min(max(v, 0.0), 1.0) for v in values]


def _nothing_imported(path, set_name: str, report: dict) -> str:
    failed = report["malformed"] + report["unknown_images"]
    if not failed:
        return f"{path} has no rows to import; set {set_name!r} was not created"
    first = "; ".join(f"line {e['line']}: {e['reason']}" for e in report["errors"][:3])
    return (
        f"nothing imported from {path}: all {failed} row(s) failed ({first}"
        f"{'; ...' if failed > 3 else ''}); set {set_name!r} was not created. "
        "Fix the rows (or import the images first: `flask oiap import-openimages` / `import-dir`) and "
        "run it again"
    )


def _encoding(path) -> str:
    # UTF-8 (with or without a BOM), or UTF-16 when the file starts with its BOM (Excel's "Unicode text").
    with open(path, "rb") as f:
        head = f.read(2)
    return "utf-16" if head in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"


def _reason(e: Exception) -> str:
    if isinstance(e, UnicodeDecodeError):
        return "the file is not UTF-8 text; save it as UTF-8 (or UTF-16 with a BOM) and import again"
    return f"unreadable CSV: {e}"


def _rows(reader, report: dict, path):
    """The reader's rows; a line the csv module cannot parse (a field over the size limit) is reported and skipped."""

    def bad_row(line: int, e: csv.Error) -> None:
        report["malformed"] += 1
        report["errors"].append({"line": line, "reason": _reason(e)})

    # A wrong encoding is the whole file's problem: nothing is imported (the transaction rolls back).
    return reader_rows(reader, bad_row, lambda line, e: InvalidInput(f"{path}:{line}: {_reason(e)}"))


def _check_range(box: list[float], points: list[list[float]] | None, line: int) -> None:
    # Normalised coordinates lie on the image: NaN, infinities and values outside [0, 1] are refused.
    values = list(box) + [c for p in points or [] for c in p[:2]]
    if not all(math.isfinite(v) for v in values):
        raise _Bad(line, "a coordinate is not a finite number")
    if not all(0.0 <= v <= 1.0 for v in values):
        raise _Bad(line, "a coordinate lies outside the image (normalised coordinates are in [0, 1])")


def _chain(first, rest):
    yield first
    yield from rest


def _exists(db: Database, ann: dict) -> bool:
    # Idempotent re-import: the same set, image, box and points is the same annotation.
    return (
        db.execute(
            "SELECT 1 FROM annotations WHERE set_id = ? AND image_id = ? AND deleted = 0"
            " AND x0 IS ? AND y0 IS ? AND x1 IS ? AND y1 IS ? AND points IS ? LIMIT 1",
            [ann["set_id"], ann["image_id"], ann["x0"], ann["y0"], ann["x1"], ann["y1"], ann["points"]],
        ).fetchone()
        is not None
    )
