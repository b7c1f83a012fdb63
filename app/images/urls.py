"""Image URLs for review pages: the images blueprint's resized versions and crops (cached, ETag)."""

import re

from flask import g, url_for
from markupsafe import Markup

from .cache import crop_region

FULL_SIZE = 1024
CROP_SIZE = 512
THUMB_SIZE = 256
# Margin around a face in the zoomed crop, as a fraction of the box's long side on each side.
CROP_PAD = 0.3
THUMB_PAD = 0.15


# Ids that url_for would leave as they are: their URLs are formatted directly (a set page needs sixty,
# and url_for costs more than drawing a face); any other id goes through url_for.
_PLAIN_ID = re.compile(r"[0-9A-Za-z_-]+")


def _prefix() -> str:
    """ "/images/" as url_for builds it in this request (it may be mounted under a script root)."""
    prefix = g.get("images_url_prefix")
    if prefix is None:
        prefix = g.images_url_prefix = url_for("images.resized", image_id="_", size=1)[:-3]
    return prefix


def full_url(image_id: str, size: int = FULL_SIZE) -> str:
    """URL of the whole image, at most `size` pixels on its long side."""
    if _PLAIN_ID.fullmatch(image_id):
        return f"{_prefix()}{image_id}/{int(size)}"
    return url_for("images.resized", image_id=image_id, size=size)


def crop(
    image_id: str, box: tuple[float, float, float, float], image_size: tuple[int, int], size: int, pad: float
) -> tuple[str, tuple[float, float, float, float]]:
    """URL of a crop around a normalised box, and the normalised region that crop shows."""
    region = crop_region(box, image_size[0], image_size[1], pad)
    box_arg = f"{box[0]:.6f},{box[1]:.6f},{box[2]:.6f},{box[3]:.6f}"
    if _PLAIN_ID.fullmatch(image_id):
        url = f"{_prefix()}{image_id}/crop?box={box_arg}&size={int(size)}&pad={pad}"
    else:
        url = url_for("images.crop", image_id=image_id, box=box_arg, size=size, pad=pad)
    return url, region


def crop_view(region: tuple[float, float, float, float], image_size: tuple[int, int]) -> dict:
    """A crop's normalised region in image pixels, formatted once: the SVG viewBox ("box") and the
    x/y/width/height attributes of the <image> that fills it ("attrs")."""
    w, h = image_size
    x0, y0, x1, y1 = region
    x, y, cw, ch = (f"{v:.2f}" for v in (x0 * w, y0 * h, (x1 - x0) * w, (y1 - y0) * h))
    return {"box": f"{x} {y} {cw} {ch}", "attrs": Markup(f'x="{x}" y="{y}" width="{cw}" height="{ch}"')}
