"""Login throttling through real HTTP on a served app (issue 19, point 7): failures are counted before
the password is checked, per username and address with a larger ceiling per username."""

import threading
import time

import pytest
import requests
from requests.adapters import HTTPAdapter

from app.auth import users
from tests.live import PASSWORD, csrf_token, instance_app, serve


class _From(HTTPAdapter):
    """Connect from a given loopback address (Linux routes all of 127.0.0.0/8 to lo)."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


class Browser:
    """A browser at one address: its session cookie and the login page's CSRF token."""

    def __init__(self, base: str, address: str):
        self.base = base
        self.s = requests.Session()
        self.s.mount("http://", _From(address))
        self.token = csrf_token(self.s.get(f"{base}/login", timeout=30).text)

    def login(self, username: str, password: str) -> requests.Response:
        data = {"username": username, "password": password, "csrf_token": self.token}
        return self.s.post(f"{self.base}/login", data=data, allow_redirects=False, timeout=60)


@pytest.fixture
def served(tmp_path, monkeypatch):
    # A password check of ~50 ms, as a real hash takes time: guesses sent together are then all in
    # flight at once, which is when a limit checked before and counted after lets them all through.
    monkeypatch.setattr(users, "HASH_METHOD", "pbkdf2:sha256:100000")
    app = instance_app(tmp_path / "instance", WTF_CSRF_ENABLED=True)
    with serve(app) as base:
        yield base, app


def _events(app, action: str) -> list:
    from app.db import connect

    db = connect(app.config["DATABASE"])
    try:
        return [r[0] for r in db.execute("SELECT after FROM events WHERE action = ?", [action])]
    finally:
        db.close()


def test_parallel_wrong_guesses_never_pass_the_limit(served):
    base, app = served
    guessers = [Browser(base, "127.0.0.2") for _ in range(16)]
    start = threading.Barrier(len(guessers))
    codes: list[int] = []

    def guess(b: Browser, i: int) -> None:
        start.wait(30)
        codes.append(b.login("admin", f"wrong guess {i}").status_code)

    threads = [threading.Thread(target=guess, args=(b, i)) for i, b in enumerate(guessers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    # 5 per minute for a username from one address: exactly 5 passwords were checked.
    assert sorted(codes) == [401] * 5 + [429] * 11
    assert len(_events(app, "login.failed")) == 5
    assert len(_events(app, "login.throttled")) == 11


def test_an_attackers_guesses_from_one_address_do_not_lock_the_user_out(served):
    base, app = served
    attacker = Browser(base, "127.0.0.2")
    for i in range(5):
        assert attacker.login("admin", f"wrong guess {i}").status_code == 401
    # The attacker is stopped, even with the right password...
    r = attacker.login("admin", PASSWORD)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert "Too many failed logins for this user from this address" in r.text
    # ...but the admin, at another address, still gets in; and the attacker may try other names
    # (the address's own limit is larger).
    assert Browser(base, "127.0.0.3").login("admin", PASSWORD).status_code == 302
    assert attacker.login("rev", PASSWORD).status_code == 302


def test_the_per_user_ceiling_stops_a_distributed_attack(served):
    base, app = served
    # 20 per minute for a username from anywhere: four addresses of five wrong guesses each.
    for host in range(2, 6):
        b = Browser(base, f"127.0.0.{host}")
        for i in range(5):
            assert b.login("rev", f"wrong guess {host}.{i}").status_code == 401
    r = Browser(base, "127.0.0.9").login("rev", PASSWORD)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert "Too many failed logins for this user. Wait a minute" in r.text
    # Only that username: another user at that address gets in.
    assert Browser(base, "127.0.0.9").login("admin", PASSWORD).status_code == 302
    assert len(_events(app, "login.failed")) == 20


def test_right_passwords_never_count(served):
    base, _ = served
    for _ in range(8):
        assert Browser(base, "127.0.0.2").login("rev", PASSWORD).status_code == 302
    b = Browser(base, "127.0.0.2")
    for i in range(5):
        assert b.login("rev", f"wrong guess {i}").status_code == 401


def test_rates_windows_and_taking_a_count_back():
    from app.auth.throttle import Limit, Throttle, parse_rate

    assert (parse_rate("5/minute").count, parse_rate("5/minute").seconds) == (5, 60)
    assert parse_rate("50 per 10 minutes").seconds == 600
    throttle = Throttle()
    lim = Limit("user:rev", parse_rate("2 per second"), "slow down")
    first, second, third = (throttle.attempt([lim]) for _ in range(3))
    assert not first.refused and not second.refused
    assert third.refused is lim and third.retry_after == 1
    second.cancel()  # a right password: its count goes
    assert not throttle.attempt([lim]).refused
    assert throttle.attempt([lim]).refused
    time.sleep(1.05)  # the window has moved past every count
    assert not throttle.attempt([lim]).refused
    # An attempt refused by one limit counts against none of the others.
    other = Limit("addr:10.0.0.1", parse_rate("5 per minute"), "")
    full = Limit("user:full", parse_rate("1 per minute"), "")
    assert not throttle.attempt([full]).refused
    assert throttle.attempt([other, full]).refused is full
    assert all(not throttle.attempt([other]).refused for _ in range(5))
