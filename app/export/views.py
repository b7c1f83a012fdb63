"""The export page for admins: the same merged rows and writers as `flask oiap export`, streamed."""

from flask import Blueprint, Response, current_app, render_template, request

from ..auth import admin_blueprint
from ..db import connect, get_db
from ..errors import InvalidInput
from ..kinds import KINDS
from .files import SUFFIX, ImageInfo, class_list_for, class_names, select_rows, text_chunks, yolo_zip_chunks
from .merge import DEFAULT_UNRATED_WEIGHT
from .writers import CLASS_KINDS, FORMATS, YOLO_FORMATS

bp = admin_blueprint(Blueprint("export", __name__, url_prefix="/export"))

MIME = {
    "csv": "text/csv",
    "openimages": "text/csv",
    "original-csv": "text/csv",
    "coco": "application/json",
    "dlib-xml": "application/xml",
    "yolo-pose": "application/zip",
    "yolo": "application/zip",
    "yolo-seg": "application/zip",
}
SPLIT_CHOICES = ("train", "validation", "train,validation", "test")


@bp.route("/")
def index():
    """The export form: kind, format, split, sets, unrated rows."""
    sets = list(
        get_db().query("SELECT id, name, kind, source, n_total FROM annotation_sets ORDER BY kind, name")
    )
    return render_template(
        "export/index.html",
        kinds=KINDS,
        formats=FORMATS,
        splits=SPLIT_CHOICES,
        sets=sets,
        unrated_weight=DEFAULT_UNRATED_WEIGHT,
    )


@bp.route("/download")
def download():
    """Stream an export file (GET: it changes nothing, so a plain link or form can fetch it)."""
    args = request.args
    if "kind" not in args:
        # A bare visit (a bookmark, a link without a query) gets the form rather than an error.
        return index()
    kind = args.get("kind", "")
    fmt = args.get("format", "csv")
    if kind not in KINDS:
        raise InvalidInput(f"unknown kind {kind!r}; use one of: {', '.join(KINDS)}")
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}")
    # part=classes: the class list (LabelName,DisplayName) that goes with a class kind's export, as
    # the CLI writes it beside an openimages file; one download is one file, so it is a second link.
    classes_only = args.get("part") == "classes"
    if classes_only and kind not in CLASS_KINDS:
        raise InvalidInput(
            f"{kind} has no classes: the class list is for {' and '.join(sorted(CLASS_KINDS))}"
        )
    splits = tuple(s for s in args.get("split", "train").split(",") if s)
    sets = args.getlist("sets") or None
    # The form sends unrated=0 (hidden) and unrated=1 when ticked; a bare link includes them.
    include_unrated = "1" in args.getlist("unrated") if "unrated" in args else True
    try:
        weight = float(args.get("unrated_weight", DEFAULT_UNRATED_WEIGHT))
    except ValueError:
        raise InvalidInput("the unrated weight is a number between 0 and 1") from None
    # The stream outlives the request's connection (closed at teardown): it reads on its own.
    db = connect(current_app.config["DATABASE"])
    try:
        # Validation (test split mixed in, unknown set) raises here, before the response starts.
        rows = select_rows(db, kind, splits, sets, include_unrated, weight)
        info = ImageInfo(current_app.config)
        names = class_names(db) if kind in CLASS_KINDS else None
        if classes_only:
            chunks = (chunk.encode() for chunk in class_list_for(rows, names))
        elif fmt in YOLO_FORMATS:
            chunks = yolo_zip_chunks(rows, kind, info, names)
        else:
            # A kind the format cannot write (original-csv of five points) fails here too.
            text = text_chunks(rows, kind, fmt, info, names)
            chunks = (chunk.encode() for chunk in text)
    except BaseException:
        db.close()
        raise
    name = f"oiap-{kind}-{'+'.join(splits)}-" + ("classes.csv" if classes_only else f"{fmt}{SUFFIX[fmt]}")
    return Response(
        _closing(chunks, db),
        mimetype="text/csv" if classes_only else MIME[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}"', "X-Accel-Buffering": "no"},
    )


def _closing(chunks, db):
    try:
        yield from chunks
    finally:
        db.close()
