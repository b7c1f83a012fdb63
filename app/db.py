"""The one path into the database: a sqlite-utils Database per app context."""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import click
from flask import Flask, current_app, g
from sqlite_utils import Database

BUSY_TIMEOUT_MS = 10_000


def now() -> str:
    """The current UTC time as ISO 8601 text, as every timestamp column stores it."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def connect(path: str) -> Database:
    """Open a connection with the pragmas every user of the store relies on."""
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    # WAL is set once by a migration and persists; NORMAL is durable in WAL mode
    # against application crashes, which is what we need on a LAN server.
    conn.execute("PRAGMA synchronous = NORMAL")
    return Database(conn)


def get_db() -> Database:
    """The request's (or CLI command's) database, opened on first use."""
    if "db" not in g:
        g.db = connect(current_app.config["DATABASE"])
    return g.db


def close_db(e: BaseException | None = None) -> None:
    """Close the app context's connection, if one was opened."""
    db = g.pop("db", None)
    if db is not None:
        db.close()


@contextmanager
def immediate(db: Database) -> Iterator[Database]:
    """A write transaction that takes the write lock at BEGIN.

    A deferred transaction that reads then writes can fail with SQLITE_BUSY
    without waiting when another writer got in between; BEGIN IMMEDIATE waits
    on the busy timeout instead. Inside an open transaction it becomes a savepoint.
    """
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise
    else:
        db.conn.execute("COMMIT")


def migrate(db: Database) -> list[str]:
    """Apply pending migrations; returns the names applied."""
    from .migrations import migrations

    pending = [m.name for m in migrations.pending(db)]
    migrations.apply(db)
    return pending


def log_event(
    db: Database,
    action: str,
    *,
    user_id: int | None = None,
    target_type: str | None = None,
    target_id: int | str | None = None,
    before: dict | None = None,
    after: dict | None = None,
    set_id: int | None = None,
) -> None:
    """Append one row to the audit log."""
    import json

    db.execute(
        "INSERT INTO events (at, user_id, action, target_type, target_id, set_id, before, after)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            now(),
            user_id,
            action,
            target_type,
            None if target_id is None else str(target_id),
            set_id,
            None if before is None else json.dumps(before),
            None if after is None else json.dumps(after),
        ],
    )


def init_app(app: Flask) -> None:
    """Register teardown of the connection."""
    app.teardown_appcontext(close_db)


def echo_applied(applied: list[str]) -> None:
    """Tell the user which migrations ran."""
    if applied:
        for name in applied:
            click.echo(f"applied {name}")
    else:
        click.echo("database is up to date")
