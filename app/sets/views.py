"""The dashboard: every annotation set with its counts."""

from flask import Blueprint, render_template

from ..db import get_db
from .queries import list_sets

bp = Blueprint("sets", __name__)


@bp.route("/")
def index():
    """List the annotation sets with kind, source, model and counts."""
    return render_template("sets/index.html", sets=list_sets(get_db()))
