"""The review page: one item at a time, rated with one key; htmx swaps in the next item."""

from urllib.parse import urlencode

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup

from ..annotations import corrections
from ..annotations.drawing import figure, image_size, norm_box, px_box, rect_svg
from ..annotations.mask_drawing import mask_svg, shown_mask
from ..annotations.rows import rate_many, undo_last_rating
from ..classes import class_counts, display_name
from ..db import get_db
from ..errors import InvalidInput, NotFound, OiapError
from ..images import urls as images
from ..kinds import get_kind
from ..sets.queries import get_set_with_model
from ..web import wants_fragment
from ..wording import plural
from . import queries
from .zoom import zoom_steps

bp = Blueprint("review", __name__)

TARGET = "review-item"
TRAIL_MAX = 30
# The zoomed crop's margin around the face: tight, so eyes and lips get the pixels (z zooms further).
REVIEW_PAD = 0.12


def _trail(value: str | None) -> list[int]:
    # The ids shown before the current one, most recent last: what ← goes back to.
    out = []
    for part in (value or "").split(","):
        # isascii: str.isdigit also accepts "²", which int() refuses.
        if part.strip().isascii() and part.strip().isdigit():
            out.append(int(part))
    return out[-TRAIL_MAX:]


def _cursor(value: str | None) -> tuple[int, int] | None:
    # "segment:annotation id" of the item on screen; the queue continues after it.
    if not value:
        return None
    try:
        seg, ann_id = value.split(":")
        return int(seg), int(ann_id)
    except ValueError:
        raise InvalidInput(f"bad cursor {value!r}") from None


def _segment_of(filters: queries.Filters, rating: str | None) -> int:
    segs = queries.SEGMENTS[filters.status]
    return segs.index(rating) if rating in segs else 0


def _urls(set_id: int, params: dict, cursor: str | None, item_id: int | None, trail: list[int]) -> dict:
    # Built from one url_for: a dozen url_for calls per item cost more than the queries.
    base = url_for("review.show", set_id=set_id)
    urls = {
        "rate": base + "/rate",
        "undo": base + "/undo",
        "image_good": base + "/image-good",
        "class_good": base + "/class-good",
        "back": None,
    }
    if item_id is not None:
        urls["skip"] = base + "?" + urlencode({**params, "cursor": cursor, "trail": _join(trail + [item_id])})
        # The editor's back (b) returns to this item, showing what was saved (corrected by NAME), with
        # the same trail and filters; the queue moves on from there.
        urls["here"] = here = base + "?" + urlencode({**params, "item": item_id, "trail": _join(trail)})
        urls["edit"] = f"/edit/annotation/{item_id}?" + urlencode({"next": here})
    if trail:
        urls["back"] = base + "?" + urlencode({**params, "item": trail[-1], "trail": _join(trail[:-1])})
    return urls


def _join(ids: list[int]) -> str:
    return ",".join(map(str, ids[-TRAIL_MAX:]))


def active_filters(filters: queries.Filters) -> list[str]:
    """The filters that narrow the queue, in words (the order only sorts it)."""
    out = []
    if filters.status != "unrated":
        out.append(f"showing {queries.STATUSES[filters.status]}")
    if filters.split:
        out.append(f"split {filters.split}")
    if filters.min_score is not None:
        out.append(f"score ≥ {filters.min_score:g}")
    if filters.max_score is not None:
        out.append(f"score ≤ {filters.max_score:g}")
    if filters.label:
        out.append(f"class {display_name(filters.label)}")
    return out


