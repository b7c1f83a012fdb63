"""The remembered CSRF checks (app/auth/csrf.py) accept exactly what Flask-WTF accepts."""

import re
import time

import pytest

from tests.conftest import PASSWORD


@pytest.fixture
def csrf_app(app):
    app.config["WTF_CSRF_ENABLED"] = True
    return app


def _token(html: bytes) -> str:
    return re.search(rb'name="csrf_token" value="([^"]+)"', html).group(1).decode()


def _logged_in(app, username="rev"):
    c = app.test_client()
    token = _token(c.get("/login").data)
    assert (
        c.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token}).status_code
        == 302
    )
    return c


def test_a_verified_token_keeps_working_and_nothing_else_gets_in(csrf_app, hx):
    a, b = _logged_in(csrf_app), _logged_in(csrf_app, "admin")
    token_a = _token(a.get("/").data)
    token_b = _token(b.get("/").data)
    # The page is signed once per session: two pages carry the same token.
    assert _token(a.get("/").data) == token_a and token_a != token_b
    for _ in range(3):  # verified, then remembered
        r = a.post("/logout", headers={**hx, "X-CSRFToken": token_a})
        assert r.status_code == 302
        a = _logged_in(csrf_app)
        token_a = _token(a.get("/").data)
    # b's token, verified and remembered for b, is refused in a's session, and a forged one too.
    assert b.post("/logout", headers={**hx, "X-CSRFToken": token_b}).status_code == 302
    b = _logged_in(csrf_app, "admin")
    assert a.post("/logout", headers={**hx, "X-CSRFToken": token_b}).status_code == 400
    assert a.post("/logout", headers={**hx, "X-CSRFToken": token_a + "x"}).status_code == 400
    assert a.post("/logout", headers=hx).status_code == 400
    assert a.get("/").status_code == 200  # none of those logged a out


def test_with_a_time_limit_tokens_still_expire(csrf_app, hx):
    csrf_app.config["WTF_CSRF_TIME_LIMIT"] = 1
    c = _logged_in(csrf_app)
    token = _token(c.get("/").data)
    # Past the CSRF check (then no such annotation set), twice: verified, and not remembered.
    for _ in range(2):
        assert c.post("/review/999999/rate", headers={**hx, "X-CSRFToken": token}).status_code == 404
    time.sleep(2.1)
    r = c.post("/review/999999/rate", headers={**hx, "X-CSRFToken": token})
    assert r.status_code == 400 and b"expired" in r.data
