"""Decoding for the image routes: no more pixels than the answer needs, and never past a cap.

A resized copy or a crop of a JPEG is decoded reduced (Pillow's draft mode: 1/2, 1/4 or 1/8 of the
size, chosen so that the decoded region still has twice the pixels the answer shows, as Pillow's own
`thumbnail` reducing gap does). An 8000x8000 JPEG asked for at 512 then decodes 1000x1000 pixels,
not 64 million. Whatever remains above IMAGE_MAX_DECODE_PIXELS (a PNG cannot be reduced while
decoding) is refused with a 400 that says so, so one request cannot take a gigabyte of memory.
A file that is not a readable image is a 404 that says so, not a 500.
"""

import math
from collections.abc import Mapping

from PIL import Image, UnidentifiedImageError

from ..errors import InvalidInput, NotFound
from .layout import image_path

DEFAULT_MAX_DECODE_PIXELS = 40_000_000
REDUCING_GAP = 2.0
# What Pillow raises for a file that is not an image or is cut short (truncated files are OSError).
DECODE_ERRORS = (
    UnidentifiedImageError,
    OSError,
    SyntaxError,
    ValueError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


def max_decode_pixels(config: Mapping) -> int:
    """The most pixels one request may decode (IMAGE_MAX_DECODE_PIXELS)."""
    return int(config.get("IMAGE_MAX_DECODE_PIXELS") or DEFAULT_MAX_DECODE_PIXELS)


def header_size(config: Mapping, row: Mapping) -> tuple[int, int]:
    """Width and height from the file's header; NotFound when it is not an image."""
    path = image_path(config, row)
    try:
        with Image.open(path) as im:
            return im.size
    except DECODE_ERRORS as e:
        raise NotFound(f"image {row['id']}: its file cannot be read as an image ({e})") from None


def load_reduced(
    config: Mapping, row: Mapping, side: int, box: tuple[int, int, int, int] | None = None
) -> Image.Image:
    """The image (or `box` of it, in stored pixels), decoded with at least REDUCING_GAP x side
    pixels on the long side where the file allows less than full size; loaded, file closed."""
    path = image_path(config, row)
    cap = max_decode_pixels(config)
    try:
        with Image.open(path) as im:
            width, height = im.size
            x0, y0, x1, y1 = box or (0, 0, width, height)
            k = min(1.0, REDUCING_GAP * side / max(1, x1 - x0, y1 - y0))
            if k < 1.0 and im.format == "JPEG":
                im.draft("RGB", (max(1, math.ceil(width * k)), max(1, math.ceil(height * k))))
            if im.width * im.height > cap:
                raise InvalidInput(
                    f"image {row['id']} has {width}x{height} pixels; decoding it would take "
                    f"{im.width * im.height} pixels, more than the {cap} one request may decode "
                    "(IMAGE_MAX_DECODE_PIXELS); ask for a smaller size or a JPEG copy"
                )
            s = im.width / width  # decoded pixels per stored pixel
            im.load()
            if box is None:
                return im
            if s == 1.0:
                return im.crop(box)
            # Exactly the box's region (the page maps overlays onto it), resampled from the reduced
            # pixels rather than rounded out to whole reduced pixels.
            size = (max(1, round((x1 - x0) * s)), max(1, round((y1 - y0) * s)))
            return im.resize(size, Image.Resampling.LANCZOS, box=(x0 * s, y0 * s, x1 * s, y1 * s))
    except InvalidInput:
        raise
    except DECODE_ERRORS as e:
        raise NotFound(f"image {row['id']}: its file cannot be decoded as an image ({e})") from None
