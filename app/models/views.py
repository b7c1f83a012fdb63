"""The models page: each model with its metrics, parent, training data and curves; admins promote from
here under the same rule as `flask oiap promote`; any model can be tried on any image (onnxruntime, in
the web process), its result drawn beside the image's other annotations."""

import json

import numpy as np
from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup

from ..annotations.drawing import figure, image_size
from ..auth import admin_required
from ..db import get_db
from ..errors import InvalidInput, OiapError
from ..export.files import class_names
from ..images.cache import get_image
from ..kinds import FACE_LABEL
from .charts import line_chart
from .evaluation import MAIN_METRIC, PromotionRefused, load_annotator, promote
from .evaluation_job import latest_evaluation, start_evaluation
from .registry import active_model, get_model, list_models
from .trying import check_before_try, gate, try_rgb

bp = Blueprint("models", __name__, url_prefix="/models")

TRY_SIZE = 1024
THUMB_SIZE = 128
TRY_CHOICES = 24
DRAWN_KINDS = ("face_box", "face_landmarks5", "face_landmarks68")


def _summary(m: dict) -> dict:
    """What the list shows of a model: main metric on test, training size."""
    key = MAIN_METRIC.get(m["kind"], (None,))[0]
    test = (m["metrics"] or {}).get("test") or {}
    training = (m["params"] or {}).get("training") or {}
    return m | {
        "main_key": key,
        "main_value": test.get(key) if key else None,
        "samples": training.get("samples"),
    }


@bp.route("/")
def index():
    """Every model, newest first, with its status, parent, training size and main test metric."""
    kind = request.args.get("kind") or None
    models = [_summary(m) for m in list_models(get_db(), kind)]
    return render_template("models/index.html", models=models, kind=kind)


def _charts(db, model: dict) -> dict:
    charts = {}
    series = []
    ced = ((model["metrics"] or {}).get("test") or {}).get("ced")
    if ced:
        series.append((f"model {model['id']}", ced["thresholds"], ced["fraction"]))
    active = active_model(db, model["kind"])
    if active and active["id"] != model["id"]:
        a_ced = ((active["metrics"] or {}).get("test") or {}).get("ced")
        if a_ced:
            series.append((f"active ({active['id']})", a_ced["thresholds"], a_ced["fraction"]))
    if series:
        charts["ced"] = line_chart(
            series, x_label="NME", y_label="share of faces", y_range=(0.0, 1.0), title="CED, test split"
        )
    params = model["params"] or {}
    curves = params.get("loss_curves") or ({"loss": params["loss_curve"]} if params.get("loss_curve") else {})
    if curves:
        charts["loss"] = line_chart(
            [(name, list(range(1, len(c) + 1)), c) for name, c in curves.items()],
            x_label="epoch",
            y_label="training loss",
            title="loss per epoch",
        )
    return charts


@bp.route("/<int:model_id>")
def show(model_id: int):
    """One model: metrics per split, CED and loss curves, provenance; promote (admins) and try forms."""
    db = get_db()
    model = get_model(db, model_id)
    parent = get_model(db, model["parent_id"]) if model["parent_id"] else None
    # Images to try it on, picked by thumbnail: test-split images first (the model never trained on them).
    images = [
        r | {"thumb": url_for("images.resized", image_id=r["id"], size=THUMB_SIZE)}
        for r in db.query(
            "SELECT id, split, title FROM images ORDER BY split = 'test' DESC, id LIMIT ?", [TRY_CHOICES]
        )
    ]
    return render_template(
        "models/show.html",
        model=_summary(model),
        parent=parent,
        active=active_model(db, model["kind"]),
        charts=_charts(db, model),
        images=images,
        main=MAIN_METRIC.get(model["kind"]),
        run=latest_evaluation(db, model_id),
        class_names=class_names(db) | {FACE_LABEL: "Human face"} if model["kind"] == "object_box" else {},
    )


@bp.route("/<int:model_id>/evaluate", methods=["POST"])
def evaluate_view(model_id: int):
    """Start evaluating the model on the test split in the background; the page shows its progress."""
    admin_required()
    try:
        run_id = start_evaluation(get_db(), current_app.config, model_id)
    except OiapError as e:
        flash(str(e), "error")
    else:
        flash(f"Evaluating model {model_id} on the test split (run {run_id}).", "info")
    return redirect(url_for("models.show", model_id=model_id))


@bp.route("/<int:model_id>/evaluation")
def evaluation(model_id: int):
    """The model's latest evaluation run (the fragment the page polls while it runs)."""
    db = get_db()
    model = get_model(db, model_id)
    run = latest_evaluation(db, model_id)
    resp = current_app.make_response(render_template("models/_evaluation.html", model=model, run=run))
    if run and run["status"] != "running" and request.args.get("was") == "running":
        # Finished while the page watched: reload it, so the new metrics and curves show.
        resp.headers["HX-Refresh"] = "true"
    return resp


