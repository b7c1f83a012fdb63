"""Users: creation, lookup, passwords, roles. Domain functions take db first.

Passwords are stored with werkzeug's `generate_password_hash` default, which in the pinned
Werkzeug 3.1 is scrypt (N=2**15, r=8, p=1) with a random 16-character salt: slow and salted.
Every change is written to the audit log (`events`) with the acting user (`by`; None from the CLI).
"""

import hashlib
from dataclasses import dataclass
from functools import cache

from sqlite_utils import Database
from werkzeug.security import check_password_hash, generate_password_hash

from ..audit.events import log_event
from ..db import immediate, now
from ..errors import InvalidInput, NotFound
from .sessions import end_user_sessions, note_seen

ROLES = ("admin", "reviewer")
MIN_PASSWORD = 8
# None: werkzeug's default (scrypt). tests/conftest.py lowers it, as Django's test settings do,
# so that each fixture user does not cost a third of a second; nothing else may set it.
HASH_METHOD: str | None = None


def hash_password(password: str) -> str:
    """A slow salted hash of the password (werkzeug's default method unless HASH_METHOD is set)."""
    if HASH_METHOD:
        return generate_password_hash(password, method=HASH_METHOD)
    return generate_password_hash(password)


@dataclass
class User:
    id: int
    username: str
    role: str
    active: bool
    # Derived from the password hash (no longer what ends sessions: the sessions table does that).
    session_token: str = ""
    # The server-side session (app/auth/sessions.py) this login is; set at login and by the loader.
    session_id: str = ""

    # Flask-Login's interface.
    is_anonymous = False

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def get_id(self) -> str:
        return f"{self.id}:{self.session_id}"


def _token(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def _user(row: dict) -> User:
    return User(
        id=row["id"],
        username=row["username"],
        role=row["role"],
        active=bool(row["active"]),
        session_token=_token(row["password_hash"]) if row.get("password_hash") else "",
    )


def get_user(db: Database, user_id: int) -> User | None:
    """The user with that id, or None."""
    rows = list(db.query("SELECT * FROM users WHERE id = ?", [user_id]))
    return _user(rows[0]) if rows else None


def find_user(db: Database, username: str) -> User | None:
    """The user with that name, or None."""
    rows = list(db.query("SELECT * FROM users WHERE username = ?", [username]))
    return _user(rows[0]) if rows else None


def load_session_user(db: Database, session_id: str) -> User | None:
    """The active user a session id ("user id:server session id") names, or None when the user is
    disabled or the session ended (logout, password change, disable, an admin ended it)."""
    user_id, _, sid = session_id.partition(":")
    if not (user_id.isascii() and user_id.isdigit()) or not sid:
        return None
    # One primary-key read of the session with its user, on every request: the user's row and the
    # session's were two queries (and the password hash read and hashed again), 0.07 ms a request.
    row = db.execute(
        "SELECT u.id, u.username, u.role, u.active, s.last_seen_at FROM sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.id = ? AND s.user_id = ? AND s.ended_at IS NULL",
        [sid, int(user_id)],
    ).fetchone()
    if row is None or not row[3]:
        return None
    note_seen(db, sid, row[4])
    return User(id=row[0], username=row[1], role=row[2], active=True, session_id=sid)


def _require(db: Database, username: str) -> User:
    user = find_user(db, username)
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"a password needs at least {MIN_PASSWORD} characters")


def _active_admins(db: Database) -> int:
    return db.execute("SELECT count(*) FROM users WHERE role = 'admin' AND active = 1").fetchone()[0]


def create_user(
    db: Database, username: str, password: str, role: str = "reviewer", *, by: int | None = None
) -> User:
    """Add a user; refuses a taken name, an unknown role or a short password."""
    username = username.strip()
    if not username or len(username) > 64:
        raise InvalidInput("a username needs 1 to 64 characters")
    if not username.isprintable():
        raise InvalidInput("a username cannot contain control characters")
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}; use one of: {', '.join(ROLES)}")
    _check_password(password)
    password_hash = hash_password(password)
    with immediate(db):
        if find_user(db, username):
            raise InvalidInput(f"user {username!r} exists already")
        user_id = db.execute(
            "INSERT INTO users (username, password_hash, role, active, created_at) VALUES (?, ?, ?, 1, ?)",
            [username, password_hash, role, now()],
        ).lastrowid
        log_event(
            db,
            "user.add",
            user_id=by,
            target_type="user",
            target_id=user_id,
            after={"username": username, "role": role},
        )
    return get_user(db, user_id)


