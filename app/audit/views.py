"""The audit page for admins: the events log filtered by user, set, action and time."""

from flask import Blueprint, render_template, request, url_for

from ..auth import admin_required
from ..auth.users import list_users
from ..db import get_db
from ..errors import InvalidInput
from ..sets.queries import list_sets
from .queries import PAGE_SIZE, event_actions, list_events

bp = Blueprint("audit", __name__)


def _int_arg(name: str) -> int | None:
    value = request.args.get(name, "").strip()
    if not value:
        return None
    if not (value.isascii() and value.isdigit()):  # "²".isdigit() is True; int("²") fails
        raise InvalidInput(f"{name} must be a whole number, not {value!r}")
    return int(value)


@bp.route("/audit")
def index():
    """List audit events, newest first, with filters."""
    admin_required()
    db = get_db()
    filters = {
        "user_id": _int_arg("user"),
        "set_id": _int_arg("set"),
        "action": request.args.get("action") or None,
        "since": request.args.get("since") or None,
        "until": request.args.get("until") or None,
    }
    before_id = _int_arg("before")
    events = list_events(db, **filters, before_id=before_id)
    return render_template(
        "audit/index.html",
        events=events,
        filters=filters,
        users=list_users(db),
        sets=list_sets(db),
        actions=event_actions(db),
        next_url=url_for(
            "audit.index",
            **{k: v for k, v in request.args.items() if k != "before"},
            before=events[-1]["id"],
        )
        if len(events) == PAGE_SIZE
        else None,
        # From an older page, back to the newest events with the same filters.
        newest_url=url_for("audit.index", **{k: v for k, v in request.args.items() if k != "before"})
        if before_id is not None
        else None,
    )
