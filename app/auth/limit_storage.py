"""Login throttling counters in a small SQLite file of the instance, shared by every server process.

Flask-Limiter's memory storage counts per process: with gunicorn -w N a guesser would get N times
the allowed failures. This storage (URI `oiap-sqlite:///path/limits.sqlite3`) keeps the moving
windows in one file instead, so the limits hold for the whole server. Only limited routes (the login
form) touch it; other requests never open it.
"""

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from limits.storage import MovingWindowSupport, Storage

SCHEME = "oiap-sqlite"


class SQLiteLimitStorage(Storage, MovingWindowSupport):
    """A `limits` storage on SQLite: fixed-window counters and moving-window entries."""

    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options):
        self.path = uri.split("://", 1)[1]
        self._local = threading.local()
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> type[Exception]:
        return sqlite3.Error

    def _conn(self) -> sqlite3.Connection:
        # One connection per thread and process (a forked worker opens its own).
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.executescript(
                "CREATE TABLE IF NOT EXISTS hits (key TEXT NOT NULL, at REAL NOT NULL);"
                "CREATE INDEX IF NOT EXISTS hits_key ON hits (key, at);"
                "CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL,"
                " expires REAL NOT NULL);"
            )
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # A read-check-write in one BEGIN IMMEDIATE: two processes counting the same key never both
        # pass a limit. (app.db.immediate is the store's; this file has its own connections.)
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # Fixed and sliding windows (not used by the moving-window strategy, but part of the interface).
    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        """Add to a counter that expires `expiry` seconds after its first hit; returns the new value."""
        now = time.time()
        with self._write() as conn:
            conn.execute("DELETE FROM counters WHERE key = ? AND expires <= ?", [key, now])
            conn.execute(
                "INSERT INTO counters (key, value, expires) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
                [key, amount, now + expiry],
            )
            return conn.execute("SELECT value FROM counters WHERE key = ?", [key]).fetchone()[0]

    def get(self, key: str) -> int:
        """A counter's value (0 when absent or expired)."""
        row = (
            self._conn()
            .execute("SELECT value FROM counters WHERE key = ? AND expires > ?", [key, time.time()])
            .fetchone()
        )
        return row[0] if row else 0

    def get_expiry(self, key: str) -> float:
        """When a counter expires (now when absent)."""
        row = self._conn().execute("SELECT expires FROM counters WHERE key = ?", [key]).fetchone()
        return row[0] if row else time.time()

    def check(self) -> bool:
        """Whether the file can be read."""
        try:
            self._conn().execute("SELECT 1").fetchone()
            return True
        except sqlite3.Error:
            return False

    def reset(self) -> int | None:
        """Forget every counter and entry."""
        conn = self._conn()
        n = conn.execute("SELECT (SELECT count(*) FROM hits) + (SELECT count(*) FROM counters)").fetchone()[0]
        conn.execute("DELETE FROM hits")
        conn.execute("DELETE FROM counters")
        return n

    def clear(self, key: str) -> None:
        """Forget one key."""
        conn = self._conn()
        conn.execute("DELETE FROM hits WHERE key = ?", [key])
        conn.execute("DELETE FROM counters WHERE key = ?", [key])

    # Moving window: one row per hit, counted over the last `expiry` seconds.
    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Record `amount` hits unless that would exceed `limit` within the window; False when refused."""
        if amount > limit:
            return False
        now = time.time()
        with self._write() as conn:
            conn.execute("DELETE FROM hits WHERE key = ? AND at <= ?", [key, now - expiry])
            n = conn.execute("SELECT count(*) FROM hits WHERE key = ?", [key]).fetchone()[0]
            ok = n + amount <= limit
            if ok:
                conn.executemany("INSERT INTO hits (key, at) VALUES (?, ?)", [(key, now)] * amount)
        return ok

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """(time of the oldest hit in the window, hits in the window); (now, 0) when none."""
        now = time.time()
        oldest, n = (
            self._conn()
            .execute("SELECT min(at), count(*) FROM hits WHERE key = ? AND at > ?", [key, now - expiry])
            .fetchone()
        )
        return (oldest, n) if n else (now, 0)
