"""The audit log: one append-only row in `events` per change a user (or a job) made."""

import json

from sqlite_utils import Database

from ..db import now


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
