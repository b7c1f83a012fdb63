"""Logins kept on the server: a `sessions` row per login, ended for good at logout and beyond.

The signed cookie only names a session (`<user id>:<session id>`, Flask-Login's user id); the row
decides whether it still works. So a cookie copied before logout, a password change, disabling the
user, or an admin's "end sessions" stops working at its next request, whatever the cookie says and
however long it would otherwise live. `last_seen_at` is written at most once a minute per session
(a write on every request would cost more than the request).
"""

import secrets
from datetime import UTC, datetime, timedelta

from sqlite_utils import Database

from ..audit.events import log_event
from ..db import immediate, now

SEEN_EVERY = timedelta(seconds=60)


def start_session(db: Database, user_id: int, address: str | None = None) -> str:
    """Open a session for a user who has just proved who they are; returns its id."""
    sid = secrets.token_urlsafe(32)
    stamp = now()
    with immediate(db):
        db.execute(
            "INSERT INTO sessions (id, user_id, created_at, last_seen_at, address) VALUES (?, ?, ?, ?, ?)",
            [sid, user_id, stamp, stamp, address],
        )
    return sid


def note_seen(db: Database, sid: str, last_seen_at: str) -> None:
    """Write the session's last_seen_at when the stored one is a minute old or more."""
    stamp = now()
    if _parse(stamp) - _parse(last_seen_at) >= SEEN_EVERY:
        with immediate(db):
            db.execute("UPDATE sessions SET last_seen_at = ? WHERE id = ? AND ended_at IS NULL", [stamp, sid])


def _parse(stamp: str) -> datetime:
    t = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def end_session(db: Database, sid: str, reason: str) -> None:
    """End one session (logout)."""
    with immediate(db):
        db.execute(
            "UPDATE sessions SET ended_at = ?, ended_reason = ? WHERE id = ? AND ended_at IS NULL",
            [now(), reason, sid],
        )


def end_user_sessions(
    db: Database, user_id: int, reason: str, *, by: int | None = None, log: bool = False
) -> int:
    """End every open session of a user (in the caller's transaction, if any); returns how many."""
    with immediate(db):
        n = db.execute(
            "UPDATE sessions SET ended_at = ?, ended_reason = ? WHERE user_id = ? AND ended_at IS NULL",
            [now(), reason, user_id],
        ).rowcount
        if log:
            log_event(
                db, "user.sessions.end", user_id=by, target_type="user", target_id=user_id, after={"ended": n}
            )
    return n


def open_sessions(db: Database, user_id: int | None = None) -> list[dict]:
    """Open sessions, newest first (all users', or one user's), without their ids."""
    where, params = ("AND s.user_id = ?", [user_id]) if user_id is not None else ("", [])
    return list(
        db.query(
            "SELECT s.user_id, u.username, s.created_at, s.last_seen_at, s.address FROM sessions s"
            f" JOIN users u ON u.id = s.user_id WHERE s.ended_at IS NULL {where} ORDER BY s.created_at DESC",
            params,
        )
    )
