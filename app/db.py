"""The one path into the database: a sqlite-utils Database per app context."""

import errno
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

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
    db = Database(conn)
    db.oiap_path = path
    return db


# One connection per server thread, kept between requests: opening one costs the pragmas and a
# schema read, and closing the last one checkpoints the WAL with an fsync, milliseconds per request.
_local = threading.local()
_write_locks_guard = threading.Lock()


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


_checkpointers: dict[str, tuple[threading.Thread, threading.Event]] = {}


def _sync_wal(path: str) -> None:
    # fsync of the -wal file through a descriptor of our own: what synchronous=FULL does at every
    # COMMIT, once per interval for all of them. SQLite keeps no POSIX locks on the -wal file (they
    # are on the database and -shm files), so opening and closing it here releases none of them.
    try:
        fd = os.open(f"{path}-wal", os.O_RDONLY)
    except OSError:
        return  # no WAL (yet): nothing committed to lose
    try:
        os.fsync(fd)
    except OSError:
        pass  # the next round tries again
    finally:
        os.close(fd)


def _checkpoint_loop(path: str, interval: float, sync_interval: float, stop: threading.Event) -> None:
    db = connect(path)
    tick = sync_interval if 0 < sync_interval < interval else interval
    due = time.monotonic() + interval
    try:
        while not stop.wait(tick):
            if time.monotonic() < due:
                _sync_wal(path)
                continue
            due = time.monotonic() + interval
            try:
                # Copies the WAL into the database, syncing the WAL first and the database after.
                db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:
                pass  # busy or gone: the next round tries again
    finally:
        db.close()


def _start_checkpointer(path: str, interval: float, sync_interval: float = 0) -> None:
    # Checkpoints (copying the WAL into the database, with an fsync of each) run in this thread instead
    # of in whichever request commits the 1000th page, where they cost that request tens of ms. Each
    # one also slows the requests that run beside it (its copying and syncing share the two cores
    # and the disk with them), so they come every `interval` seconds, writing a page that many ratings
    # changed (an index page, the set's counters) once; in between, every `sync_interval` seconds,
    # only the WAL is synced, which bounds what a power loss can take back (synchronous=NORMAL
    # syncs nothing at COMMIT).
    with _write_locks_guard:
        if path not in _checkpointers:
            stop = threading.Event()
            t = threading.Thread(
                target=_checkpoint_loop,
                args=(path, interval, sync_interval, stop),
                name="oiap-checkpoint",
                daemon=True,
            )
            _checkpointers[path] = (t, stop)
            t.start()


def stop_checkpointer(path: str) -> None:
    """Stop the background checkpoints of a store, after one last checkpoint (tests, shutdown)."""
    with _write_locks_guard:
        entry = _checkpointers.pop(path, None)
    if entry is not None:
        entry[1].set()
        entry[0].join()
        db = connect(path)
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()


def _thread_connection(path: str, checkpoint_seconds: float = 0, sync_seconds: float = 0) -> Database:
    cached = getattr(_local, "db", None)
    ident = _file_id(path)
    if cached is not None:
        db, cached_path, cached_ident = cached
        # A restored store is a new file: never keep talking to the old one.
        if cached_path == path and cached_ident == ident and ident is not None:
            return db
        _local.db = None
        try:
            db.close()
        except sqlite3.Error:
            pass
    db = connect(path)
    if checkpoint_seconds:
        db.execute("PRAGMA wal_autocheckpoint = 0")
        _start_checkpointer(path, checkpoint_seconds, sync_seconds)
    _local.db = (db, path, _file_id(path))
    return db


def get_db() -> Database:
    """The request's (or CLI command's) database: the thread's kept connection, or a new one."""
    if "db" not in g:
        if current_app.config.get("DB_KEEP_CONNECTIONS", True):
            g.db = _thread_connection(
                current_app.config["DATABASE"],
                current_app.config.get("DB_CHECKPOINT_SECONDS") or 0,
                current_app.config.get("DB_WAL_SYNC_SECONDS") or 0,
            )
            g.db_kept = True
        else:
            g.db = connect(current_app.config["DATABASE"])
    return g.db


def close_db(e: BaseException | None = None) -> None:
    """End the app context's use of its connection: roll back what it left open, close or keep it."""
    db = g.pop("db", None)
    kept = g.pop("db_kept", False)
    if db is None:
        return
    if not kept:
        db.close()
        return
    try:
        # Uncommitted work never outlives its request, exactly as when the connection closed.
        if db.conn.in_transaction:
            db.conn.rollback()
    except sqlite3.Error:
        _local.db = None
        try:
            db.close()
        except sqlite3.Error:
            pass


