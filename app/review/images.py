"""Image URLs for review: the image routes' resized versions and crops.

The foundation's routes (/images/<id>/<size>, /images/<id>/crop?box=...&size=N) serve resized,
cached images with ETags. Until they are registered, a plain route of this blueprint stands in, so
review works either way; once they exist, they are used.
"""

import io
from pathlib import Path

from flask import current_app, send_file, url_for
from PIL import Image

from .. import REPO_ROOT
from ..db import get_db
from ..errors import InvalidInput, NotFound

FULL_SIZE = 1024
CROP_SIZE = 384
THUMB_SIZE = 160


def _foundation_routes() -> bool:
    # Decided once per app: whether the images blueprint's crop route is registered.
    ext = current_app.extensions
    if "review_image_routes" not in ext:
        ext["review_image_routes"] = any(
            r.rule.startswith("/images/<") for r in current_app.url_map.iter_rules()
        )
    return ext["review_image_routes"]


def box_param(box: tuple[float, float, float, float]) -> str:
    """A normalised box as the crop route's box parameter."""
    return ",".join(f"{v:.5f}" for v in box)


def full_url(image_id: str, size: int = FULL_SIZE) -> str:
    """URL of the whole image, at most `size` pixels on its long side."""
    if _foundation_routes():
        return f"/images/{image_id}/{size}"
    return url_for("review.image", image_id=image_id, size=size)


def crop_url(image_id: str, box: tuple[float, float, float, float], size: int = CROP_SIZE) -> str:
    """URL of a crop (normalised box) of the image, at most `size` pixels on its long side."""
    if _foundation_routes():
        return f"/images/{image_id}/crop?box={box_param(box)}&size={size}"
    return url_for("review.image_crop", image_id=image_id, box=box_param(box), size=size)


def _image_file(image_id: str) -> Path:
    row = get_db().execute("SELECT id, split, path FROM images WHERE id = ?", [image_id]).fetchone()
    if row is None:
        raise NotFound(f"no image {image_id}")
    try:
        from ..openimages import image_path  # the foundation's resolver, when present

        return image_path(current_app.config, {"id": row[0], "split": row[1], "path": row[2]})
    except ImportError:
        pass
    if not row[2]:
        raise NotFound(f"image {image_id} has no file path")
    p = Path(row[2])
    return p if p.is_absolute() else REPO_ROOT / p


def _send(im: Image.Image, size: int):
    im.thumbnail((size, size))
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=85)
    buf.seek(0)
    resp = send_file(buf, mimetype="image/jpeg", max_age=86400)
    return resp


def _size(size: int) -> int:
    if not 16 <= size <= 4096:
        raise InvalidInput("size is between 16 and 4096 pixels")
    return size


def send_resized(image_id: str, size: int):
    """The whole image, resized (stand-in for the images blueprint)."""
    with Image.open(_image_file(image_id)) as im:
        return _send(im.copy(), _size(size))


def send_crop(image_id: str, box: str, size: int):
    """A crop of the image, resized (stand-in for the images blueprint)."""
    try:
        x0, y0, x1, y1 = (float(v) for v in box.split(","))
    except ValueError:
        raise InvalidInput("box is x0,y0,x1,y1 in [0, 1]") from None
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise InvalidInput("box is x0,y0,x1,y1 in [0, 1] with x0 < x1 and y0 < y1")
    with Image.open(_image_file(image_id)) as im:
        w, h = im.size
        crop = im.crop((round(x0 * w), round(y0 * h), round(x1 * w), round(y1 * h)))
        return _send(crop, _size(size))
