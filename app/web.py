"""The web layer's shared pieces: error pages, the URL converter for ids, and the helper for routes that
serve both a full page and an htmx fragment."""

import sqlite3

from flask import Flask, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.routing import IntegerConverter

from .db import storage_error_message
from .errors import Conflict, InvalidInput, NotFound

SQLITE_INT_MAX = 2**63 - 1


def wants_fragment(target: str | None = None) -> bool:
    """True when an htmx request (not a boosted navigation or history restore) asks for a fragment.

    With `target`, only when the request swaps into that element id.
    """
    if request.headers.get("HX-Request") != "true":
        return False
    if request.headers.get("HX-Boosted") or request.headers.get("HX-History-Restore-Request"):
        return False
    return target is None or request.headers.get("HX-Target") == target


class IdConverter(IntegerConverter):
    """<int:...> in URLs, bounded to what SQLite stores: a longer number is a 404, not an OverflowError."""

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", SQLITE_INT_MAX)
        super().__init__(map, *args, **kwargs)


def register_favicon(app: Flask) -> None:
    """/favicon.ico, which browsers ask for on their own (a picture opened directly, say): the static icon."""

    def favicon():
        return redirect(url_for("static", filename="favicon.svg"))

    app.add_url_rule("/favicon.ico", endpoint="favicon", view_func=favicon)


def register_error_handlers(app: Flask) -> None:
    """Render errors as pages, or as a small fragment for htmx requests."""

    def render(code: int, message: str):
        template = "errors/_error.html" if request.headers.get("HX-Request") else "errors/page.html"
        return render_template(template, code=code, message=message), code

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        return render(e.code or 500, e.description or e.name)

    @app.errorhandler(InvalidInput)
    def invalid_input(e: InvalidInput):
        return render(400, str(e))

    @app.errorhandler(NotFound)
    def not_found(e: NotFound):
        return render(404, str(e))

    @app.errorhandler(Conflict)
    def conflict(e: Conflict):
        return render(409, str(e))

    @app.errorhandler(OverflowError)
    def too_large(e: OverflowError):
        # An id in a query string or form beyond SQLite's 64-bit integers (request.args.get(type=int)).
        return render(400, "a number in the request is too large")

    @app.errorhandler(sqlite3.OperationalError)
    @app.errorhandler(OSError)
    def storage_error(e: Exception):
        message = storage_error_message(e)
        if message is None:
            app.logger.exception("unexpected error", exc_info=e)
            return render(500, InternalServerError.description)
        app.logger.error("storage error: %s", e)
        return render(503, message)
