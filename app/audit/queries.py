"""The audit log: filtered, paged reads of `events`."""

from sqlite_utils import Database

# 50 compact rows fit a laptop screen a few times over; older ones are a link away.
PAGE_SIZE = 50


def list_events(
    db: Database,
    *,
    user_id: int | None = None,
    set_id: int | None = None,
    action: str | None = None,
    since: str | None = None,
    until: str | None = None,
    before_id: int | None = None,
    limit: int = PAGE_SIZE,
) -> list[dict]:
    """Events newest first, filtered; page with before_id (the last id of the previous page)."""
    where, params = [], []
    for clause, value in (
        ("e.user_id = ?", user_id),
        ("e.set_id = ?", set_id),
        ("e.action = ?", action),
        ("e.at >= ?", since),
        ("e.at < ?", until),
        ("e.id < ?", before_id),
    ):
        if value not in (None, ""):
            where.append(clause)
            params.append(value)
    sql = (
        "SELECT e.*, u.username, s.name AS set_name FROM events e LEFT JOIN users u ON u.id = e.user_id"
        " LEFT JOIN annotation_sets s ON s.id = e.set_id"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY e.id DESC LIMIT ?"
    )
    return list(db.query(sql, [*params, limit]))


def event_actions(db: Database) -> list[str]:
    """The distinct actions in the log, for the filter menu."""
    return [r["action"] for r in db.query("SELECT DISTINCT action FROM events ORDER BY action")]