def _context(
    db, review_set, filters, shown, trail, preload_id=None, message=None, holder=None, confirm_all=None
) -> dict:
    """What _item.html needs: the item, its drawings and image URLs, and the queue state."""
    ctx = {
        "set": review_set,
        "filters": filters,
        "active_filters": active_filters(filters),
        "clear_url": url_for("review.show", set_id=review_set["id"]),
        "confirm_all": confirm_all,
        "params": filters.as_params(),
        "trail": trail,
        "message": message,
        "item": None,
        "holder": holder,
        "preload": [],
    }
    cols = ("n_total", "n_good", "n_bad", "n_corrected")
    counts = db.execute(f"SELECT {', '.join(cols)} FROM annotation_sets WHERE id = ?", [review_set["id"]])
    # Counters as they are after this request's write, not as they were when the set was read.
    ctx["set"] = dict(review_set, **dict(zip(cols, counts.fetchone(), strict=True)))
    if review_set["source"] == "human" and (shown is None or not wants_fragment(TARGET)):
        # Authors never rate their own annotations: an empty queue and the page's counters say how
        # many are theirs (a count over the set's unrated rows: not on each rating's fragment).
        ctx["authors"] = corrections.author_counts(db, review_set["id"], current_user.id)
    if shown is None:
        ctx["urls"] = _urls(review_set["id"], ctx["params"], None, None, trail)
        return ctx
    seg, ann_id = shown
    ctx["urls"] = _urls(review_set["id"], ctx["params"], f"{seg}:{ann_id}", ann_id, trail)
    ann = queries.item(db, ann_id, review_set["id"])
    if review_set["source"] != "human":
        # A machine annotation a person fixed is shown as fixed: its correction's box and points.
        fixed = corrections.corrections_of(db, [o["id"] for o in ann["others"]] or [ann_id])
        ann = corrections.corrected_view(ann, fixed.get(ann_id))
        ann["others"] = [corrections.corrected_view(o, fixed.get(o["id"])) for o in ann["others"]]
    size = image_size(ann)
    w, h = size
    crop_url, crop = _crop(ann, size)
    ctx.update(
        item=ann,
        cursor=f"{seg}:{ann_id}",
        size=size,
        fig=figure(ann, review_set["kind"], size, (crop[2] - crop[0]) * w / 140),
        mask=mask_svg(shown_mask(db, ann)),
        others=Markup(
            "".join(
                rect_svg(
                    px_box(o, size),
                    "ann"
                    + (" current" if o["id"] == ann_id else "")
                    + (f" {o['rating']}" if o["rating"] else "")
                    + (" corrected" if o.get("correction") else ""),
                    o["id"],
                )
                for o in ann["others"]
            )
        ),
        n_others=len(ann["others"]),
        crop=crop,
        crop_view=images.crop_view(crop, size),
        zoom=zoom_steps(ann.get("points"), size, crop),
        full_url=images.full_url(ann["image_id"]),
        crop_url=crop_url,
        n_points=get_kind(review_set["kind"]).n_points,
        correction=corrections.correction_label(ann["correction"]) if ann.get("correction") else None,
        item_class=display_name(ann.get("label")) if review_set["kind"] == "object_box" else None,
    )
    if preload_id is not None:
        nxt = queries.preview(db, preload_id)
        ctx["preload"] = [images.full_url(nxt["image_id"]), _crop(nxt, image_size(nxt))[0]]
    return ctx


def _crop(ann: dict, size: tuple[int, int]):
    box = norm_box(ann) or (0.0, 0.0, 1.0, 1.0)
    return images.crop(ann["image_id"], box, size, images.CROP_SIZE, REVIEW_PAD)


def _render(ctx: dict):
    if wants_fragment(TARGET):
        resp = current_app.make_response(render_template("review/_item.html", **ctx))
    else:
        page = dict(queue_orders=queries.ORDERS, queue_statuses=queries.STATUSES, queue_splits=queries.SPLITS)
        if ctx["set"]["kind"] == "object_box":
            # The class filter's choices with their counts: one GROUP BY over the set, full pages only.
            page["queue_classes"] = class_counts(get_db(), ctx["set"]["id"])
        resp = current_app.make_response(render_template("review/page.html", **ctx, **page))
    resp.headers["Vary"] = "HX-Request"
    return resp


def _next(db, review_set, filters, cursor, trail, message=None):
    shown, preload_id = queries.claim_next(
        db, review_set, current_user.id, filters, cursor, current_app.config["CLAIM_SECONDS"]
    )
    return _render(_context(db, review_set, filters, shown, trail, preload_id, message))


