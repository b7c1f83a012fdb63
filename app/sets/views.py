"""The dashboard (every annotation set with its counts) and a set's page of thumbnails."""

from flask import Blueprint, render_template, request, url_for
from markupsafe import Markup, escape

from ..db import get_db
from ..errors import InvalidInput
from ..review import images
from ..review.drawing import figure, image_size, norm_box
from ..review.queries import get_review_set, parse_page_key, set_page
from .dashboard import dashboard

bp = Blueprint("sets", __name__)

PER_PAGE = 60


def _thumb(ann: dict, kind: str, review_base: str) -> dict:
    """One grid cell: its links and its SVG (the crop with the box and points) as markup."""
    size = image_size(ann)
    url, crop = images.crop(
        ann["image_id"], norm_box(ann) or (0, 0, 1, 1), size, images.THUMB_SIZE, images.THUMB_PAD
    )
    fig = figure(ann, kind, size, (crop[2] - crop[0]) * size[0] / 90, contours=False)
    view = images.crop_view(crop, size)
    svg = (
        f'<svg viewBox="{view["box"]}"><image href="{escape(url)}" loading="lazy" {view["attrs"]}'
        f' preserveAspectRatio="none"/>{fig["rect"]}{fig["points"]}</svg>'
    )
    rating = ann["rating"] or "unrated"
    score = f" · score {ann['score']:.3f}" if ann["score"] is not None else ""
    return {
        "ann": ann,
        "mark": rating,
        "href": f"{review_base}?item={ann['id']}",
        "title": f"annotation {ann['id']} · {rating}{score}",
        "svg": Markup(svg),
    }


@bp.route("/")
def index():
    """Per kind, the set to review now and the others folded, with counts and progress."""
    return render_template("sets/index.html", kinds=dashboard(get_db()))


@bp.route("/sets/<int:set_id>")
def show(set_id: int):
    """A page of the set's annotations as thumbnails, marked good, bad or unrated."""
    db = get_db()
    s = get_review_set(db, set_id)
    page = request.args.get("page", 1, type=int)
    if page < 1:
        raise InvalidInput("page starts at 1")
    after = parse_page_key(request.args.get("after"))
    before = parse_page_key(request.args.get("before"))
    anns = set_page(db, set_id, page, PER_PAGE, after=after, before=before)
    review_base = url_for("review.show", set_id=set_id)
    thumbs = [_thumb(ann, s["kind"], review_base) for ann in anns]
    pages = max(1, -(-s["n_total"] // PER_PAGE))
    return render_template("sets/show.html", set=s, thumbs=thumbs, page=page, pages=pages)
