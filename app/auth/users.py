"""Users: creation, lookup, passwords. Domain functions take db first."""

from dataclasses import dataclass

from sqlite_utils import Database
from werkzeug.security import check_password_hash, generate_password_hash

from ..db import now
from ..errors import InvalidInput, NotFound

ROLES = ("admin", "reviewer")


@dataclass
class User:
    id: int
    username: str
    role: str
    active: bool

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
        return str(self.id)


def _user(row: dict) -> User:
    return User(id=row["id"], username=row["username"], role=row["role"], active=bool(row["active"]))


def get_user(db: Database, user_id: int) -> User | None:
    """The user with that id, or None."""
    rows = list(db.query("SELECT * FROM users WHERE id = ?", [user_id]))
    return _user(rows[0]) if rows else None


def find_user(db: Database, username: str) -> User | None:
    """The user with that name, or None."""
    rows = list(db.query("SELECT * FROM users WHERE username = ?", [username]))
    return _user(rows[0]) if rows else None


def create_user(db: Database, username: str, password: str, role: str = "reviewer") -> User:
    """Add a user; refuses a taken name, an unknown role or a short password."""
    username = username.strip()
    if not username or len(username) > 64:
        raise InvalidInput("a username needs 1 to 64 characters")
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}; use one of: {', '.join(ROLES)}")
    if len(password) < 8:
        raise InvalidInput("a password needs at least 8 characters")
    if find_user(db, username):
        raise InvalidInput(f"user {username!r} exists already")
    db.execute(
        "INSERT INTO users (username, password_hash, role, active, created_at) VALUES (?, ?, ?, 1, ?)",
        [username, generate_password_hash(password), role, now()],
    )
    return find_user(db, username)


def check_login(db: Database, username: str, password: str) -> User | None:
    """The active user whose password matches, or None."""
    rows = list(db.query("SELECT * FROM users WHERE username = ?", [username]))
    if not rows or not rows[0]["active"]:
        return None
    if not check_password_hash(rows[0]["password_hash"], password):
        return None
    return _user(rows[0])


def set_password(db: Database, username: str, password: str) -> None:
    """Change a user's password."""
    if len(password) < 8:
        raise InvalidInput("a password needs at least 8 characters")
    if not find_user(db, username):
        raise NotFound(f"no user {username!r}")
    db.execute(
        "UPDATE users SET password_hash = ? WHERE username = ?",
        [generate_password_hash(password), username],
    )


def set_active(db: Database, username: str, active: bool) -> None:
    """Enable or disable a user."""
    if not find_user(db, username):
        raise NotFound(f"no user {username!r}")
    db.execute("UPDATE users SET active = ? WHERE username = ?", [int(active), username])


def list_users(db: Database) -> list[dict]:
    """Every user, without password hashes."""
    return list(db.query("SELECT id, username, role, active, created_at FROM users ORDER BY id"))