def _show(db, review_set, filters, ann_id, trail, message=None, confirm_all=None):
    holder_id = queries.claim_item(db, ann_id, current_user.id, current_app.config["CLAIM_SECONDS"])
    holder = None
    if holder_id is not None:
        row = db.execute("SELECT username FROM users WHERE id = ?", [holder_id]).fetchone()
        holder = row[0] if row else str(holder_id)
    rating = db.execute("SELECT rating FROM annotations WHERE id = ?", [ann_id]).fetchone()
    seg = _segment_of(filters, rating[0] if rating else None)
    return _render(
        _context(db, review_set, filters, (seg, ann_id), trail, None, message, holder, confirm_all)
    )


@bp.route("/review/<int:set_id>")
def show(set_id: int):
    """The review page (or, for htmx, the item fragment): ?item= shows one item, ?cursor= skips past one."""
    db = get_db()
    review_set = get_set_with_model(db, set_id)
    filters = queries.parse_filters(request.args)
    trail = _trail(request.args.get("trail"))
    item = request.args.get("item", type=int)
    if item is not None:
        return _show(db, review_set, filters, item, trail)
    return _next(db, review_set, filters, _cursor(request.args.get("cursor")), trail)


def _after_post(set_id: int, filters: queries.Filters, cursor: str | None, trail: list[int]):
    # Plain form posts (no JavaScript) redirect to the next item (PRG).
    args = dict(filters.as_params())
    if cursor:
        args["cursor"] = cursor
    if trail:
        args["trail"] = ",".join(map(str, trail))
    return redirect(url_for("review.show", set_id=set_id, **args))


@bp.route("/review/<int:set_id>/rate", methods=["POST"])
def rate_item(set_id: int):
    """Rate the item on screen good or bad, then show the next one."""
    db = get_db()
    review_set = get_set_with_model(db, set_id)
    filters = queries.parse_filters(request.form)
    ann_id = request.form.get("annotation_id", type=int)
    if ann_id is None:
        raise InvalidInput("annotation_id is missing")
    trail = _trail(request.form.get("trail"))
    cursor = request.form.get("cursor")
    fragment = wants_fragment(TARGET)
    try:
        if fragment:
            # The hot path: rating and claiming the next item share one write transaction.
            shown, preload_id = queries.rate_and_claim_next(
                db,
                review_set,
                current_user.id,
                ann_id,
                request.form.get("value", ""),
                filters,
                _cursor(cursor),
                current_app.config["CLAIM_SECONDS"],
            )
        else:
            queries.item(db, ann_id, set_id)  # NotFound unless the annotation is in this set
            queries.rate_unclaimed(db, ann_id, current_user.id, request.form.get("value", ""), set_id)
    except OiapError as e:
        # htmx never swaps a 4xx, so the item is shown again with the reason.
        if not fragment or isinstance(e, NotFound):
            raise
        return _show(db, review_set, filters, ann_id, trail, message=str(e))
    trail = (trail + [ann_id])[-TRAIL_MAX:]
    if not fragment:
        return _after_post(set_id, filters, cursor, trail)
    return _render(_context(db, review_set, filters, shown, trail, preload_id))


