"""Superpixels for the mask editor: SLIC over a box's crop, computed once and cached beside the crops.

The mask editor works on a crop of the image around the annotation's box (MARGIN of the box's long
side on each side, clipped to the image) at most MAX_SIDE pixels on its long side: the working grid.
For that grid this module makes the photo (a JPEG) and SLIC's label map, sent to the browser as
deflated little-endian uint16 labels (the browser inflates them with DecompressionStream); both are
cached under CACHE_DIR/crops/superpixels, keyed by image, crop and parameters, and bounded with the
other crops (images/cache_bound). The grid is the file's pixel grid (never rotated), scaled by
`scale` = working pixels per stored pixel (1 unless the crop is larger than MAX_SIDE).
"""

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InvalidInput
from ..images import cache, cache_bound, reading

MAX_SIDE = 1024
MARGIN = 0.15
MIN_MARGIN_PX = 8
# About one superpixel per SEGMENT_PX x SEGMENT_PX working pixels: small enough to follow an edge,
# large enough that a click covers a visible piece of the object.
SEGMENT_PX = 20
# A small object's crop is shown enlarged: it still gets enough superpixels to follow its outline.
MIN_SEGMENTS = 100
COMPACTNESS = 10.0
JPEG_QUALITY = 92
# Bump when the label computation changes, so cached maps of the old one are not served.
ALGORITHM = "slic1"


@dataclass(frozen=True)
class Crop:
    """A crop of an image in stored pixels (x0, y0, x1, y1) and its working grid (width, height)."""

    x0: int
    y0: int
    x1: int
    y1: int
    width: int
    height: int

    @property
    def scale(self) -> float:
        """Working pixels per stored pixel (the same on both axes up to rounding)."""
        return self.width / (self.x1 - self.x0)

    def rect(self) -> str:
        """The crop as the `rect` URL argument: x0,y0,x1,y1 in stored pixels."""
        return f"{self.x0},{self.y0},{self.x1},{self.y1}"

    def key(self) -> str:
        """The cache key part of this crop."""
        return f"{self.x0}-{self.y0}-{self.x1}-{self.y1}-{self.width}x{self.height}"


def _working_size(w: int, h: int) -> tuple[int, int]:
    k = min(1.0, MAX_SIDE / max(w, h))
    return max(1, round(w * k)), max(1, round(h * k))


def crop_for_box(box: tuple[float, float, float, float], width: int, height: int) -> Crop:
    """The editor's crop for a normalised box on an image of width x height stored pixels."""
    bx0, by0, bx1, by1 = box[0] * width, box[1] * height, box[2] * width, box[3] * height
    m = max(MIN_MARGIN_PX, MARGIN * max(bx1 - bx0, by1 - by0))
    x0, y0 = max(0, math.floor(bx0 - m)), max(0, math.floor(by0 - m))
    x1, y1 = min(width, math.ceil(bx1 + m)), min(height, math.ceil(by1 + m))
    return crop_from_rect(f"{x0},{y0},{x1},{y1}", width, height)


def crop_from_rect(rect: str | None, width: int, height: int) -> Crop:
    """A crop from the `rect` argument (x0,y0,x1,y1 whole stored pixels inside the image)."""
    try:
        x0, y0, x1, y1 = (int(v) for v in (rect or "").split(","))
    except ValueError:
        raise InvalidInput(f"rect {rect!r} must be x0,y0,x1,y1: four whole pixel numbers") from None
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise InvalidInput(
            f"rect {rect!r} must satisfy 0 <= x0 < x1 <= {width} and 0 <= y0 < y1 <= {height} (the image's size)"
        )
    return Crop(x0, y0, x1, y1, *_working_size(x1 - x0, y1 - y0))


def n_segments(crop: Crop) -> int:
    """How many superpixels SLIC aims for on the crop's working grid."""
    return max(MIN_SEGMENTS, round(crop.width * crop.height / SEGMENT_PX**2))


def _paths(config: Mapping, image_id: str, crop: Crop) -> tuple[Path, Path]:
    base = Path(config["CACHE_DIR"]) / "crops" / "superpixels" / image_id[:2]
    stem = f"{image_id}-{crop.key()}"
    return base / f"{stem}.jpg", base / f"{stem}-{ALGORITHM}-{n_segments(crop)}.bin"


def crop_rgb(config: Mapping, row: Mapping, crop: Crop) -> np.ndarray:
    """The crop's pixels on the working grid, RGB uint8 (height, width, 3)."""
    im = reading.load_reduced(config, row, max(crop.width, crop.height), (crop.x0, crop.y0, crop.x1, crop.y1))
    im = im.convert("RGB")
    if im.size != (crop.width, crop.height):
        im = im.resize((crop.width, crop.height), Image.Resampling.LANCZOS)
    return np.asarray(im)


def slic_labels(rgb: np.ndarray, segments: int) -> np.ndarray:
    """SLIC superpixels of an RGB image: uint16 labels 0..n-1, each label one connected region."""
    from skimage.segmentation import slic  # imported here: only the mask editor needs scikit-image

    labels = slic(rgb, n_segments=segments, compactness=COMPACTNESS, start_label=0, enforce_connectivity=True)
    # SLIC may leave label numbers unused: renumber densely so the browser's per-label index is small.
    _, dense = np.unique(labels, return_inverse=True)
    return dense.reshape(labels.shape).astype(np.uint16)


def encode_labels(labels: np.ndarray) -> bytes:
    """Labels as the browser reads them: zlib-deflated little-endian uint16, row-major."""
    return zlib.compress(labels.astype("<u2").tobytes(), 6)


def decode_labels(data: bytes, crop: Crop) -> np.ndarray:
    """The inverse of encode_labels for a crop's working grid."""
    return np.frombuffer(zlib.decompress(data), dtype="<u2").reshape(crop.height, crop.width)


def _write(dest: Path, data: bytes) -> None:
    # Two threads may compute the same crop: each writes its own temp file, the last rename wins.
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.{id(data)}.tmp")
    tmp.write_bytes(data)
    tmp.replace(dest)


def photo(config: Mapping, row: Mapping, crop: Crop) -> Path:
    """The crop's photo on the working grid, a cached JPEG."""
    jpg, _ = _paths(config, row["id"], crop)
    if jpg.is_file():
        cache_bound.used(jpg)
        return jpg
    im = Image.fromarray(crop_rgb(config, row, crop))
    jpg.parent.mkdir(parents=True, exist_ok=True)
    tmp = jpg.with_name(f"{jpg.name}.{id(im)}.tmp")
    im.save(tmp, "JPEG", quality=JPEG_QUALITY)
    tmp.replace(jpg)
    cache_bound.added(config, jpg)
    return jpg


def labels(config: Mapping, row: Mapping, crop: Crop) -> Path:
    """The crop's superpixel label map (encode_labels), computed once and cached."""
    _, dest = _paths(config, row["id"], crop)
    if dest.is_file():
        cache_bound.used(dest)
        return dest
    _write(dest, encode_labels(slic_labels(crop_rgb(config, row, crop), n_segments(crop))))
    cache_bound.added(config, dest)
    return dest


def image_crop(config: Mapping, row: dict, rect: str | None) -> Crop:
    """The crop named by a request's `rect` on an image row (its size read from the file if unknown)."""
    width, height = cache.image_size(config, row)
    return crop_from_rect(rect, width, height)
