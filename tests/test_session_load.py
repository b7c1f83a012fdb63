"""Loading the logged-in user on every request (app/auth/users.load_session_user): one read of the
session with its user, and the same refusals as before (ended, disabled, another user's session)."""

from app.auth.sessions import end_session, start_session
from app.auth.users import find_user, load_session_user, set_active
from app.db import fetch_rows


def _statements(db, fn):
    seen: list[str] = []
    db.conn.set_trace_callback(seen.append)
    try:
        return fn(), seen
    finally:
        db.conn.set_trace_callback(None)


def test_a_live_session_loads_its_user_in_one_statement(db):
    rev = find_user(db, "rev")
    sid = start_session(db, rev.id, "127.0.0.1")
    user, seen = _statements(db, lambda: load_session_user(db, f"{rev.id}:{sid}"))
    assert (user.id, user.username, user.role, user.active, user.session_id) == (
        rev.id,
        "rev",
        "reviewer",
        True,
        sid,
    )
    assert user.get_id() == f"{rev.id}:{sid}"
    assert len(seen) == 1 and seen[0].startswith("SELECT")  # seen just now: no last_seen_at write


def test_a_session_seen_a_minute_ago_is_noted_as_seen(db):
    rev = find_user(db, "rev")
    sid = start_session(db, rev.id)
    db.execute("UPDATE sessions SET last_seen_at = '2026-01-01T00:00:00.000+00:00' WHERE id = ?", [sid])
    db.conn.commit()
    assert load_session_user(db, f"{rev.id}:{sid}").username == "rev"
    (row,) = fetch_rows(db, "SELECT last_seen_at FROM sessions WHERE id = ?", [sid])
    assert row["last_seen_at"] > "2026-01-01T00:00:00.000+00:00"


def test_ended_disabled_and_borrowed_sessions_load_nobody(db):
    rev, admin = find_user(db, "rev"), find_user(db, "admin")
    sid = start_session(db, rev.id)
    assert load_session_user(db, f"{admin.id}:{sid}") is None  # rev's session under admin's id
    assert load_session_user(db, f"{rev.id}:nosuchsession") is None
    assert load_session_user(db, f"x{rev.id}:{sid}") is None and load_session_user(db, f"{rev.id}:") is None
    set_active(db, "rev", False)
    assert load_session_user(db, f"{rev.id}:{sid}") is None
    set_active(db, "rev", True)
    sid2 = start_session(db, rev.id)
    assert load_session_user(db, f"{rev.id}:{sid2}") is not None
    end_session(db, sid2, "logout")
    assert load_session_user(db, f"{rev.id}:{sid2}") is None


def test_fetch_rows_reads_as_query_does_without_a_savepoint(db):
    sql, params = "SELECT id, username, role FROM users WHERE role = ? ORDER BY id", ["reviewer"]
    expected = list(db.query(sql, params))
    got, seen = _statements(db, lambda: fetch_rows(db, sql, params))
    assert got == expected and got and set(got[0]) == {"id", "username", "role"}
    assert seen == [sql.replace("?", "'reviewer'")]  # the SELECT alone: no SAVEPOINT, no RELEASE
    assert fetch_rows(db, "SELECT 1 AS one WHERE 0") == []