@bp.route("/review/<int:set_id>/image-good", methods=["POST"])
def image_good(set_id: int):
    """Rate every annotation of the set on the item's image good ("all faces in this image are good")."""
    db = get_db()
    review_set = get_set_with_model(db, set_id)
    filters = queries.parse_filters(request.form)
    ann_id = request.form.get("annotation_id", type=int)
    if ann_id is None:
        raise InvalidInput("annotation_id is missing")
    ann = queries.item(db, ann_id, set_id)
    ids = queries.image_ids_to_rate(db, set_id, ann["image_id"], current_user.id, review_set["source"])
    # The face on screen first: undo shows it again.
    ids = sorted(ids, key=lambda i: i != ann_id)
    if len(ids) > 1 and request.form.get("confirm") != str(len(ids)):
        # More than the face on screen: ask first (a again, or the button, confirms this many).
        message = (
            f"{len(ids)} annotations on image {ann['image_id']} would be rated good, not only this one:"
            f" press a again to rate all {len(ids)} good, or any other key to go on."
        )
        return _show(db, review_set, filters, ann_id, _trail(request.form.get("trail")), message, len(ids))
    rate_many(db, ids, current_user.id, "good")
    trail = (_trail(request.form.get("trail")) + [ann_id])[-TRAIL_MAX:]
    cursor = request.form.get("cursor")
    message = (
        f"Rated {plural(len(ids), 'annotation')} on image {ann['image_id']} good (u undoes all of them)."
    )
    if not wants_fragment(TARGET):
        flash(message, "info")  # the redirect's page says it, as the fragment does
        return _after_post(set_id, filters, cursor, trail)
    return _next(db, review_set, filters, _cursor(cursor), trail, message)


@bp.route("/review/<int:set_id>/class-good", methods=["POST"])
def class_good(set_id: int):
    """Rate every box of the item's class on the item's image good ("all boxes of this class in this image
    are good"): one action, so one undo (u) takes all of them back."""
    db = get_db()
    review_set = get_set_with_model(db, set_id)
    filters = queries.parse_filters(request.form)
    ann_id = request.form.get("annotation_id", type=int)
    if ann_id is None:
        raise InvalidInput("annotation_id is missing")
    ann = queries.item(db, ann_id, set_id)
    if not ann.get("label"):
        raise InvalidInput(f"annotation {ann_id} has no class; use a (all in this image) instead")
    ids = queries.image_ids_to_rate(
        db, set_id, ann["image_id"], current_user.id, review_set["source"], label=ann["label"]
    )
    ids = sorted(ids, key=lambda i: i != ann_id)  # the box on screen first: undo shows it again
    name = display_name(ann["label"])
    boxes = plural(len(ids), name + " box", name + " boxes")
    if len(ids) > 1 and request.form.get("confirm") != str(len(ids)):
        # As `a` does: more than the box on screen, so ask first (c again confirms this many). g
        # carries the count to _class_good.html, leaving _show's signature as the queue has it.
        g.confirm_class = len(ids)
        message = (
            f"{boxes} on image {ann['image_id']} would be rated good, not only this one:"
            f" press c again to rate all {len(ids)} good, or any other key to go on."
        )
        return _show(db, review_set, filters, ann_id, _trail(request.form.get("trail")), message)
    rate_many(db, ids, current_user.id, "good")
    trail = (_trail(request.form.get("trail")) + [ann_id])[-TRAIL_MAX:]
    cursor = request.form.get("cursor")
    message = f"Rated {boxes} on image {ann['image_id']} good (u undoes all of them)."
    if not wants_fragment(TARGET):
        return _after_post(set_id, filters, cursor, trail)
    return _next(db, review_set, filters, _cursor(cursor), trail, message)


@bp.route("/review/<int:set_id>/undo", methods=["POST"])
def undo(set_id: int):
    """Undo my last rating in this set and show that item again."""
    db = get_db()
    review_set = get_set_with_model(db, set_id)
    filters = queries.parse_filters(request.form)
    trail = _trail(request.form.get("trail"))
    done = undo_last_rating(db, current_user.id, set_id)
    if done is None:
        message = "Nothing to undo."
        ann_id = request.form.get("annotation_id", type=int)
        if ann_id is None:
            return _next(db, review_set, filters, None, trail, message)
    else:
        ann_id = done["annotation_id"]
        if len(done["annotation_ids"]) > 1:
            message = f"Undid your rating '{done['undone']}' of {plural(len(done['annotation_ids']), 'annotation')}."
        else:
            message = f"Undid your rating '{done['undone']}' of annotation {ann_id}."
        if trail and trail[-1] == ann_id:
            trail = trail[:-1]
    if not wants_fragment(TARGET):
        return redirect(url_for("review.show", set_id=set_id, item=ann_id, **filters.as_params()))
    return _show(db, review_set, filters, ann_id, trail, message)
