"""Server-side sessions (issue 19 point 4), over real HTTP: a copied cookie dies with its session."""

import requests

from app.db import connect
from tests.live import PASSWORD, csrf_token, http_login, live_app, serve


def _copy(s: requests.Session) -> requests.Session:
    """Another browser holding a copy of s's cookies (a stolen or saved cookie)."""
    thief = requests.Session()
    thief.cookies.update(s.cookies)
    return thief


def _logged_in(s: requests.Session, url: str) -> bool:
    r = s.get(f"{url}/", allow_redirects=False, timeout=10)
    assert r.status_code in (200, 302), r.status_code
    return r.status_code == 200


def _post(s: requests.Session, url: str, path: str, **data) -> requests.Response:
    token = csrf_token(s.get(f"{url}/", timeout=10).text)
    return s.post(f"{url}{path}", data={"csrf_token": token, **data}, allow_redirects=False, timeout=10)


def _sessions(app) -> list[dict]:
    db = connect(app.config["DATABASE"])
    try:
        return list(
            db.query(
                "SELECT s.*, u.username FROM sessions s JOIN users u ON u.id = s.user_id ORDER BY created_at"
            )
        )
    finally:
        db.close()


def _users(app) -> list[dict]:
    db = connect(app.config["DATABASE"])
    try:
        return list(db.query("SELECT id, username FROM users"))
    finally:
        db.close()


def test_logout_ends_the_session_for_a_copied_cookie(tmp_path):
    app = live_app(tmp_path / "i")
    with serve(app) as url:
        rev = http_login(url, "rev")
        thief = _copy(rev)
        assert _logged_in(thief, url)
        assert _post(rev, url, "/logout").status_code == 302
        assert not _logged_in(thief, url) and not _logged_in(rev, url)
    (row,) = _sessions(app)
    assert row["username"] == "rev" and row["ended_reason"] == "logout" and row["ended_at"]
    assert row["created_at"] <= row["last_seen_at"] and row["address"] == "127.0.0.1"


def test_password_change_ends_other_sessions_and_keeps_this_one(tmp_path):
    app = live_app(tmp_path / "i")
    with serve(app) as url:
        here, elsewhere = http_login(url, "rev"), http_login(url, "rev")
        copied = _copy(here)
        r = _post(
            here,
            url,
            "/account/password",
            current=PASSWORD,
            new="another long one",
            confirm="another long one",
        )
        assert r.status_code == 302
        assert _logged_in(here, url)
        assert not _logged_in(elsewhere, url) and not _logged_in(copied, url)
    reasons = [r["ended_reason"] for r in _sessions(app)]
    assert reasons.count("password") == 2 and reasons.count(None) == 1


def test_disable_and_admin_end_sessions(tmp_path):
    app = live_app(tmp_path / "i")
    with serve(app) as url:
        admin = http_login(url, "admin")
        rev = http_login(url, "rev")
        rev_id = next(u["id"] for u in _users(app) if u["username"] == "rev")
        page = admin.get(f"{url}/admin/users", timeout=10).text
        assert f'action="/admin/users/{rev_id}/sessions"' in page and "1 open" in page
        assert _post(admin, url, f"/admin/users/{rev_id}/sessions").status_code == 302
        assert not _logged_in(rev, url) and _logged_in(admin, url)

        rev = http_login(url, "rev")
        copied = _copy(rev)
        assert _post(admin, url, f"/admin/users/{rev_id}/active", active="0").status_code == 302
        assert _post(admin, url, f"/admin/users/{rev_id}/active", active="1").status_code == 302
        # Enabled again, the old sessions stay ended: a new login is needed.
        assert not _logged_in(rev, url) and not _logged_in(copied, url)
        assert _logged_in(http_login(url, "rev"), url)
    db = connect(app.config["DATABASE"])
    event = db.execute(
        "SELECT user_id, target_id, after FROM events WHERE action = 'user.sessions.end'"
    ).fetchone()
    assert str(event[1]) == str(rev_id) and '"ended": 1' in event[2]
    db.close()
    reasons = [r["ended_reason"] for r in _sessions(app) if r["username"] == "rev"]
    assert reasons == ["ended by an admin", "disabled", None]


def test_csrf_token_is_rotated_at_login(tmp_path):
    app = live_app(tmp_path / "i")
    with serve(app) as url:
        s = requests.Session()
        before = csrf_token(s.get(f"{url}/login", timeout=10).text)
        r = s.post(
            f"{url}/login",
            data={"username": "rev", "password": PASSWORD, "csrf_token": before},
            allow_redirects=False,
            timeout=10,
        )
        assert r.status_code == 302
        after = csrf_token(s.get(f"{url}/", timeout=10).text)
        assert after != before
        # The token from before the login is refused now; the new one works.
        old = s.post(f"{url}/logout", data={"csrf_token": before}, allow_redirects=False, timeout=10)
        assert old.status_code == 400
        assert (
            s.post(f"{url}/logout", data={"csrf_token": after}, allow_redirects=False, timeout=10).status_code
            == 302
        )


def test_cli_ends_sessions(tmp_path):
    app = live_app(tmp_path / "i")
    with serve(app) as url:
        rev = http_login(url, "rev")
        r = app.test_cli_runner().invoke(args=["oiap", "user", "end-sessions", "rev"])
        assert r.exit_code == 0 and "1 session(s) of rev ended" in r.output
        assert not _logged_in(rev, url)
        r = app.test_cli_runner().invoke(args=["oiap", "user", "end-sessions", "nobody"])
        assert r.exit_code != 0 and "no user 'nobody'" in r.output
        assert app.test_cli_runner().invoke(args=["oiap", "user", "end-sessions", "--help"]).exit_code == 0


# --- issue 19 point 9: restore refuses under a server; backup leaves one file ------------------


def test_restore_refuses_while_a_server_holds_the_store(tmp_path):
    app = live_app(tmp_path / "i", SERVING_LOCK=True)
    runner = app.test_cli_runner()
    backup = tmp_path / "b.sqlite3"
    assert runner.invoke(args=["oiap", "backup", str(backup)]).exit_code == 0
    with serve(app) as url:
        rev = http_login(url, "rev")
        r = runner.invoke(args=["oiap", "restore", str(backup), "--force"])
        assert r.exit_code != 0 and "a server is serving" in r.output and "stop the server" in r.output
        # Nothing was written: the session made after the backup is still there and works.
        assert _logged_in(rev, url)
    r = runner.invoke(args=["oiap", "restore", str(backup), "--force"])
    # This test process served the store, and holds its lock until it exits: still refused here.
    assert r.exit_code != 0 and "a server is serving" in r.output


def test_restore_without_a_server_and_backup_leaves_no_sidecar_files(tmp_path):
    app = live_app(tmp_path / "i")
    runner = app.test_cli_runner()
    backup = tmp_path / "out" / "b.sqlite3"
    backup.parent.mkdir()
    r = runner.invoke(args=["oiap", "backup", str(backup)])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in backup.parent.iterdir()) == ["b.sqlite3"]
    db = connect(app.config["DATABASE"])
    db.execute("INSERT INTO events (at, action) VALUES ('t', 'after-backup')")
    db.conn.commit()
    db.close()
    r = runner.invoke(args=["oiap", "restore", str(backup), "--force"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in backup.parent.iterdir()) == ["b.sqlite3"]
    db = connect(app.config["DATABASE"])
    assert db.execute("SELECT count(*) FROM events WHERE action = 'after-backup'").fetchone()[0] == 0
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
