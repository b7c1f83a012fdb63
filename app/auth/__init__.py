"""Accounts: login for every page, roles, CSRF on every state-changing request, login throttling.

What other blueprints use:

- Every route needs a login automatically (a `before_request` hook); only endpoints in
  `PUBLIC_ENDPOINTS` are reachable without one. Do not add to it lightly: tests/test_security.py
  requests every registered route anonymously and fails on any that answers.
- `@admin_only` on a view (below `@bp.route`) makes it answer 403, with a page that says why,
  for anyone but an admin. `admin_blueprint(bp)` does the same for every route of a blueprint.
  Both mark the routes, so the test suite checks that a reviewer gets 403 on each of them.
  Routes under /admin/ must be marked (the suite checks that too). Inside a view,
  `admin_required()` aborts the same way; the suite counts a view that calls it as admin-only
  too, so call it unconditionally, first thing (else mark the route some other way).
- `audit(action, ...)` writes one event for the logged-in user to the audit log; domain functions
  that take a `user_id`/`by` log their own events, so use `audit` only for web-only changes.
- CSRF: Flask-WTF checks every POST/PUT/PATCH/DELETE. base.html sends the token as the
  `X-CSRFToken` header on every htmx request (one of Flask-WTF's default WTF_CSRF_HEADERS);
  plain forms need `<input type="hidden" name="csrf_token" value="{{ csrf_token() }}">`.
  A request without a valid token answers 400 with a page that says so.
- `flask_login.current_user` has .id .username .role .is_admin.
- Every response says it may not be framed by another site (X-Frame-Options, CSP frame-ancestors),
  with nosniff and a same-origin referrer policy.
"""

import functools
from urllib.parse import urlsplit

from flask import Blueprint, Flask, abort, redirect, render_template, request, session, url_for
from flask_login import LoginManager, current_user, logout_user
from flask_wtf.csrf import CSRFError, CSRFProtect

from ..audit.events import log_event
from ..db import get_db
from .redirects import safe_next
from .throttle import Throttle, parse_rate
from .users import User, load_session_user

login_manager = LoginManager()
csrf = CSRFProtect()

# Endpoints reachable without an account. A new route is protected unless it is added here.
PUBLIC_ENDPOINTS = {"auth.login", "static", "favicon"}  # favicon: /favicon.ico, a redirect to the static icon
# Blueprints whose every route is admin-only (see admin_blueprint).
ADMIN_BLUEPRINTS: set[str] = set()

# Scripts only from our own files (no inline script, no handler attribute, no javascript: URL runs,
# so a stored link or injected markup cannot act with a reviewer's session), no plugins, no <base>
# that re-points relative URLs, and no framing by another site.
CSP = "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

ADMIN_MESSAGE = "This action needs an admin account. Ask an admin to do it, or to change your role."


def admin_required() -> None:
    """Abort with 403 unless the current user is an admin."""
    if not current_user.is_authenticated or current_user.role != "admin":
        abort(403, ADMIN_MESSAGE)


