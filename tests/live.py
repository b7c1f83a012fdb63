"""A live server on a free localhost port for tests that need real HTTP (threads, browsers)."""

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from flask import Flask
from werkzeug.serving import make_server

from app import create_app
from app.auth.users import create_user
from app.db import connect, migrate

PASSWORD = "correct horse battery"
_TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def instance_app(instance: Path, users: dict[str, str] | None = None, **config) -> Flask:
    """An app on a fresh, migrated instance folder with the given users (name -> role, password PASSWORD)."""
    app = create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(instance),
            "DATABASE": str(instance / "oiap.sqlite3"),
            "MODELS_DIR": str(instance / "models"),
            "CACHE_DIR": str(instance / "cache"),
            "IMAGES_DIR": str(instance / "images"),
            "SECRET_KEY": "test",
            **config,
        }
    )
    db = connect(app.config["DATABASE"])
    migrate(db)
    for name, role in (users or {"admin": "admin", "rev": "reviewer"}).items():
        create_user(db, name, PASSWORD, role)
    db.close()
    return app


def live_app(instance: Path, users: dict[str, str] | None = None, **config) -> Flask:
    """An app on a fresh instance with CSRF on (as in production) and the given users (name -> role)."""
    # Several sessions log in within a second; the login limiter is tested elsewhere.
    return instance_app(instance, users, WTF_CSRF_ENABLED=True, RATELIMIT_ENABLED=False, **config)


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """Serve the app with werkzeug's threaded server on a free port; yields the base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


@dataclass
class LiveServer:
    """A running server: its base URL and app (the app's DATABASE is the store it serves)."""

    url: str
    app: Flask

    def db(self):
        """A new connection to the served store (close it)."""
        return connect(self.app.config["DATABASE"])


def csrf_token(html: str) -> str:
    """The CSRF token of a page (hidden input)."""
    m = _TOKEN.search(html)
    assert m, "no csrf_token on the page"
    return m.group(1)


def http_login(base_url: str, username: str, password: str = PASSWORD) -> requests.Session:
    """A requests session logged in through the login form, carrying the CSRF header for posts."""
    s = requests.Session()
    page = s.get(f"{base_url}/login", timeout=10)
    r = s.post(
        f"{base_url}/login",
        data={"username": username, "password": password, "csrf_token": csrf_token(page.text)},
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 302, f"login as {username} failed: {r.status_code}"
    s.headers["X-CSRFToken"] = csrf_token(s.get(f"{base_url}/", timeout=10).text)
    return s
