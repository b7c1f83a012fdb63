"""Image rows to files: lookup, resized and cropped JPEGs cached under CACHE_DIR.

Pixels are never rotated: stored coordinates are on the file's pixel grid, so a resized copy or a
crop keeps that grid (EXIF orientation is dropped, Open Images' Rotation is left to the page).
"""

import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from PIL import Image
from sqlite_utils import Database

from ..errors import InvalidInput, NotFound
from . import cache_bound, reading
from .layout import validate_image_id

SIZES = (128, 256, 512, 1024, 2048)
JPEG_QUALITY = 88
DEFAULT_PAD = 0.25


def get_image(db: Database, image_id: str) -> dict:
    """The image row; InvalidInput for a malformed id, NotFound for one not in the store."""
    validate_image_id(image_id)
    rows = list(db.query("SELECT * FROM images WHERE id = ?", [image_id]))
    if not rows:
        raise NotFound(f"no image {image_id} in the store")
    return rows[0]


def check_size(size: int) -> int:
    """Refuse a size that is not in the allowed list (so the cache cannot be filled at will)."""
    if size not in SIZES:
        raise InvalidInput(f"size {size} is not served; use one of {', '.join(map(str, SIZES))}")
    return size


def _atomic_save(im: Image.Image, dest: Path) -> None:
    # Two threads may render the same file: each writes its own temp file, the last rename wins.
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            im.save(f, "JPEG", quality=JPEG_QUALITY)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _rgb(im: Image.Image) -> Image.Image:
    return im if im.mode in ("RGB", "L") else im.convert("RGB")


def image_size(config: Mapping, row: dict) -> tuple[int, int]:
    """Width and height of an image: the row's, else read from its file's header (and set on the row).

    Never written to the store: pages that ask for a size are GETs, and a GET does not write.
    """
    if row.get("width") and row.get("height"):
        return row["width"], row["height"]
    w, h = reading.header_size(config, row)
    row["width"], row["height"] = w, h
    return w, h


def resized(config: Mapping, row: dict, size: int) -> Path:
    """A JPEG whose long side is at most `size`, rendered once and then served from the cache."""
    check_size(size)
    dest = Path(config["CACHE_DIR"]) / "images" / str(size) / row["id"][:2] / f"{row['id']}.jpg"
    if dest.is_file():
        cache_bound.used(dest)
        return dest
    im = reading.load_reduced(config, row, size)
    im.thumbnail((size, size), Image.Resampling.LANCZOS)
    _atomic_save(_rgb(im), dest)
    cache_bound.added(config, dest)
    return dest


def parse_box(value: str | None) -> tuple[float, float, float, float]:
    """x0,y0,x1,y1 normalised to [0, 1], with x0 < x1 and y0 < y1."""
    try:
        x0, y0, x1, y1 = (float(v) for v in (value or "").split(","))
    except ValueError:
        raise InvalidInput(f"box {value!r} must be x0,y0,x1,y1 (four numbers in [0, 1])") from None
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise InvalidInput(f"box {value!r} must satisfy 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1")
    return x0, y0, x1, y1


def crop_region(
    box: tuple[float, float, float, float], width: int, height: int, pad: float = DEFAULT_PAD
) -> tuple[float, float, float, float]:
    """The normalised region a crop shows: a square around the box, `pad` of its long side on each
    side, clipped to the image. Overlays map a point p to ((p.x - x0) / (x1 - x0), ...) on the crop."""
    bx0, by0, bx1, by1 = box[0] * width, box[1] * height, box[2] * width, box[3] * height
    side = max(bx1 - bx0, by1 - by0) * (1 + 2 * pad)
    cx, cy = (bx0 + bx1) / 2, (by0 + by1) / 2
    x0, x1 = max(0.0, cx - side / 2), min(float(width), cx + side / 2)
    y0, y1 = max(0.0, cy - side / 2), min(float(height), cy + side / 2)
    # Whole pixels, so the region matches the pixels the crop holds.
    x0, y0 = math.floor(x0), math.floor(y0)
    x1, y1 = min(width, max(x0 + 1, math.ceil(x1))), min(height, max(y0 + 1, math.ceil(y1)))
    return x0 / width, y0 / height, x1 / width, y1 / height


def cropped(
    config: Mapping, row: dict, box: tuple[float, float, float, float], size: int, pad: float = DEFAULT_PAD
) -> tuple[Path, tuple[float, float, float, float]]:
    """A cached JPEG of the padded box, long side at most `size`; returns it with its region."""
    check_size(size)
    if not 0 <= pad <= 2:
        raise InvalidInput(f"pad {pad} must be between 0 and 2")
    key = "-".join(f"{v:.4f}" for v in (*box, pad))
    dest = Path(config["CACHE_DIR"]) / "crops" / row["id"][:2] / f"{row['id']}-{key}-{size}.jpg"
    w, h = reading.header_size(config, row)
    region = crop_region(box, w, h, pad)
    if dest.is_file():
        cache_bound.used(dest)
        return dest, region
    px = (round(region[0] * w), round(region[1] * h), round(region[2] * w), round(region[3] * h))
    # Only the pixels the crop needs: a JPEG is decoded reduced when the crop is large (reading.py).
    crop = reading.load_reduced(config, row, size, px)
    crop.thumbnail((size, size), Image.Resampling.LANCZOS)
    _atomic_save(_rgb(crop), dest)
    cache_bound.added(config, dest)
    return dest, region
