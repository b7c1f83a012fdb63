"""Fixtures: a temporary instance per test, with the schema applied and users made in code."""

from pathlib import Path

import pytest

from app.auth import users
from app.db import connect
from app.paths import REPO_ROOT
from tests.live import PASSWORD, instance_app

DEMO_DATA = REPO_ROOT / "app" / "demo_data"


def load_script(name: str):
    """A module of scripts/ (not a package), loaded by path, for tests of its functions."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


TEST_DATA = Path(__file__).parent / "data"
# A cheap hash for fixture users (scrypt costs ~0.3 s each); test_auth checks the real default.
users.HASH_METHOD = "pbkdf2:sha256:1000"


@pytest.fixture
def app(tmp_path):
    """An app on a fresh instance folder with migrations applied and two users."""
    # Tests post forms without tokens; test_auth turns CSRF back on to test it.
    app = instance_app(tmp_path / "instance", WTF_CSRF_ENABLED=False)
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
