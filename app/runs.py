"""Long jobs as `runs` rows, with their per-item failures in `run_errors`.

Each helper commits at once, so another connection (the dashboard, a second terminal) sees the
run's progress while it goes on.
"""

import json

from sqlite_utils import Database

from .db import now


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
    cur = db.conn.execute(
        "INSERT INTO runs (command, params, status, total, set_id, model_id, started_at)"
        " VALUES (?, ?, 'running', ?, ?, ?, ?)",
        [command, json.dumps(params or {}, default=str), total, set_id, model_id, now()],
    )
    db.conn.commit()
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
    db.conn.execute(
        "UPDATE runs SET status = ?, error = ?, finished_at = ? WHERE id = ?", [status, error, now(), run_id]
    )
    db.conn.commit()
