"""Accounts: login for every page, roles, CSRF on every state-changing request."""

from flask import Flask, abort, redirect, request, url_for
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFProtect

from ..db import get_db
from .users import User, get_user

login_manager = LoginManager()
csrf = CSRFProtect()

# Endpoints reachable without an account. A new route is protected unless it is added here.
PUBLIC_ENDPOINTS = {"auth.login", "static"}


def admin_required() -> None:
    """Abort with 403 unless the current user is an admin."""
    if not current_user.is_authenticated or current_user.role != "admin":
        abort(403, "This action needs an admin account. Ask an admin to do it or to change your role.")


def init_auth(app: Flask) -> None:
    """Wire Flask-Login, CSRF and the login requirement into the app."""
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    csrf.init_app(app)

    @login_manager.user_loader
    def load_user(user_id: str) -> User | None:
        user = get_user(get_db(), int(user_id))
        # A disabled user's session stops working at their next request.
        return user if user and user.active else None

    @app.before_request
    def require_login():
        if request.endpoint in PUBLIC_ENDPOINTS or request.endpoint is None:
            return None
        if not current_user.is_authenticated:
            if request.headers.get("HX-Request"):
                # htmx would swap the login page into a fragment; make it navigate instead.
                return "", 401, {"HX-Redirect": url_for("auth.login")}
            return redirect(url_for("auth.login", next=request.full_path))
        return None

    from .views import bp

    app.register_blueprint(bp)
