"""Named domain errors and the app's error pages."""

import errno
import sqlite3

from flask import Flask, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.routing import IntegerConverter

SQLITE_INT_MAX = 2**63 - 1


class OiapError(Exception):
    """A domain error whose message is meant for the user."""


class InvalidInput(OiapError):
    """Bad input from a user or a file: the message names it and says how to fix it."""


class NotFound(OiapError):
    """A named thing (set, model, image) does not exist."""


class Conflict(OiapError):
    """A write against a stale version."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run: the run is recorded as interrupted and run_id resumes it."""

    def __init__(self, run_id: int):
        super().__init__(run_id)
        self.run_id = run_id


class IdConverter(IntegerConverter):
    """<int:...> in URLs, bounded to what SQLite stores: a longer number is a 404, not an OverflowError."""

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", SQLITE_INT_MAX)
        super().__init__(map, *args, **kwargs)


def storage_error_message(e: BaseException) -> str | None:
    """A message for a write that failed because of a full disk or a read-only store, else None."""
    if not isinstance(e, (sqlite3.OperationalError, OSError)):
        return None
    text = str(e).lower()
    code = getattr(e, "errno", None)
    if "disk is full" in text or code == errno.ENOSPC:
        return (
            "The disk that holds the instance folder is full, so nothing was saved. "
            "Free some space (or move OIAP_INSTANCE to a larger disk), then try again."
        )
    if "readonly" in text or "read-only" in text or code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (
            "The instance folder or its database is read-only, so nothing was saved. "
            "Give the server's user write access to the instance folder (OIAP_INSTANCE), then try again."
        )
    if "unable to open database" in text:
        return "The database file cannot be opened: check that the instance folder exists and is writable."
    return None


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
