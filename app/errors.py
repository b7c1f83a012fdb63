"""Named domain errors and the app's error pages."""

from flask import Flask, render_template, request
from werkzeug.exceptions import HTTPException


class OiapError(Exception):
    """A domain error whose message is meant for the user."""


class InvalidInput(OiapError):
    """Bad input from a user or a file: the message names it and says how to fix it."""


class NotFound(OiapError):
    """A named thing (set, model, image) does not exist."""


class Conflict(OiapError):
    """A write against a stale version."""


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
