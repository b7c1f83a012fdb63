"""Accounts: passwords, sessions, login throttling and audit, the users page, the user CLI."""

import json

import pytest
from werkzeug.security import check_password_hash

from app.auth import users
from app.auth.users import authenticate, check_login, create_user, find_user, set_active, set_password
from tests.conftest import PASSWORD, login

NEW_PASSWORD = "another long password"


def events(db, action=None):
    sql = "SELECT * FROM events" + (" WHERE action = ?" if action else "") + " ORDER BY id"
    rows = list(db.query(sql, [action] if action else []))
    for r in rows:
        r["after"] = json.loads(r["after"]) if r["after"] else None
        r["before"] = json.loads(r["before"]) if r["before"] else None
    return rows


# --- passwords and sessions -----------------------------------------------------


def test_password_stored_with_slow_salted_hash(db, monkeypatch):
    monkeypatch.setattr(users, "HASH_METHOD", None)  # production's setting, not the fixtures' cheap one
    create_user(db, "hana", PASSWORD)
    create_user(db, "ivan", PASSWORD)
    hashes = [
        r["password_hash"]
        for r in db.query("SELECT password_hash FROM users WHERE username IN ('hana', 'ivan')")
    ]
    # werkzeug 3.1's default: scrypt with N=2**15, r=8, p=1, and a per-password salt.
    assert all(h.startswith("scrypt:32768:8:1$") for h in hashes)
    # Same password, different salts, different hashes.
    assert len(set(hashes)) == len(hashes) == 2
    assert all(PASSWORD not in h for h in hashes)
    assert check_password_hash(hashes[0], PASSWORD)
    assert check_login(db, "hana", PASSWORD).username == "hana"


def test_authenticate_reasons(db):
    assert authenticate(db, "rev", PASSWORD)[1] == ""
    assert authenticate(db, "rev", "wrong password")[1] == "wrong password"
    assert authenticate(db, "nobody", PASSWORD) == (None, "unknown user")
    set_active(db, "rev", False)
    assert authenticate(db, "rev", PASSWORD)[1] == "disabled"


def test_login_and_logout_are_audited(app, client, db):
    r = login(client, "rev")
    assert r.status_code == 302
    assert client.get("/").status_code == 200
    r = client.post("/logout")
    assert r.status_code == 302 and r.headers["Location"].endswith("/login")
    assert client.get("/").status_code == 302
    rev = find_user(db, "rev")
    login_event, logout_event = events(db, "login")[0], events(db, "logout")[0]
    assert login_event["user_id"] == rev.id
    assert login_event["after"] == {"username": "rev", "address": "127.0.0.1"}
    assert logout_event["user_id"] == rev.id and logout_event["after"]["address"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("username", "password", "reason"),
    [("rev", "wrong password", "wrong password"), ("ghost", PASSWORD, "unknown user")],
)
def test_failed_login_is_audited_with_username_and_address(client, db, username, password, reason):
    r = login(client, username, password)
    assert r.status_code == 401
    assert b"Wrong username or password" in r.data
    [event] = events(db, "login.failed")
    assert event["user_id"] is None
    assert event["after"] == {"username": username, "address": "127.0.0.1", "reason": reason}


def test_disabled_user_cannot_log_in(client, db):
    set_active(db, "rev", False)
    assert login(client, "rev").status_code == 401
    assert events(db, "login.failed")[0]["after"]["reason"] == "disabled"


def test_disabled_user_session_stops_at_next_request(reviewer_client, db):
    assert reviewer_client.get("/").status_code == 200
    set_active(db, "rev", False)
    r = reviewer_client.get("/")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    # Flask-Login dropped the refused session: enabling the user again does not revive it.
    set_active(db, "rev", True)
    assert reviewer_client.get("/").status_code == 302


def test_password_change_ends_existing_sessions(reviewer_client, client, db):
    assert reviewer_client.get("/").status_code == 200
    set_password(db, "rev", NEW_PASSWORD)
    r = reviewer_client.get("/")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    assert login(client, "rev", PASSWORD).status_code == 401
    assert login(client, "rev", NEW_PASSWORD).status_code == 302


def test_tampered_session_id_is_refused(app, reviewer_client):
    with reviewer_client.session_transaction() as s:
        user_id = s["_user_id"]
        s["_user_id"] = user_id.split(":")[0]  # an id without the password token
    assert reviewer_client.get("/").status_code == 302


def test_login_redirects_only_to_local_paths(client):
    r = client.post("/login?next=//evil.example/x", data={"username": "rev", "password": PASSWORD})
    assert r.headers["Location"] == "/"
    r = client.post("/login?next=/admin/users", data={"username": "rev", "password": PASSWORD})
    assert r.headers["Location"] == "/admin/users"