@cache
def _dummy_hash() -> str:
    return hash_password("not a password")


def authenticate(db: Database, username: str, password: str) -> tuple[User | None, str]:
    """Check a login: (user, "") on success, else (user or None, why) for the audit log only."""
    rows = list(db.query("SELECT * FROM users WHERE username = ?", [username]))
    if not rows:
        # Hash anyway, so the answer takes as long for an unknown name as for a wrong password.
        check_password_hash(_dummy_hash(), password)
        return None, "unknown user"
    user = _user(rows[0])
    if not check_password_hash(rows[0]["password_hash"], password):
        return user, "wrong password"
    if not user.active:
        return user, "disabled"
    return user, ""


def check_login(db: Database, username: str, password: str) -> User | None:
    """The active user whose password matches, or None."""
    user, why = authenticate(db, username, password)
    return None if why else user


def set_password(db: Database, username: str, password: str, *, by: int | None = None) -> None:
    """Change a user's password; their existing sessions end (the caller may start a new one)."""
    _check_password(password)
    password_hash = hash_password(password)
    with immediate(db):
        user = _require(db, username)
        db.execute("UPDATE users SET password_hash = ? WHERE id = ?", [password_hash, user.id])
        end_user_sessions(db, user.id, "password")
        # Never the hash: the event says only that it changed.
        log_event(db, "user.password", user_id=by, target_type="user", target_id=user.id)


def set_active(db: Database, username: str, active: bool, *, by: int | None = None) -> None:
    """Enable or disable a user; refuses to disable the last active admin."""
    with immediate(db):
        user = _require(db, username)
        if user.active == active:
            return
        if not active and user.is_admin and _active_admins(db) <= 1:
            raise InvalidInput(f"{username!r} is the last active admin; make another admin first")
        db.execute("UPDATE users SET active = ? WHERE id = ?", [int(active), user.id])
        if not active:
            end_user_sessions(db, user.id, "disabled")
        log_event(
            db,
            "user.enable" if active else "user.disable",
            user_id=by,
            target_type="user",
            target_id=user.id,
            before={"active": user.active},
            after={"active": active},
        )


def set_role(db: Database, username: str, role: str, *, by: int | None = None) -> None:
    """Change a user's role; refuses to demote the last active admin."""
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}; use one of: {', '.join(ROLES)}")
    with immediate(db):
        user = _require(db, username)
        if user.role == role:
            return
        if user.is_admin and user.active and _active_admins(db) <= 1:
            raise InvalidInput(f"{username!r} is the last active admin; make another admin first")
        db.execute("UPDATE users SET role = ? WHERE id = ?", [role, user.id])
        log_event(
            db,
            "user.role",
            user_id=by,
            target_type="user",
            target_id=user.id,
            before={"role": user.role},
            after={"role": role},
        )


def list_users(db: Database) -> list[dict]:
    """Every user, without password hashes."""
    return list(db.query("SELECT id, username, role, active, created_at FROM users ORDER BY id"))


def recent_account_events(db: Database, limit: int = 30) -> list[dict]:
    """The latest login and user-management events, newest first, with the actor's name."""
    return list(
        db.query(
            "SELECT e.id, e.at, e.action, e.target_id, e.before, e.after, u.username AS actor, t.username AS target_name"
            " FROM events e LEFT JOIN users u ON u.id = e.user_id"
            " LEFT JOIN users t ON e.target_type = 'user' AND t.id = e.target_id"
            " WHERE e.action LIKE 'user.%' OR e.action LIKE 'login%' OR e.action = 'logout'"
            " ORDER BY e.id DESC LIMIT ?",
            [limit],
        )
    )
