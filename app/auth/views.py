"""Login and logout pages, with throttled and audited logins."""

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from ..audit.events import log_event
from ..db import get_db
from ..errors import InvalidInput
from . import limiter
from .login import log_in, log_out
from .redirects import safe_next
from .users import authenticate, get_user, set_password

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    # Only same-site paths: never send a user to another host after login.
    return safe_next(target) or url_for("sets.index")


def _username() -> str:
    return request.form.get("username", "").strip()


def _user_key() -> str:
    # Empty for a form without a name: Flask-Limiter then skips this limit (the address one still counts).
    name = _username()
    return f"user:{name}" if name else ""


def _address_key() -> str:
    return f"addr:{request.remote_addr or 'unknown'}"


def _failed(response) -> bool:
    # Only failed logins count against the limits, so a team behind one address can still log in.
    return response.status_code == 401


def _log_throttled(limit) -> None:
    log_event(
        get_db(),
        "login.throttled",
        after={"username": _username(), "address": request.remote_addr, "limit": str(limit.limit)},
    )


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_USER"],
    key_func=_user_key,
    methods=["POST"],
    deduct_when=_failed,
    on_breach=_log_throttled,
    error_message="Too many failed logins for this user. Wait a minute, then try again.",
)
@limiter.limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_ADDRESS"],
    key_func=_address_key,
    methods=["POST"],
    deduct_when=_failed,
    on_breach=_log_throttled,
    error_message="Too many failed logins from this address. Wait a minute, then try again.",
)
def login():
    """Show the login form, or log in."""
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(_safe_next(request.args.get("next")))
        return render_template("auth/login.html")
    db = get_db()
    username = _username()
    user, why = authenticate(db, username, request.form.get("password", ""))
    details = {"username": username, "address": request.remote_addr}
    if why:
        log_event(
            db,
            "login.failed",
            # Nobody is logged in: the actor is unknown; the target is the named user when it exists.
            user_id=None,
            target_type="user",
            target_id=user.id if user else None,
            after={**details, "reason": why},
        )
        # One message whatever the reason, so the page does not tell which names exist.
        flash("Wrong username or password, or the account is disabled.", "error")
        return render_template("auth/login.html", username=username), 401
    log_in(db, user)
    log_event(db, "login", user_id=user.id, target_type="user", target_id=user.id, after=details)
    return redirect(_safe_next(request.args.get("next")))


@bp.route("/logout", methods=["POST"])
def logout():
    """Log out and go back to the login page."""
    log_event(
        get_db(),
        "logout",
        user_id=current_user.id,
        target_type="user",
        target_id=current_user.id,
        after={"username": current_user.username, "address": request.remote_addr},
    )
    log_out(get_db())
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@limiter.limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_USER"],
    key_func=lambda: f"password:{current_user.get_id()}",
    methods=["POST"],
    # Only wrong current passwords count: a stolen session cannot guess the password quickly.
    deduct_when=lambda response: response.status_code == 403,
    error_message="Too many wrong passwords. Wait a minute, then try again.",
)
def password():
    """Change your own password; your other sessions end."""
    if request.method == "GET":
        return render_template("auth/password.html")
    db = get_db()
    f = request.form
    _, why = authenticate(db, current_user.username, f.get("current", ""))
    if why:
        log_event(
            db,
            "user.password.failed",
            user_id=current_user.id,
            target_type="user",
            target_id=current_user.id,
            after={"address": request.remote_addr},
        )
        flash("Your current password is not right.", "error")
        return render_template("auth/password.html"), 403
    if f.get("new", "") != f.get("confirm", ""):
        flash("The two new passwords differ.", "error")
        return render_template("auth/password.html"), 400
    try:
        set_password(db, current_user.username, f.get("new", ""), by=current_user.id)
    except InvalidInput as e:
        flash(str(e), "error")
        return render_template("auth/password.html"), 400
    # The change ended every session of this user; this browser goes on in a new one.
    log_in(db, get_user(db, current_user.id))
    flash("Password changed. Your other sessions have ended.", "info")
    return redirect(url_for("sets.index"))
