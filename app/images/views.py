"""Image routes, for every page that shows a photo (review, editor, set pages).

- `GET /images/<image_id>`: the original file as stored (JPEG or PNG). Pixels are not rotated;
  a JPEG's EXIF orientation is left in the file, so pages that overlay annotations should prefer
  the resized route (or set CSS `image-orientation: none`).
- `GET /images/<image_id>/<size>`: a JPEG whose long side is at most size, size one of
  128, 256, 512, 1024, 2048 (`url_for("images.resized", image_id=..., size=512)`). Never upscaled,
  EXIF dropped, same pixel grid as the stored coordinates (normalised coordinates apply as they are).
- `GET /images/<image_id>/crop?box=x0,y0,x1,y1&size=256&pad=0.25`: a square crop around a
  normalised box, padded by pad x its long side on each side, clipped to the image; the header
  `X-Crop-Box: x0,y0,x1,y1` gives the normalised region shown, so overlays map a point (x, y) to
  ((x - x0) / (x1 - x0), (y - y0) / (y1 - y0)) on the crop (`cache.crop_region` computes the same).
- `GET /images/<image_id>/meta`: JSON {id, split, width, height, rotation, licence, author,
  author_url, title, url}. `rotation` is Open Images' display rotation in degrees; the page may
  rotate image and overlay together, stored coordinates never change with it.

Every image response has an ETag and `Cache-Control: private, max-age=31536000, immutable` (an
ImageID never changes content), and answers 304 to a matching If-None-Match. Resized copies and
crops are cached under CACHE_DIR. A malformed id is a 400, an id not in the store a 404; only
images in the store are served, from the folders that `layout.image_path` allows, and only
files that `allowed.checked_path` passes at this read (inside an image folder, a JPEG or PNG):
anything else is a 404.
"""

from flask import Blueprint, current_app, jsonify, request, send_file

from ..db import get_db
from . import cache
from .allowed import checked_path
from .layout import validate_image_id

bp = Blueprint("images", __name__, url_prefix="/images")

ONE_YEAR = 31_536_000


def _send(path, etag: str, mimetype: str | None = None):
    # The file's own mtime must not decide freshness: the id does.
    resp = send_file(path, mimetype=mimetype, etag=etag, conditional=True, max_age=ONE_YEAR)
    resp.cache_control.public = False
    resp.cache_control.private = True
    resp.cache_control.immutable = True
    return resp


@bp.route("/<image_id>")
def original(image_id: str):
    """The original file."""
    db = get_db()
    row = cache.get_image(db, image_id)
    return _send(checked_path(db, current_app.config, row), f"{image_id}-orig")


@bp.route("/<image_id>/<int:size>")
def resized(image_id: str, size: int):
    """A JPEG with the long side at most size."""
    validate_image_id(image_id)
    cache.check_size(size)
    if request.if_none_match.contains(f"{image_id}-{size}"):
        # Skip the lookup and the render: the id fixes the content.
        return _send_not_modified(f"{image_id}-{size}")
    db = get_db()
    row = cache.get_image(db, image_id)
    checked_path(db, current_app.config, row)  # every read: the file may have been replaced since
    return _send(cache.resized(current_app.config, row, size), f"{image_id}-{size}", "image/jpeg")


@bp.route("/<image_id>/crop")
def crop(image_id: str):
    """A padded square crop around a normalised box, as JPEG."""
    box = cache.parse_box(request.args.get("box"))
    size = request.args.get("size", 256, type=int)
    pad = request.args.get("pad", cache.DEFAULT_PAD, type=float)
    db = get_db()
    row = cache.get_image(db, image_id)
    checked_path(db, current_app.config, row)
    path, region = cache.cropped(current_app.config, row, box, size, pad)
    etag = path.stem
    resp = _send(path, etag, "image/jpeg")
    resp.headers["X-Crop-Box"] = ",".join(f"{v:.6f}" for v in region)
    return resp


@bp.route("/<image_id>/meta")
def meta(image_id: str):
    """Size, split, rotation and attribution of an image, as JSON."""
    db = get_db()
    row = cache.get_image(db, image_id)
    if not (row.get("width") and row.get("height")):
        checked_path(db, current_app.config, row)  # the size is read from the file
    cache.image_size(current_app.config, row)
    keys = ("id", "split", "width", "height", "rotation", "licence", "author", "author_url", "title", "url")
    return jsonify({k: row[k] for k in keys})


def _send_not_modified(etag: str):
    resp = current_app.response_class(status=304)
    resp.set_etag(etag)
    resp.cache_control.private = True
    resp.cache_control.max_age = ONE_YEAR
    resp.cache_control.immutable = True
    return resp
