"""Mask corrections from the mask editor: what it opens, and saving a corrected mask with versions.

The editor edits the mask on a crop's working grid (app/editor/superpixels.py) and sends it back as
row-major run lengths over that grid, starting with a run of "out" pixels. Only the crop changes: the
rest of the stored whole-image mask is kept. When the working grid is reduced (a crop larger than
superpixels.MAX_SIDE), only working pixels that the person changed are written back (scaled up to
stored pixels), so the untouched edges keep their full-resolution detail.

As for faces (app/editor/edits.py): a correction never changes the machine row. It writes a human
object_mask row (origin_id = the machine row) in the human set and rates the machine row bad; a later
save updates that human row by compare-and-swap on its version, so a stale editor gets a 409 and
overwrites nothing.
"""

import numpy as np
from sqlite_utils import Database

from ..annotations import masks
from ..annotations.rows import annotation_row, insert_annotation, move_at_version, rate
from ..audit.events import log_event
from ..db import immediate
from ..errors import Conflict, InvalidInput, NotFound
from ..images import cache
from ..sets.queries import get_or_create_set, human_set_name
from . import superpixels
from .edits import MACHINE_SOURCES, get_image

KIND = "object_mask"
# A mask of a 1024 x 1024 crop as runs: a few thousand numbers for a real object (tens of KB); a
# pathological checkerboard would need a million, and is refused. The app refuses larger bodies anyway
# (request_limits.DEFAULT_MAX).
MAX_BODY_BYTES = 1024 * 1024
SAVE_KEYS = {"annotation_id", "version", "rect", "size", "runs"}


# ---- rows -----------------------------------------------------------------------------------------


def _row(db: Database, annotation_id: int) -> dict:
    cur = db.execute(
        "SELECT a.id, a.set_id, a.image_id, a.kind, a.label, a.x0, a.y0, a.x1, a.y1, a.mask, a.parent_id,"
        " a.origin_id, a.version, a.deleted, a.rating, s.source FROM annotations a"
        " JOIN annotation_sets s ON s.id = a.set_id WHERE a.id = ?",
        [annotation_id],
    )
    row = cur.fetchone()
    if row is None:
        raise NotFound(f"no annotation {annotation_id}")
    out = dict(zip([c[0] for c in cur.description], row, strict=True))
    if out["kind"] != KIND:
        raise InvalidInput(
            f"annotation {annotation_id} is {out['kind']}, not an {KIND}; open it in the editor"
        )
    return out


def _correction(db: Database, machine_id: int) -> dict | None:
    # The latest human row that corrects the machine row (what the review page shows too).
    r = db.execute(
        "SELECT id FROM annotations WHERE origin_id = ? AND kind = ? ORDER BY id DESC LIMIT 1",
        [machine_id, KIND],
    ).fetchone()
    return _row(db, r[0]) if r else None


def full_mask(row: dict, width: int, height: int) -> np.ndarray:
    """The row's whole-image mask (empty when it has none); InvalidInput when it is not the image's size."""
    if not row["mask"]:
        return np.zeros((height, width), bool)
    m = masks.decode(row["mask"])
    if m.shape != (height, width):
        raise InvalidInput(
            f"annotation {row['id']}'s mask is {m.shape[1]}x{m.shape[0]}, but image {row['image_id']} is "
            f"{width}x{height}; re-import the mask on the image's grid"
        )
    return m


def _box_of(row: dict, full: np.ndarray) -> tuple[float, float, float, float]:
    if row["x0"] is not None:
        return row["x0"], row["y0"], row["x1"], row["y1"]
    b = mask_box(full)
    return b if b is not None else (0.0, 0.0, 1.0, 1.0)


def mask_box(full: np.ndarray) -> tuple[float, float, float, float] | None:
    """The normalised box of a whole-image mask, None when empty."""
    ys, xs = np.nonzero(full.any(axis=1))[0], np.nonzero(full.any(axis=0))[0]
    if not len(xs):
        return None
    h, w = full.shape
    return xs[0] / w, ys[0] / h, (xs[-1] + 1) / w, (ys[-1] + 1) / h


# ---- grids ----------------------------------------------------------------------------------------


def _index(n_work: int, n_stored: int) -> np.ndarray:
    # The stored pixel whose centre each working pixel's centre falls on (nearest neighbour).
    return np.minimum(n_stored - 1, ((np.arange(n_work) + 0.5) * n_stored / n_work).astype(np.int64))


