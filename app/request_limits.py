"""Request bodies: refused with 413 before a byte of them is read when they are too large.

Nothing the pages send comes near the limit (an editor save is at most 256 KiB, a form a few KiB),
and no route takes uploads: files come in through the command line. Without the limit, a POST of
hundreds of megabytes to /login (no account needed) was read whole and spooled to disk before
the CSRF check answered.
"""

from flask import Flask, abort, current_app, request

DEFAULT_MAX = 1024 * 1024  # bytes


def _refuse_large_body():
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    length = request.content_length
    if limit is not None and length is not None and length > limit:
        # The body has not been read: werkzeug reads it only when a view (or CSRF) asks for it.
        abort(413, f"The request body ({length} bytes) is larger than the {limit} bytes allowed.")


def init_request_limits(app: Flask) -> None:
    """Set MAX_CONTENT_LENGTH (unless configured) and check it before any other request hook."""
    # Flask's own default is None (no limit): an unset limit gets ours.
    if app.config.get("MAX_CONTENT_LENGTH") is None:
        app.config["MAX_CONTENT_LENGTH"] = DEFAULT_MAX
    # First in line: before the login check, CSRF (which parses the form) and the login limiter.
    app.before_request_funcs.setdefault(None, []).insert(0, _refuse_large_body)
