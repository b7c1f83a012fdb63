"""The editor pages and their JSON endpoints (save, place a new face)."""

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from ..annotations.rows import get_annotation
from ..auth.redirects import safe_next
from ..classes import choices
from ..db import get_db
from ..errors import InvalidInput, OiapError
from ..images import cache
from ..kinds import LANDMARK68_GROUPS, get_kind
from .edits import (
    CLASS_KINDS,
    MAX_BODY_BYTES,
    check_kind,
    get_image,
    load_faces,
    parse_place,
    parse_save,
    place_face,
    save_faces,
    save_message,
)
from .json_io import json_body, json_error
from .names import point_titles
from .rotation import display_rotation

bp = Blueprint("editor", __name__, url_prefix="/edit")

# Lines drawn between points, per kind: lists of (indices, closed).
_LINES = {
    "face_landmarks68": [[idx, closed] for idx, closed in LANDMARK68_GROUPS.values()],
    "face_landmarks5": [],
    "face_box": [],
    "object_box": [],
}


def _nouns(kind: str) -> tuple[str, str]:
    # What the editor calls one annotation of the kind, in messages.
    return ("box", "boxes") if kind in CLASS_KINDS else ("face", "faces")


def _safe_next(target: str | None) -> str | None:
    # Only same-site paths, as the login page does (a backslash is a slash to browsers).
    return safe_next(target)


def _image_url(image_id: str) -> str:
    # The resized route drops EXIF orientation (the original keeps it, and a browser would turn the
    # photo but not the stored coordinates) and keeps the pixel grid; it never upscales.
    return url_for("images.resized", image_id=image_id, size=2048)


def _machine_set() -> int | None:
    value = request.args.get("set")
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()):  # "²".isdigit() is True; int("²") fails
        raise InvalidInput(f"set must be a set id, not {value!r}")
    return int(value)


def _page(image_id: str, kind: str, focus_id: int | None = None):
    db = get_db()
    image = get_image(db, image_id)
    width, height = cache.image_size(current_app.config, image)
    loaded = load_faces(db, image_id, kind, focus_id, _machine_set())
    config = {
        "image": {
            "id": image_id,
            "url": _image_url(image_id),
            "width": width,
            "height": height,
            "rotation": display_rotation(current_app.config, image),
        },
        "kind": kind,
        "kind_title": get_kind(kind).title,
        "n_points": get_kind(kind).n_points,
        "names": point_titles(kind),
        "lines": _LINES[kind],
        "faces": loaded["faces"],
        "focus_key": loaded["focus_key"],
        "save_url": url_for("editor.save"),
        "faces_url": url_for("editor.faces", image_id=image_id, kind=kind, set=request.args.get("set")),
        "place_url": url_for("editor.place"),
        "noun": _nouns(kind),
    }
    if kind in CLASS_KINDS:
        # What a new box gets: the focused box's class, else the first box's, else Person. The class
        # list for the chooser (every boxable class, then the store's others) goes into the page.
        focus = next((f for f in loaded["faces"] if f["key"] == loaded["focus_key"]), None)
        first = focus or (loaded["faces"][0] if loaded["faces"] else None)
        config["default_label"] = (first or {}).get("label") or "/m/01g317"
    return render_template(
        "editor/edit.html",
        config=config,
        image=image,
        kind=kind,
        machine_set=loaded["machine_set"],
        next_url=_safe_next(request.args.get("next")),
        classes=choices(db) if kind in CLASS_KINDS else None,
    )


@bp.route("/annotation/<int:annotation_id>")
def annotation(annotation_id: int):
    """Edit an annotation: its image with every face of its kind, this one selected."""
    ann = get_annotation(get_db(), annotation_id)
    if ann["kind"] == "object_mask":  # masks have their own editor (mask_views.py)
        return redirect(url_for("masks.page", annotation_id=annotation_id, next=request.args.get("next")))
    return _page(ann["image_id"], check_kind(ann["kind"]), annotation_id)


@bp.route("/image/<image_id>")
def image(image_id: str):
    """Edit every face of a kind (?kind=, default face_landmarks68; ?set= a machine set) on an image."""
    kind = check_kind(request.args.get("kind", "face_landmarks68"))
    return _page(image_id, kind)


@bp.route("/image/<image_id>/faces")
def faces(image_id: str):
    """The faces the editor shows, as stored now (JSON), to reload after a conflict."""
    try:
        kind = check_kind(request.args.get("kind", "face_landmarks68"))
        db = get_db()
        get_image(db, image_id)
        return jsonify(load_faces(db, image_id, kind, None, _machine_set()))
    except OiapError as e:
        return json_error(e)


@bp.route("/save", methods=["POST"])
def save():
    """Save the editor's changed faces (JSON); 409 when a face changed since it was loaded."""
    try:
        body = parse_save(json_body(MAX_BODY_BYTES))
        result = save_faces(get_db(), body, current_user.id)
    except OiapError as e:
        return json_error(e)
    return jsonify({**result, "message": save_message(result["faces"], *_nouns(body["kind"]))})


@bp.route("/place", methods=["POST"])
def place():
    """Points for a newly drawn face box (JSON): the template fitted to five points or to the box."""
    try:
        body = parse_place(json_body(MAX_BODY_BYTES))
        db = get_db()
        image = get_image(db, body["image_id"])
        result = place_face(db, image, body["kind"], body["box"], current_app.config)
    except OiapError as e:
        return json_error(e)
    return jsonify(result)
