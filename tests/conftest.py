"""Fixtures: a temporary instance per test, with the schema applied and users made in code."""

from pathlib import Path

import pytest

from app import REPO_ROOT, create_app
from app.auth import users
from app.auth.users import create_user
from app.db import connect, migrate

DEMO_DATA = REPO_ROOT / "app" / "demo_data"
TEST_DATA = Path(__file__).parent / "data"
PASSWORD = "correct horse battery"
# A cheap hash for fixture users (scrypt costs ~0.3 s each); test_auth checks the real default.
users.HASH_METHOD = "pbkdf2:sha256:1000"


@pytest.fixture
def app(tmp_path):
    """An app on a fresh instance folder with migrations applied and two users."""
    instance = tmp_path / "instance"
    app = create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(instance),
            "DATABASE": str(instance / "oiap.sqlite3"),
            "MODELS_DIR": str(instance / "models"),
            "CACHE_DIR": str(instance / "cache"),
            "IMAGES_DIR": str(instance / "images"),
            "SECRET_KEY": "test",
            # Tests post forms without tokens; test_auth turns CSRF back on to test it.
            "WTF_CSRF_ENABLED": False,
        }
    )
    db = connect(app.config["DATABASE"])
    migrate(db)
    create_user(db, "admin", PASSWORD, "admin")
    create_user(db, "rev", PASSWORD, "reviewer")
    db.close()
    yield app


@pytest.fixture
def db(app):
    """A connection to the test instance's database."""
    database = connect(app.config["DATABASE"])
    yield database
    database.close()


@pytest.fixture
def client(app):
    """An anonymous test client."""
    return app.test_client()


def login(client, username: str = "admin", password: str = PASSWORD):
    """Log a test client in; returns the response."""
    return client.post("/login", data={"username": username, "password": password})


@pytest.fixture
def admin_client(app):
    """A client logged in as the admin."""
    c = app.test_client()
    assert login(c, "admin").status_code == 302
    return c


@pytest.fixture
def reviewer_client(app):
    """A client logged in as a reviewer."""
    c = app.test_client()
    assert login(c, "rev").status_code == 302
    return c


@pytest.fixture
def runner(app):
    """The Flask CLI runner."""
    return app.test_cli_runner()


@pytest.fixture
def hx():
    """Headers that htmx sends."""
    return {"HX-Request": "true"}
