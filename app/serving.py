"""Which store a server is serving: a shared lock that `restore` must be able to take exclusively.

A process that has served a request holds a shared `flock` on `<DATABASE>.serving` until it exits
(each gunicorn worker, `flask run`, a test's live server); several can hold it at once. `restore`
takes the same lock exclusively and refuses when it cannot: writing a backup under a running server
once dropped ratings the server had acknowledged, and its kept connections would go on from the old
file's state. The lock is the kernel's, so a killed server releases it.
"""

import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import Flask

from .errors import InvalidInput

_held: dict[str, int] = {}  # database path -> fd holding the shared lock, per process
_lock = threading.Lock()


def lock_path(database: str | Path) -> Path:
    """The lock file of a database."""
    return Path(f"{database}.serving")


def _hold(database: str) -> None:
    if database in _held:
        return
    with _lock:
        if database in _held:
            return
        try:
            fd = os.open(lock_path(database), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            # A read-only instance folder: serve anyway (nothing can be restored into it either).
            logging.getLogger(__name__).warning("cannot hold %s: %s", lock_path(database), e)
            _held[database] = -1
            return
        # Waits while a restore holds it exclusively: the request then sees the restored store.
        fcntl.flock(fd, fcntl.LOCK_SH)
        _held[database] = fd


def hold_while_serving(app: Flask) -> None:
    """Take the store's shared serving lock at this process's first request (and keep it).

    Off under test unless SERVING_LOCK is set: one pytest process serves a thousand stores, and
    would keep a file descriptor open for each.
    """
    if not app.config.get("SERVING_LOCK", not app.testing):
        return

    @app.before_request
    def hold_store():
        database = app.config["DATABASE"]
        if database not in _held:
            _hold(database)


@contextmanager
def exclusive(database: str | Path) -> Iterator[None]:
    """Hold the store's serving lock exclusively; InvalidInput when a server holds it."""
    fd = os.open(lock_path(database), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InvalidInput(
                f"a server is serving {database} (it holds {lock_path(database)}); "
                "stop the server (every gunicorn worker), then restore"
            ) from None
        yield
    finally:
        os.close(fd)
