"""Login and logout pages, with throttled and audited logins (app/auth/throttle.py counts the failures)."""

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from ..audit.events import log_event
from ..db import get_db
from ..errors import InvalidInput
from .login import log_in, log_out
from .redirects import safe_next
from .throttle import Attempt, Limit, Rate, parse_rate
from .users import authenticate, get_user, set_password

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    # Only same-site paths: never send a user to another host after login.
    return safe_next(target) or url_for("sets.index")


def _username() -> str:
    return request.form.get("username", "").strip()


def _address() -> str:
    return request.remote_addr or "unknown"


def _rate(setting: str) -> Rate:
    return parse_rate(current_app.config[setting], setting)


def _attempt(limits: list[Limit]) -> Attempt | None:
    """Count an attempt (None when throttling is off: RATELIMIT_ENABLED false)."""
    if not current_app.config["RATELIMIT_ENABLED"]:
        return None
    return current_app.extensions["oiap.throttle"].attempt(limits)


def _login_limits(username: str, address: str) -> list[Limit]:
    # Username and address together lock out the guesser, not the user: the right password from
    # another address still gets in. The username's own ceiling is larger; it stops guesses spread
    # over many addresses. A form without a name counts against its address only.
    limits = []
    if username:
        limits.append(
            Limit(
                f"user+addr:{address}:{username}",
                _rate("LOGIN_LIMIT_PER_USER_AND_ADDRESS"),
                "Too many failed logins for this user from this address. Wait a minute, then try again.",
            )
        )
        limits.append(
            Limit(
                f"user:{username}",
                _rate("LOGIN_LIMIT_PER_USER"),
                "Too many failed logins for this user. Wait a minute, then try again.",
            )
        )
    limits.append(
        Limit(
            f"addr:{address}",
            _rate("LOGIN_LIMIT_PER_ADDRESS"),
            "Too many failed logins from this address. Wait a minute, then try again.",
        )
    )
    return limits


def _throttled(attempt: Attempt, template: str, **context):
    flash(attempt.refused.message, "error")
    page = render_template(template, retry_after=attempt.retry_after, **context)
    return page, 429, {"Retry-After": str(attempt.retry_after)}


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the login form, or log in."""
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(_safe_next(request.args.get("next")))
        return render_template("auth/login.html")
    db = get_db()
    username = _username()
    details = {"username": username, "address": request.remote_addr}
    # Counted before the password is checked, so guesses in flight together cannot pass the limit.
    attempt = _attempt(_login_limits(username, _address()))
    if attempt is not None and attempt.refused:
        log_event(db, "login.throttled", after={**details, "limit": str(attempt.refused.rate)})
        return _throttled(attempt, "auth/login.html", username=username)
    user, why = authenticate(db, username, request.form.get("password", ""))
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
    if attempt is not None:
        attempt.cancel()  # only failed logins count
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
def password():
    """Change your own password; your other sessions end."""
    if request.method == "GET":
        return render_template("auth/password.html")
    db = get_db()
    f = request.form
    # Only wrong current passwords count (counted first, as logins): a stolen session cannot guess
    # the password quickly.
    attempt = _attempt(
        [
            Limit(
                f"password:{current_user.id}",
                _rate("PASSWORD_LIMIT_PER_USER"),
                "Too many wrong passwords. Wait a minute, then try again.",
            )
        ]
    )
    if attempt is not None and attempt.refused:
        return _throttled(attempt, "auth/password.html")
    _, why = authenticate(db, current_user.username, f.get("current", ""))
    if not why and attempt is not None:
        attempt.cancel()
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
