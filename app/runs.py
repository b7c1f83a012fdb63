"""Long jobs as `runs` rows, with their per-item failures in `run_errors`.

Each helper commits at once, so another connection (the dashboard, a second terminal) sees the
run's progress while it goes on.
"""

import json
import os
import socket

from sqlite_utils import Database

from .db import immediate, now


def start_run(
    db: Database,
    command: str,
    params: dict | None = None,
    *,
    total: int | None = None,
    set_id: int | None = None,
    model_id: int | None = None,
) -> int:
    """Record a job as running and return its id."""
    with immediate(db):
        cur = db.conn.execute(
            "INSERT INTO runs (command, params, status, total, set_id, model_id, started_at, pid, host, pid_start)"
            " VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
            [command, json.dumps(params or {}, default=str), total, set_id, model_id, now(), *_process()],
        )
    return cur.lastrowid


def add_run_errors(db: Database, run_id: int, errors: list[dict]) -> None:
    """Store failures (dicts with reason and optionally image_id, source, line) in the caller's transaction."""
    at = now()
    db.conn.executemany(
        "INSERT INTO run_errors (run_id, image_id, source, line, reason, at) VALUES (?, ?, ?, ?, ?, ?)",
        [(run_id, e.get("image_id"), e.get("source"), e.get("line"), e["reason"], at) for e in errors],
    )


def set_progress(db: Database, run_id: int, progress: int, cursor: str | None = None) -> None:
    """Update a run's progress (and resume cursor) in the caller's transaction."""
    db.conn.execute(
        "UPDATE runs SET progress = ?, cursor = coalesce(?, cursor) WHERE id = ?", [progress, cursor, run_id]
    )


def finish_run(db: Database, run_id: int, status: str = "done", error: str | None = None) -> None:
    """Mark a run done, failed or interrupted, and commit.

    A transaction the caller left open is committed when the run is done and rolled back otherwise.
    """
    if db.conn.in_transaction:
        db.conn.commit() if status == "done" else db.conn.rollback()
    with immediate(db):
        db.conn.execute(
            "UPDATE runs SET status = ?, error = ?, finished_at = ? WHERE id = ?",
            [status, error, now(), run_id],
        )


def finish_failed(db: Database, run_id: int, e: BaseException) -> None:
    """Record a run that an exception ended: interrupted for Ctrl-C, else failed with the exception's
    message (the caller re-raises it)."""
    if isinstance(e, KeyboardInterrupt):
        finish_run(db, run_id, "interrupted")
    else:
        finish_run(db, run_id, "failed", str(e))


def _process() -> tuple[int, str, int | None]:
    pid = os.getpid()
    stat = _proc_stat(pid)
    return pid, socket.gethostname(), stat[1] if stat else None


def claim_run(db: Database, run_id: int) -> None:
    """Mark a run as running in this process (a resumed run moves to the process that resumes it), and commit."""
    with immediate(db):
        db.conn.execute(
            "UPDATE runs SET status = 'running', error = NULL, finished_at = NULL, pid = ?, host = ?, pid_start = ?"
            " WHERE id = ?",
            [*_process(), run_id],
        )


def shown_status(status: str, pid: int | None, host: str | None, pid_start: int | None = None) -> str:
    """A run's status as a list shows it: 'running' whose process is gone on this host is 'stopped'
    (gone: no such pid, a zombie, or the pid now belongs to a process started at another time).

    A run on another host (or from before pids were recorded) keeps its stored status: its process
    cannot be looked at from here.
    """
    if status != "running" or pid is None or host != socket.gethostname():
        return status
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "stopped"
    except PermissionError:
        pass  # alive, owned by another user: /proc still says when it started
    stat = _proc_stat(pid)
    if stat is None:
        return status
    state, started = stat
    # A killed child that its parent has not waited for yet still answers kill(pid, 0).
    if state == "Z" or (pid_start is not None and started != pid_start):
        return "stopped"
    return status


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of a process from /proc, None where there is none."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[19])
    except (OSError, IndexError, ValueError):
        return None
