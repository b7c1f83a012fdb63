"""The admin users page: list, add, change role, disable/enable, reset password. Admins only."""

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from ..db import get_db
from ..errors import OiapError
from . import admin_blueprint
from .login import log_in
from .sessions import end_user_sessions, open_sessions
from .users import (
    ROLES,
    create_user,
    get_user,
    list_users,
    recent_account_events,
    set_active,
    set_password,
    set_role,
)

bp = admin_blueprint(Blueprint("users", __name__, url_prefix="/admin/users"))


def _back():
    return redirect(url_for("users.index"))


def _username(user_id: int) -> str:
    row = get_db().execute("SELECT username FROM users WHERE id = ?", [user_id]).fetchone()
    if row is None:
        raise OiapError(f"no user with id {user_id}")
    return row[0]


def _apply(change, done: str):
    # Plain forms: refusals come back as a flash message on the same page (post/redirect/get).
    try:
        change()
    except OiapError as e:
        flash(str(e), "error")
    else:
        flash(done, "info")
    return _back()


@bp.get("")
def index():
    """List users, with forms to change them, and the latest account events."""
    db = get_db()
    sessions: dict[int, int] = {}
    for row in open_sessions(db):
        sessions[row["user_id"]] = sessions.get(row["user_id"], 0) + 1
    return render_template(
        "auth/users.html",
        users=list_users(db),
        roles=ROLES,
        events=recent_account_events(db),
        sessions=sessions,
    )


@bp.post("")
def add():
    """Add a user."""
    f = request.form
    name = f.get("username", "").strip()
    return _apply(
        lambda: create_user(
            get_db(), name, f.get("password", ""), f.get("role", "reviewer"), by=current_user.id
        ),
        f"added {name}",
    )


@bp.post("/<int:user_id>/role")
def role(user_id: int):
    """Change a user's role."""
    new = request.form.get("role", "")
    return _apply(
        lambda: set_role(get_db(), _username(user_id), new, by=current_user.id), f"role changed to {new}"
    )


@bp.post("/<int:user_id>/active")
def active(user_id: int):
    """Disable or enable a user (active=0 or 1)."""
    value = request.form.get("active") == "1"
    return _apply(
        lambda: set_active(get_db(), _username(user_id), value, by=current_user.id),
        "user enabled" if value else "user disabled; their session has ended",
    )


@bp.post("/<int:user_id>/password")
def password(user_id: int):
    """Reset a user's password; their sessions end."""
    new = request.form.get("password", "")

    def change():
        db = get_db()
        set_password(db, _username(user_id), new, by=current_user.id)
        if user_id == current_user.id:
            # An admin resetting their own password keeps this session; others of theirs end.
            log_in(db, get_user(db, user_id))

    return _apply(change, "password reset; their other sessions have ended")


@bp.post("/<int:user_id>/sessions")
def end_sessions(user_id: int):
    """End every open session of a user: their browsers (and copied cookies) must log in again."""

    def change():
        _username(user_id)  # a user that exists (refused as a flash message otherwise)
        db = get_db()
        end_user_sessions(db, user_id, "ended by an admin", by=current_user.id, log=True)

    return _apply(change, "their sessions have ended")
