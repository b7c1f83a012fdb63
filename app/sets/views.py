"""The dashboard (every annotation set with its counts) and a set's page of thumbnails."""

from urllib.parse import urlencode

from flask import Blueprint, render_template, request, url_for
from markupsafe import Markup, escape

from ..annotations import corrections
from ..annotations.drawing import figure, image_size, norm_box
from ..classes import check_label, class_counts, display_name
from ..db import get_db
from ..errors import InvalidInput
from ..images import urls
from .class_pages import class_page
from .dashboard import dashboard
from .pages import parse_page_key, set_page
from .queries import get_set_with_model

bp = Blueprint("sets", __name__)

PER_PAGE = 60


def _thumb(ann: dict, kind: str, review_base: str) -> dict:
    """One grid cell: its links and its SVG (the crop with the box and points) as markup."""
    size = image_size(ann)
    url, crop = urls.crop(
        ann["image_id"], norm_box(ann) or (0, 0, 1, 1), size, urls.THUMB_SIZE, urls.THUMB_PAD
    )
    fig = figure(ann, kind, size, (crop[2] - crop[0]) * size[0] / 90, contours=False)
    view = urls.crop_view(crop, size)
    svg = (
        f'<svg viewBox="{view["box"]}"><image href="{escape(url)}" loading="lazy" {view["attrs"]}'
        f' preserveAspectRatio="none"/>{fig["rect"]}{fig["points"]}</svg>'
    )
    rating = ann["rating"] or "unrated"
    score = f" · score {ann['score']:.3f}" if ann["score"] is not None else ""
    fixed = corrections.correction_label(ann["correction"]) if ann.get("correction") else None
    return {
        "ann": ann,
        "mark": rating,
        "corrected": fixed,
        "href": f"{review_base}?item={ann['id']}",
        "title": (f"{display_name(ann['label'])} · " if kind == "object_box" else "")
        + f"annotation {ann['id']} · {rating}{score}"
        + (f" · {fixed}" if fixed else ""),
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
    s = get_set_with_model(db, set_id)
    page = request.args.get("page", 1, type=int)
    if page < 1:
        raise InvalidInput("page starts at 1")
    after = parse_page_key(request.args.get("after"))
    before = parse_page_key(request.args.get("before"))
    label = request.args.get("label") or None
    classes = class_counts(db, set_id) if s["kind"] == "object_box" else []
    total = s["n_total"]
    if label is not None:
        # One class of object boxes: its own pages, and review links that keep to it.
        check_label(label, "label")
        if s["kind"] != "object_box":
            raise InvalidInput(f"label filters a set of object boxes; set {set_id} holds {s['kind']}")
        anns = class_page(db, set_id, label, page, PER_PAGE, after=after, before=before)
        total = next((c["total"] for c in classes if c["label"] == label), 0)
    else:
        anns = set_page(db, set_id, page, PER_PAGE, after=after, before=before)
    if s["source"] != "human":
        # Corrected machine annotations are drawn as corrected, and marked so.
        fixed = corrections.corrections_of(db, [a["id"] for a in anns])
        anns = [corrections.corrected_view(a, fixed.get(a["id"])) for a in anns]
    review_base = url_for("review.show", set_id=set_id)
    thumbs = [_thumb(ann, s["kind"], review_base) for ann in anns]
    if label is not None:
        for t in thumbs:
            t["href"] += "&" + urlencode({"label": label})
    pages = max(1, -(-total // PER_PAGE))
    return render_template(
        "sets/show.html", set=s, thumbs=thumbs, page=page, pages=pages, label=label, classes=classes
    )