# Writers queue on a lock before BEGIN IMMEDIATE: SQLite's busy handler polls with sleeps of 1 to
# 100 ms, a lock hands over at once. The server is one process (DESIGN.md), so a lock per store in
# this process is all the queue there is; another process (a CLI import beside the server) still
# waits on SQLite's busy timeout.
_write_locks: dict[str, "threading.RLock"] = {}


def _write_lock(db: Database) -> "threading.RLock | None":
    path = getattr(db, "oiap_path", None)
    if path is None or path == ":memory:":
        return None
    lock = _write_locks.get(path)
    if lock is None:
        with _write_locks_guard:
            lock = _write_locks.setdefault(path, threading.RLock())
    return lock


def reset_lock_wait() -> None:
    """Start counting this thread's wait for the write lock, and its time holding it, from zero
    (app.timing, per request)."""
    _local.lock_wait = 0.0
    _local.lock_held = 0.0


def lock_wait() -> float:
    """Seconds this thread waited for the write lock since reset_lock_wait."""
    return getattr(_local, "lock_wait", 0.0)


def lock_held() -> float:
    """Seconds this thread held the write lock (BEGIN IMMEDIATE to COMMIT) since reset_lock_wait:
    what every other writer queued behind it waited for."""
    return getattr(_local, "lock_held", 0.0)


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
    lock = _write_lock(db)
    # Past the busy timeout, go on to BEGIN IMMEDIATE, which then reports the lock as SQLite would.
    t0 = time.perf_counter()
    if lock is not None and not lock.acquire(timeout=BUSY_TIMEOUT_MS / 1000):
        lock = None
    t1 = time.perf_counter()
    _local.lock_wait = getattr(_local, "lock_wait", 0.0) + t1 - t0
    try:
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            raise
        else:
            db.conn.execute("COMMIT")
    finally:
        if lock is not None:
            lock.release()
        _local.lock_held = getattr(_local, "lock_held", 0.0) + time.perf_counter() - t1


def fetch_rows(db: Database, sql: str, params: list | dict | None = None) -> list[dict]:
    """A SELECT's rows as dicts, as `db.query` gives them, without its guard: sqlite-utils wraps each
    query in a SAVEPOINT and a RELEASE (in case the SQL writes), two more statements, each giving up
    the GIL and winning it back, on the hot paths (the review's rate + next) that only read."""
    cur = db.conn.execute(sql, params if params is not None else [])
    keys = [c[0] for c in cur.description]
    return [dict(zip(keys, row, strict=True)) for row in cur.fetchall()]


@contextmanager
def snapshot(db: Database) -> Iterator[Database]:
    """One read snapshot for several reads (in WAL, writers carry on meanwhile); inside an open
    transaction, that transaction's. Writes go through immediate(), never through this."""
    if db.conn.in_transaction:
        yield db
        return
    db.conn.execute("BEGIN")
    try:
        yield db
    finally:
        if db.conn.in_transaction:
            db.conn.execute("COMMIT")


def migrate(db: Database) -> list[str]:
    """Apply pending migrations; returns the names applied."""
    from .migrations import migrations

    pending = [m.name for m in migrations.pending(db)]
    migrations.apply(db)
    return pending


def init_app(app: Flask) -> None:
    """Register teardown of the connection."""
    app.teardown_appcontext(close_db)


def storage_error_message(e: BaseException) -> str | None:
    """A message for a write that failed because of a full disk or a read-only store, else None."""
    if not isinstance(e, (sqlite3.OperationalError, OSError)):
        return None
    text = str(e).lower()
    code = getattr(e, "errno", None)
    if "disk is full" in text or code == errno.ENOSPC:
        return (
            "The disk that holds the instance folder is full, so nothing was saved. "
            "Free some space (or move OIAP_INSTANCE to a larger disk), then try again."
        )
    if "readonly" in text or "read-only" in text or code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (
            "The instance folder or its database is read-only, so nothing was saved. "
            "Give the server's user write access to the instance folder (OIAP_INSTANCE), then try again."
        )
    if "unable to open database" in text:
        return "The database file cannot be opened: check that the instance folder exists and is writable."
    return None
