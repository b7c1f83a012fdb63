"""The mask editor's page and endpoints: the crop's photo and superpixels, and saving a mask (JSON).

- `GET /edit/mask/<annotation_id>`: the page (static/js/mask_editor.js) for an object_mask row.
- `GET /edit/mask/image/<image_id>/photo?rect=x0,y0,x1,y1`: the crop on the working grid, JPEG.
- `GET /edit/mask/image/<image_id>/superpixels?rect=...`: SLIC labels of that crop, deflated
  little-endian uint16 (`X-Grid: width x height`, `X-Superpixels: n`). Both are computed once, cached
  on disk and sent with an ETag and `Cache-Control: private, immutable`: an image id fixes its pixels.
- `POST /edit/mask/save`: the corrected mask as runs over the working grid; 409 when the row changed
  since the page loaded it (nothing is written; the page keeps the edits).
"""

from flask import Blueprint, current_app, jsonify, render_template, request, send_file, url_for
from flask_login import current_user

from ..auth.redirects import safe_next
from ..db import get_db
from ..errors import OiapError
from ..images import cache
from ..images.allowed import checked_path
from . import mask_edits, superpixels
from .json_io import json_body, json_error
from .rotation import display_rotation

bp = Blueprint("masks", __name__, url_prefix="/edit/mask")

ONE_YEAR = 31_536_000


def _send(path, etag: str, mimetype: str):
    resp = send_file(path, mimetype=mimetype, etag=etag, conditional=True, max_age=ONE_YEAR)
    resp.cache_control.public = False
    resp.cache_control.private = True
    resp.cache_control.immutable = True
    return resp


def _image_crop(image_id: str):
    db = get_db()
    row = cache.get_image(db, image_id)
    checked_path(db, current_app.config, row)  # every read: the file may have been replaced since
    crop = superpixels.image_crop(current_app.config, row, request.args.get("rect"))
    mask_edits.check_crop(db, image_id, crop, *cache.image_size(current_app.config, row))
    return row, crop


@bp.route("/<int:annotation_id>")
def page(annotation_id: int):
    """Correct an object mask: superpixels and a brush over a crop around its box."""
    loaded = mask_edits.load(get_db(), current_app.config, annotation_id)
    crop, image = loaded["crop"], loaded["image"]
    rect = crop.rect()
    config = {
        "annotation": loaded["annotation"],
        "crop": {
            "rect": rect,
            "x0": crop.x0,
            "y0": crop.y0,
            "x1": crop.x1,
            "y1": crop.y1,
            "width": crop.width,
            "height": crop.height,
        },
        "runs": loaded["runs"],
        # The page turns the crop as the face editor turns the photo; the grid stays the file's.
        "rotation": display_rotation(current_app.config, image),
        "photo_url": url_for("masks.photo", image_id=image["id"], rect=rect),
        "labels_url": url_for("masks.labels", image_id=image["id"], rect=rect),
        "save_url": url_for("masks.save"),
    }
    return render_template(
        "editor/mask.html",
        config=config,
        image=image,
        size=loaded["size"],
        crop=crop,
        ann=loaded["annotation"],
        next_url=safe_next(request.args.get("next")),
    )


@bp.route("/image/<image_id>/photo")
def photo(image_id: str):
    """The crop's photo on the editor's working grid (JPEG)."""
    row, crop = _image_crop(image_id)
    return _send(superpixels.photo(current_app.config, row, crop), f"{image_id}-{crop.key()}", "image/jpeg")


@bp.route("/image/<image_id>/superpixels")
def labels(image_id: str):
    """The crop's superpixel labels (deflated little-endian uint16, row-major)."""
    row, crop = _image_crop(image_id)
    path = superpixels.labels(current_app.config, row, crop)
    etag = f"{image_id}-{crop.key()}-{superpixels.ALGORITHM}-{superpixels.n_segments(crop)}"
    resp = _send(path, etag, "application/octet-stream")
    resp.headers["X-Grid"] = f"{crop.width}x{crop.height}"
    return resp


@bp.route("/save", methods=["POST"])
def save():
    """Save a corrected mask (JSON); 409 when the mask changed since the editor loaded it."""
    try:
        body = mask_edits.parse_save(json_body(mask_edits.MAX_BODY_BYTES, "; save a simpler mask"))
        result = mask_edits.save_mask(get_db(), current_app.config, body, current_user.id)
    except OiapError as e:
        return json_error(e)
    return jsonify(result)