def admin_only(view):
    """Decorate a view so that only admins reach it; others get 403 with a page that says why."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        admin_required()
        return view(*args, **kwargs)

    wrapped.admin_only = True
    return wrapped


def admin_blueprint(bp: Blueprint) -> Blueprint:
    """Make every route of a blueprint admin-only; returns the blueprint."""
    bp.before_request(admin_required)
    ADMIN_BLUEPRINTS.add(bp.name)
    return bp


def _calls_admin_required(view) -> bool:
    # A view whose own code names admin_required (called first thing, as in the audit page).
    while view is not None:
        code = getattr(view, "__code__", None)
        if code is not None and "admin_required" in code.co_names:
            return True
        view = getattr(view, "__wrapped__", None)
    return False


def is_admin_endpoint(app: Flask, endpoint: str) -> bool:
    """Whether an endpoint is admin-only: @admin_only, admin_blueprint(), or a view calling admin_required()."""
    view = app.view_functions.get(endpoint)
    blueprint = endpoint.rpartition(".")[0]
    return (
        bool(getattr(view, "admin_only", False))
        or blueprint in ADMIN_BLUEPRINTS
        or _calls_admin_required(view)
    )


def audit(action: str, **fields) -> None:
    """Write an audit event for the logged-in user (fields as for app.audit.events.log_event)."""
    log_event(get_db(), action, user_id=current_user.id, **fields)


def _page_of(url: str | None) -> str | None:
    """The path and query of a URL of this site (HX-Current-URL, Referer), for next=; else None."""
    here = urlsplit(url or "")
    if not here.path:
        return None
    return safe_next(here.path + (f"?{here.query}" if here.query else ""))


def init_auth(app: Flask) -> None:
    """Wire Flask-Login, CSRF, throttling and the login requirement into the app."""
    # Failed logins (app/auth/throttle.py): a username from one address, a username from anywhere
    # (larger, so one address cannot lock a user out), an address whatever the names.
    app.config.setdefault("LOGIN_LIMIT_PER_USER_AND_ADDRESS", "5 per minute")
    app.config.setdefault("LOGIN_LIMIT_PER_USER", "20 per minute")
    app.config.setdefault("LOGIN_LIMIT_PER_ADDRESS", "20 per minute")
    # Wrong current passwords on the change-password form, per user.
    app.config.setdefault("PASSWORD_LIMIT_PER_USER", "5 per minute")
    # A review page stays open for hours; its htmx token must not expire under the reviewer.
    # The token is still bound to the session, which ends at logout.
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    # False turns login throttling off (tests and benchmarks where many sessions log in at once).
    app.config.setdefault("RATELIMIT_ENABLED", True)
    for setting in (
        "LOGIN_LIMIT_PER_USER_AND_ADDRESS",
        "LOGIN_LIMIT_PER_USER",
        "LOGIN_LIMIT_PER_ADDRESS",
        "PASSWORD_LIMIT_PER_USER",
    ):
        parse_rate(app.config[setting], setting)  # a bad setting stops the start, named
    # One process serves (DESIGN.md): the counters live in it, one set per app.
    app.extensions["oiap.throttle"] = Throttle()

    login_manager.init_app(app)
    login_manager.login_view = "auth.login"

    @login_manager.user_loader
    def load_user(session_id: str) -> User | None:
        # A disabled user's session, or one from before a password change, stops here.
        return load_session_user(get_db(), session_id)

    @app.before_request
    def require_login():
        if request.endpoint in PUBLIC_ENDPOINTS or request.endpoint is None:
            return None
        if not current_user.is_authenticated:
            if "_user_id" in session:
                # Refused by load_user (disabled, or the password changed): forget it for good, so
                # enabling the user again does not revive an old session.
                logout_user()
            if request.headers.get("HX-Request"):
                # htmx would swap the login page into a fragment; make it navigate instead, back to
                # the page the request came from, and say that what was asked was not done.
                target = _page_of(request.headers.get("HX-Current-URL"))
                return "", 401, {"HX-Redirect": url_for("auth.login", next=target, expired=1)}
            # Back to the page after login. A POST's URL cannot be opened with GET: back to the page
            # the form was on (Referer, sent same-origin), saying that the post was not done.
            if request.method == "GET":
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
            return redirect(url_for("auth.login", next=_page_of(request.referrer), expired=1))
        return None

    # After require_login: an anonymous request (an expired session) is sent to the login page
    # rather than refused for its token, so htmx navigates instead of failing silently.
    csrf.init_app(app)

    @app.after_request
    def security_headers(response):
        # No other site may frame a page (clickjacking drives the buttons CSRF cannot stop),
        # sniff a type, or receive our URLs (image ids, filters) as a referrer.
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    @app.errorhandler(CSRFError)
    def csrf_error(e: CSRFError):
        message = (
            f"{e.description} The request was refused because it did not carry this session's "
            "security token: reload the page and try again. If you logged out or in elsewhere, "
            "log in again."
        )
        template = "errors/_error.html" if request.headers.get("HX-Request") else "errors/page.html"
        return render_template(template, code=400, message=message), 400

    from .admin import bp as admin_bp
    from .views import bp

    app.register_blueprint(bp)
    app.register_blueprint(admin_bp)
