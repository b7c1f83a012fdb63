"""Logging a browser in and out: a server-side session row, a fresh CSRF token, Flask-Login's cookie."""

from flask import current_app, g, request, session
from flask_login import current_user, login_user, logout_user
from sqlite_utils import Database

from .sessions import end_session, start_session
from .users import User


def _forget_csrf_token() -> None:
    # A token from before the login (a shared browser, a planted cookie) must not outlive it.
    field = current_app.config["WTF_CSRF_FIELD_NAME"]
    session.pop(field, None)
    g.pop(field, None)


def log_in(db: Database, user: User) -> None:
    """Start a new server-side session for the user and log this browser into it."""
    user.session_id = start_session(db, user.id, request.remote_addr)
    _forget_csrf_token()
    login_user(user)


def log_out(db: Database) -> None:
    """End this browser's session on the server (a copied cookie stops working too) and forget it."""
    if current_user.is_authenticated and current_user.session_id:
        end_session(db, current_user.session_id, "logout")
    logout_user()
    _forget_csrf_token()