@bp.route("/<int:model_id>/promote", methods=["POST"])
def promote_view(model_id: int):
    """Make the model active if it beats the active one on the test split (both measured now)."""
    admin_required()
    force = request.form.get("force") == "1"
    try:
        r = promote(get_db(), current_app.config, model_id, force=force, user_id=current_user.id)
    except PromotionRefused as e:
        flash(str(e), "error")
    else:
        if r.get("already_active"):
            flash(f"model {model_id} is already active", "info")
        elif r.get("active_id") is None:
            flash(f"model {model_id} is now active (there was no active model)", "info")
        else:
            verb = "forced active" if r["forced"] else "promoted"
            flash(
                f"model {model_id} {verb}: {r['metric']} {r['candidate']:.4f} vs {r['active']:.4f} "
                f"(model {r['active_id']}) on the {r['split']} split",
                "info",
            )
    return redirect(url_for("models.show", model_id=model_id))


def _stored_annotations(db, image_id: str) -> list[dict]:
    rows = db.query(
        "SELECT a.*, s.source AS set_source FROM annotations a JOIN annotation_sets s ON s.id = a.set_id"
        " WHERE a.image_id = ? AND a.deleted = 0 AND a.kind IN ('face_box', 'face_landmarks5', 'face_landmarks68')"
        " ORDER BY a.id",
        [image_id],
    )
    return [r | {"points": json.loads(r["points"]) if r["points"] else None} for r in rows]


def run_model(db, config, model: dict, image_row: dict, stored: list[dict]) -> tuple[list[dict], str]:
    """The model's annotations of one image (normalised, as stored rows look) and where its boxes came
    from. Landmark models run on the image's stored face boxes (not rated bad), else on the active
    detector's."""
    rgb = try_rgb(db, config, image_row)  # reduced, under the pixel cap (trying.py)
    h, w = rgb.shape[:2]
    scale = np.array([w, h, w, h], dtype=np.float64)
    annotator = load_annotator(model)
    kind = model["kind"]
    if kind in ("face_box", "face_landmarks5"):
        out = []
        for box, score, pts in annotator.detect(rgb):
            b = (np.asarray(box) / scale).tolist()
            points = [[x / w, y / h, 1] for x, y in pts] if kind == "face_landmarks5" else None
            out.append({"x0": b[0], "y0": b[1], "x1": b[2], "y1": b[3], "points": points, "score": score})
        return out, "the model's own detections"
    if kind != "face_landmarks68":
        raise InvalidInput(f"trying {kind} models is not supported here")
    boxes = [
        np.array([a["x0"], a["y0"], a["x1"], a["y1"]]) * scale
        for a in stored
        if a["kind"] == "face_box" and a["x0"] is not None and a["rating"] != "bad"
    ]
    source = "the image's stored face boxes"
    if not boxes:
        detector = active_model(db, "face_box")
        if detector is None:
            raise InvalidInput("the image has no face boxes and there is no active face_box model")
        boxes = [np.asarray(b) for b, _s, _p in load_annotator(detector).detect(rgb)]
        source = f"face boxes from the active detector (model {detector['id']})"
    preds = annotator.predict_many(rgb, boxes) if boxes else []
    out = []
    for b, p in zip(boxes, preds, strict=True):
        nb = (b / scale).tolist()
        points = [[float(x) / w, float(y) / h, 1] for x, y in np.asarray(p)]
        out.append({"x0": nb[0], "y0": nb[1], "x1": nb[2], "y1": nb[3], "points": points, "score": None})
    return out, source


def _layer(anns: list[dict], size, point_r: float) -> Markup:
    parts = []
    for a in anns:
        kind = a.get("kind") or (
            "face_landmarks68" if a.get("points") and len(a["points"]) == 68 else "face_box"
        )
        f = figure(a, kind, size, point_r)
        parts.append(f"{f['rect']}{f['lines']}{f['points']}")
    return Markup("".join(parts))


@bp.route("/<int:model_id>/try")
def try_model(model_id: int):
    """Run the model on an image now and draw its result beside the image's stored annotations."""
    db = get_db()
    model = get_model(db, model_id)
    image_id = (request.args.get("image_id") or "").strip()
    if not image_id:
        raise InvalidInput("choose an image (image_id)")
    row = get_image(db, image_id)
    stored = _stored_annotations(db, image_id)
    with gate(current_app).slot(current_user.id):  # one per user, a small pool in all (trying.py)
        check_before_try(model)
        result, source = run_model(db, current_app.config, model, row, stored)
    size = image_size(row)
    point_r = max(size) / 400
    # Beside the result, only what the store holds of the model's own kind: one overlay per figure.
    stored = [a for a in stored if a["kind"] == model["kind"]]
    return render_template(
        "models/try.html",
        model=model,
        image=row,
        size=size,
        image_url=url_for("images.resized", image_id=image_id, size=TRY_SIZE),
        stored_layer=_layer(stored, size, point_r),
        result_layer=_layer(result, size, point_r),
        n_stored=len(stored),
        n_result=len(result),
        source=source,
    )