def test_change_own_password(app, reviewer_client, db):
    other = app.test_client()
    assert login(other, "rev").status_code == 302
    assert reviewer_client.get("/account/password").status_code == 200
    form = {"current": PASSWORD, "new": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    r = reviewer_client.post("/account/password", data={**form, "current": "not it at all"})
    assert r.status_code == 403 and b"current password is not right" in r.data
    r = reviewer_client.post("/account/password", data={**form, "confirm": "something else"})
    assert r.status_code == 400 and b"differ" in r.data
    r = reviewer_client.post("/account/password", data={**form, "new": "short", "confirm": "short"})
    assert r.status_code == 400 and b"at least 8 characters" in r.data
    r = reviewer_client.post("/account/password", data=form)
    assert r.status_code == 302
    # This session goes on; the other one has ended.
    assert reviewer_client.get("/").status_code == 200
    assert other.get("/").status_code == 302
    assert login(app.test_client(), "rev", NEW_PASSWORD).status_code == 302
    rev_id = find_user(db, "rev").id
    assert [e["user_id"] for e in events(db, "user.password")] == [rev_id]
    assert len(events(db, "user.password.failed")) == 1


def test_change_own_password_is_throttled(reviewer_client):
    form = {"current": "not it at all", "new": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    for _ in range(5):
        assert reviewer_client.post("/account/password", data=form).status_code == 403
    r = reviewer_client.post("/account/password", data={**form, "current": PASSWORD})
    assert r.status_code == 429 and b"Too many wrong passwords" in r.data


# --- throttling -----------------------------------------------------------------


def _try(client, username, address, password="wrong password"):
    return client.post(
        "/login",
        data={"username": username, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )


def test_login_throttled_per_user_and_address(client, db):
    # 5 failures a minute for a username from one address; from another address the user gets in.
    for _ in range(5):
        assert _try(client, "rev", "10.0.0.1").status_code == 401
    r = _try(client, "rev", "10.0.0.1", PASSWORD)
    assert r.status_code == 429
    assert b"Too many failed logins for this user from this address" in r.data
    assert int(r.headers["Retry-After"]) > 0
    assert _try(client, "rev", "10.0.0.99", PASSWORD).status_code == 302
    [event] = events(db, "login.throttled")
    assert event["after"]["username"] == "rev" and event["after"]["address"] == "10.0.0.1"
    assert event["after"]["limit"] == "5 per minute"
    assert len(events(db, "login.failed")) == 5


def test_login_throttled_per_user_across_addresses(client, db):
    # A larger ceiling per username, whatever the addresses: 20 a minute.
    for i in range(20):
        assert _try(client, "rev", f"10.0.0.{i % 4}").status_code == 401
    r = _try(client, "rev", "10.0.0.99", PASSWORD)
    assert r.status_code == 429
    assert b"Too many failed logins for this user. Wait" in r.data
    # Another user is not affected.
    assert _try(client, "admin", "10.0.0.99", PASSWORD).status_code == 302
    [event] = events(db, "login.throttled")
    assert event["after"]["username"] == "rev" and event["after"]["address"] == "10.0.0.99"


def test_bad_limit_settings_are_named(tmp_path):
    from app.errors import InvalidInput
    from tests.live import instance_app

    with pytest.raises(
        InvalidInput, match="LOGIN_LIMIT_PER_USER is 'lots': write it as '<count> per <unit>'"
    ):
        instance_app(tmp_path / "instance", LOGIN_LIMIT_PER_USER="lots")


def test_login_throttled_per_address_across_users(client, db):
    # 20 failures a minute per address, spread over names so no per-user limit trips.
    for i in range(20):
        assert _try(client, f"user{i}", "10.1.1.1").status_code == 401
    r = _try(client, "rev", "10.1.1.1", PASSWORD)
    assert r.status_code == 429
    assert b"Too many failed logins from this address" in r.data
    # The same user from another address still gets in.
    assert _try(client, "rev", "10.1.1.2", PASSWORD).status_code == 302
    assert events(db, "login.throttled")[0]["after"]["address"] == "10.1.1.1"


def test_successful_logins_are_not_counted(client):
    for _ in range(8):
        assert _try(client, "rev", "10.2.2.2", PASSWORD).status_code == 302


# --- admin users page -----------------------------------------------------------


def test_users_page_lists_users(admin_client):
    r = admin_client.get("/admin/users")
    assert r.status_code == 200
    assert b"rev" in r.data and b"Add a user" in r.data


def test_reviewer_gets_403_with_reason(reviewer_client, db):
    r = reviewer_client.get("/admin/users")
    assert r.status_code == 403
    assert b"This action needs an admin account" in r.data
    r = reviewer_client.post("/admin/users", data={"username": "x", "password": NEW_PASSWORD})
    assert r.status_code == 403
    assert find_user(db, "x") is None


def test_admin_adds_user_through_the_web_audited(admin_client, db):
    r = admin_client.post(
        "/admin/users", data={"username": "carol", "password": NEW_PASSWORD, "role": "reviewer"}
    )
    assert r.status_code == 302
    carol = find_user(db, "carol")
    assert carol.role == "reviewer"
    [event] = events(db, "user.add")[-1:]
    assert event["user_id"] == find_user(db, "admin").id
    assert event["target_id"] == str(carol.id) and event["after"] == {"username": "carol", "role": "reviewer"}
    assert b"carol" in admin_client.get("/admin/users").data


def test_admin_add_refusal_is_shown(admin_client, db):
    r = admin_client.post(
        "/admin/users",
        data={"username": "dave", "password": "short", "role": "reviewer"},
        follow_redirects=True,
    )
    assert b"a password needs at least 8 characters" in r.data
    assert find_user(db, "dave") is None


def test_admin_changes_role_disables_and_resets_password(app, admin_client, reviewer_client, db):
    rev = find_user(db, "rev")
    admin_id = find_user(db, "admin").id
    admin_client.post(f"/admin/users/{rev.id}/role", data={"role": "admin"})
    assert find_user(db, "rev").role == "admin"
    admin_client.post(f"/admin/users/{rev.id}/active", data={"active": "0"})
    assert not find_user(db, "rev").active
    assert reviewer_client.get("/").status_code == 302
    admin_client.post(f"/admin/users/{rev.id}/active", data={"active": "1"})
    assert find_user(db, "rev").active
    admin_client.post(f"/admin/users/{rev.id}/password", data={"password": NEW_PASSWORD})
    c = app.test_client()
    assert login(c, "rev", NEW_PASSWORD).status_code == 302
    actions = [
        (e["action"], e["user_id"], e["target_id"]) for e in events(db) if e["action"].startswith("user.")
    ]
    assert actions[-4:] == [
        ("user.role", admin_id, str(rev.id)),
        ("user.disable", admin_id, str(rev.id)),
        ("user.enable", admin_id, str(rev.id)),
        ("user.password", admin_id, str(rev.id)),
    ]
    # The password event never holds the password or its hash.
    assert all(NEW_PASSWORD not in json.dumps(e) for e in events(db))


def test_admin_resetting_own_password_stays_logged_in(admin_client, db):
    admin = find_user(db, "admin")
    admin_client.post(f"/admin/users/{admin.id}/password", data={"password": NEW_PASSWORD})
    assert admin_client.get("/admin/users").status_code == 200


def test_last_admin_cannot_be_demoted_or_disabled(admin_client, db):
    admin = find_user(db, "admin")
    r = admin_client.post(f"/admin/users/{admin.id}/role", data={"role": "reviewer"}, follow_redirects=True)
    assert b"last active admin" in r.data
    admin_client.post(f"/admin/users/{admin.id}/active", data={"active": "0"})
    assert find_user(db, "admin").is_admin and find_user(db, "admin").active


def test_users_page_shows_account_events(admin_client, client):
    login(client, "rev", "wrong password")
    r = admin_client.get("/admin/users")
    assert b"login.failed" in r.data


# --- CLI ------------------------------------------------------------------------


def test_cli_user_commands(runner, app, db):
    r = runner.invoke(
        args=["oiap", "user", "add", "erin", "--role", "admin", "--password-stdin"], input=f"{PASSWORD}\n"
    )
    assert r.exit_code == 0, r.output
    assert "added erin (admin)" in r.output
    r = runner.invoke(args=["oiap", "user", "list", "--json"])
    users = {u["username"]: u for u in json.loads(r.output)}
    assert users["erin"]["role"] == "admin" and users["erin"]["active"] == 1
    assert all("password_hash" not in u for u in users.values())

    c = app.test_client()
    assert login(c, "erin").status_code == 302
    r = runner.invoke(args=["oiap", "user", "passwd", "erin", "--password-stdin"], input=f"{NEW_PASSWORD}\n")
    assert r.exit_code == 0, r.output
    assert c.get("/").status_code == 302  # the password change ended the session
    assert login(c, "erin", NEW_PASSWORD).status_code == 302

    r = runner.invoke(args=["oiap", "user", "disable", "erin"])
    assert r.exit_code == 0 and "disabled erin" in r.output
    assert c.get("/").status_code == 302
    assert json.loads(runner.invoke(args=["oiap", "user", "list", "--json"]).output)[-1]["active"] == 0
    assert "(disabled)" in runner.invoke(args=["oiap", "user", "list"]).output

    assert runner.invoke(args=["oiap", "user", "enable", "erin"]).exit_code == 0
    assert runner.invoke(args=["oiap", "user", "role", "erin", "reviewer"]).exit_code == 0
    assert find_user(db, "erin").role == "reviewer" and find_user(db, "erin").active
    # CLI changes are audited too, with no web user as the actor.
    erin_events = [e for e in events(db) if e["target_id"] == str(find_user(db, "erin").id)]
    assert [e["action"] for e in erin_events if e["action"].startswith("user.")] == [
        "user.add",
        "user.password",
        "user.disable",
        "user.enable",
        "user.role",
    ]
    assert all(e["user_id"] is None for e in erin_events if e["action"].startswith("user."))


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["add", "rev", "--password-stdin"], f"{PASSWORD}\n", "exists already"),
        (["add", "frank", "--password-stdin"], "short\n", "at least 8 characters"),
        (["passwd", "nobody", "--password-stdin"], f"{PASSWORD}\n", "no user 'nobody'"),
        (["disable", "admin"], None, "last active admin"),
    ],
)
def test_cli_user_errors(runner, args, stdin, message):
    r = runner.invoke(args=["oiap", "user", *args], input=stdin)
    assert r.exit_code != 0
    assert message in r.output
