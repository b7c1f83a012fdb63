"""A WSGI app that answers with its process's GIL switch interval (tests/test_serving.py serves it
with the app's gunicorn worker class)."""

import sys


def app(environ, start_response):
    """Answer the serving process's sys.getswitchinterval() in seconds, as text."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [repr(sys.getswitchinterval()).encode()]