def to_working(full: np.ndarray, crop: superpixels.Crop) -> np.ndarray:
    """The crop of a whole-image mask on the working grid (height, width)."""
    part = full[crop.y0 : crop.y1, crop.x0 : crop.x1]
    if part.shape == (crop.height, crop.width):
        return part.copy()
    return part[np.ix_(_index(crop.height, part.shape[0]), _index(crop.width, part.shape[1]))]


def _to_stored(work: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    # Each stored pixel takes the working pixel its centre falls in.
    h, w = shape
    return work[np.ix_(_index(h, work.shape[0]), _index(w, work.shape[1]))]


def apply_working(full: np.ndarray, crop: superpixels.Crop, work: np.ndarray) -> np.ndarray:
    """The whole-image mask with the crop's working-grid edit written in (changed working pixels only)."""
    out = full.copy()
    part = out[crop.y0 : crop.y1, crop.x0 : crop.x1]
    if part.shape == work.shape:
        part[...] = work
        return out
    changed = _to_stored(work != to_working(full, crop), part.shape)
    part[changed] = _to_stored(work, part.shape)[changed]
    return out


def runs_of(work: np.ndarray) -> list[int]:
    """Row-major run lengths of a boolean grid, starting with a run of False (possibly 0)."""
    flat = work.ravel().astype(np.int8)
    edges = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate(([0], edges, [flat.size]))
    runs = np.diff(bounds).tolist()
    return ([0] + runs) if flat.size and flat[0] else runs


def from_runs(runs: list[int], width: int, height: int) -> np.ndarray:
    """The boolean (height, width) grid of runs_of's output."""
    values = np.arange(len(runs)) % 2 == 1
    return np.repeat(values, runs).reshape(height, width)


# ---- opening ---------------------------------------------------------------------------------------


def load(db: Database, config, annotation_id: int) -> dict:
    """What the mask editor opens for an annotation: the row it edits, its crop and the crop's mask.

    A machine row that a person already corrected opens that correction (the latest), so a second
    person edits the human row at its version instead of racing to correct the machine row again.
    """
    row = _row(db, annotation_id)
    if row["source"] in MACHINE_SOURCES:
        corr = _correction(db, row["id"])
        if corr is not None and not corr["deleted"]:
            row = corr
    if row["deleted"]:
        raise NotFound(f"annotation {row['id']} was deleted")
    image = get_image(db, row["image_id"])
    width, height = cache.image_size(config, image)
    full = full_mask(row, width, height)
    crop = superpixels.crop_for_box(_box_of(row, full), width, height)
    human = row["source"] == "human"
    return {
        "annotation": {
            "id": row["id"],
            "origin_id": row["origin_id"] if human else row["id"],
            "version": row["version"] if human else None,
            "source": row["source"],
            "label": row["label"],
            "rating": row["rating"],
            "area": int(full.sum()),
        },
        "image": image,
        "size": (width, height),
        "crop": crop,
        "runs": runs_of(to_working(full, crop)),
    }


def check_crop(db: Database, image_id: str, crop: superpixels.Crop, width: int, height: int) -> None:
    """NotFound unless the crop is the editor's crop of a live object_mask row on the image.

    Superpixels cost a second or two of CPU for a large crop: only crops the editor asks for are
    computed (and cached), not any rectangle a client makes up.
    """
    for box in db.execute(
        "SELECT x0, y0, x1, y1 FROM annotations WHERE image_id = ? AND kind = ? AND deleted = 0 AND x0 IS NOT NULL",
        [image_id, KIND],
    ):
        if superpixels.crop_for_box(box, width, height) == crop:
            return
    raise NotFound(
        f"rect {crop.rect()} is not the crop of a mask on image {image_id}; open the mask editor from the annotation"
    )


# ---- saving ----------------------------------------------------------------------------------------


def _positive_int(v, where: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not 0 < v < 2**63:
        raise InvalidInput(f"{where} must be a positive integer")
    return v


def parse_save(data: dict) -> dict:
    """Check a save body: {annotation_id, version (null for a machine row), rect, size: [w, h], runs}."""
    unknown = set(data) - SAVE_KEYS
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(sorted(unknown))}")
    ann_id = _positive_int(data.get("annotation_id"), "annotation_id")
    version = data.get("version")
    if version is not None:
        version = _positive_int(version, "version")
    rect = data.get("rect")
    if not isinstance(rect, str):
        raise InvalidInput("rect must be the editor's crop, x0,y0,x1,y1 in image pixels")
    size = data.get("size")
    if not (isinstance(size, list) and len(size) == 2):
        raise InvalidInput("size must be [width, height] of the working grid")
    w, h = (_positive_int(v, f"size[{i}]") for i, v in enumerate(size))
    runs = data.get("runs")
    if not isinstance(runs, list) or not all(
        isinstance(r, int) and not isinstance(r, bool) and r >= 0 for r in runs
    ):
        raise InvalidInput("runs must be a list of run lengths (whole numbers >= 0)")
    if sum(runs) != w * h:
        raise InvalidInput(f"runs cover {sum(runs)} pixels, not the {w}x{h} = {w * h} of the grid")
    return {"annotation_id": ann_id, "version": version, "rect": rect, "size": (w, h), "runs": runs}


def _stale(row_id: int, detail: str) -> Conflict:
    return Conflict(
        f"mask {row_id} {detail}; nothing was saved, your edits are still in the editor: "
        "open the annotation in another tab to compare"
    )


def save_mask(db: Database, config, body: dict, user_id: int) -> dict:
    """Write the editor's mask (from parse_save): a new human correction of a machine row, or a new
    version of a human row. Returns {id, origin_id, version, area, box, message}."""
    row = _row(db, body["annotation_id"])
    image = get_image(db, row["image_id"])
    width, height = cache.image_size(config, image)
    crop = superpixels.crop_from_rect(body["rect"], width, height)
    if (crop.width, crop.height) != body["size"]:
        raise InvalidInput(
            f"size {list(body['size'])} is not the working grid {crop.width}x{crop.height} of rect {body['rect']}"
        )
    work = from_runs(body["runs"], crop.width, crop.height)
    machine = row["source"] in MACHINE_SOURCES
    with immediate(db):
        row = _row(db, row["id"])  # again inside the write lock: the compare-and-swap reads this
        full = apply_working(full_mask(row, width, height), crop, work)
        box = mask_box(full)
        if box is None:
            raise InvalidInput("the mask is empty; add superpixels to it, or rate the annotation bad instead")
        if machine:
            if row["deleted"]:
                raise Conflict(f"annotation {row['id']} was removed from its set; reload the page")
            other = db.execute(
                "SELECT id FROM annotations WHERE origin_id = ? AND kind = ?", [row["id"], KIND]
            ).fetchone()
            if other:
                raise _stale(row["id"], f"was already corrected by someone else (annotation {other[0]})")
            set_id = get_or_create_set(db, human_set_name(KIND), KIND, "human", created_by=user_id)
            new = annotation_row(
                set_id,
                row["image_id"],
                KIND,
                box,
                label=row["label"],
                parent_id=row["parent_id"],
                origin_id=row["id"],
                created_by=user_id,
                mask=full,
            )
            result = {"id": insert_annotation(db, new), "origin_id": row["id"], "version": 1}
            action, target, before = "edit_correct", result["id"], {"origin_id": row["id"]}
        else:
            if row["deleted"]:
                raise _stale(row["id"], "was deleted by someone else")
            if row["version"] != body["version"]:
                raise _stale(
                    row["id"],
                    f"was changed by someone else (version {row['version']}, you edited version {body['version']})",
                )
            if not move_at_version(db, row["id"], row["version"], box, None, mask=full):
                raise _stale(row["id"], "was changed by someone else")
            result = {"id": row["id"], "origin_id": row["origin_id"], "version": row["version"] + 1}
            action, target, before = "edit_save", row["id"], {"version": row["version"]}
            set_id = row["set_id"]
        area = int(full.sum())
        log_event(
            db,
            action,
            user_id=user_id,
            target_type="annotation",
            target_id=target,
            set_id=set_id,
            before={**before, "box": [row["x0"], row["y0"], row["x1"], row["y1"]]},
            after={"box": [round(v, 6) for v in box], "area": area, "version": result["version"]},
        )
    if machine and row["rating"] != "bad":
        # As for faces: the rating follows the commit; the human row already overrides the machine one.
        rate(db, row["id"], user_id, "bad")
    message = f"Saved the mask ({area} px)"
    return {**result, "area": area, "box": list(box), "message": message}
