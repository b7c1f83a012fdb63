"""Annotation sets: lookup and counts (read from the trigger-kept counters)."""

import json

from sqlite_utils import Database

from ..db import fetch_rows, now
from ..errors import InvalidInput, NotFound
from ..kinds import get_kind


def list_sets(db: Database) -> list[dict]:
    """Every set with its counts, newest first."""
    rows = db.query(
        """
        SELECT s.id, s.name, s.kind, s.source, s.label, s.status, s.created_at,
               s.n_total AS total, s.n_good AS good, s.n_bad AS bad,
               s.n_total - s.n_good - s.n_bad AS unrated, s.n_superseded AS superseded,
               m.name AS model_name, m.id AS model_id
        FROM annotation_sets s LEFT JOIN models m ON m.id = s.model_id
        ORDER BY s.id DESC
        """
    )
    return list(rows)


def get_set(db: Database, set_id: int) -> dict:
    """One set by id; NotFound names it."""
    rows = list(db.query("SELECT * FROM annotation_sets WHERE id = ?", [set_id]))
    if not rows:
        raise NotFound(f"no annotation set {set_id}")
    return rows[0]


def get_set_with_model(db: Database, set_id: int) -> dict:
    """The set with what its review and set pages show about it (model name, class name); NotFound when missing."""
    found = fetch_rows(
        db,
        "SELECT s.*, m.name AS model_name FROM annotation_sets s LEFT JOIN models m ON m.id = s.model_id WHERE s.id = ?",
        [set_id],
    )
    if not found:
        raise NotFound(f"no annotation set {set_id}")
    s = found[0]
    params = json.loads(s["params"]) if s.get("params") else {}
    s["class_name"] = params.get("display_name") or s.get("label")
    s["unrated"] = s["n_total"] - s["n_good"] - s["n_bad"]
    return s


def get_set_by_name(db: Database, name: str) -> dict:
    """One set by name; NotFound names it."""
    rows = list(db.query("SELECT * FROM annotation_sets WHERE name = ?", [name]))
    if not rows:
        raise NotFound(f"no annotation set named {name!r}; `flask oiap sets list` shows them")
    return rows[0]


def create_set(
    db: Database,
    name: str,
    kind: str,
    source: str,
    *,
    label: str | None = None,
    model_id: int | None = None,
    created_by: int | None = None,
    params: dict | None = None,
    status: str = "open",
    created_at: str | None = None,
) -> int:
    """Create a set and return its id (a copy fetched from S3 keeps its status and creation time)."""
    get_kind(kind)
    if source not in ("human", "model", "import"):
        raise InvalidInput(f"unknown source {source!r}; use human, model or import")
    cur = db.execute(
        "INSERT INTO annotation_sets (name, kind, source, label, model_id, created_by, status, params, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            name,
            kind,
            source,
            label,
            model_id,
            created_by,
            status,
            json.dumps(params or {}),
            created_at or now(),
        ],
    )
    return cur.lastrowid


def get_or_create_set(db: Database, name: str, kind: str, source: str, **kw) -> int:
    """The id of the set with that name, created when missing (kind must match)."""
    rows = list(db.query("SELECT id, kind FROM annotation_sets WHERE name = ?", [name]))
    if rows:
        if rows[0]["kind"] != kind:
            raise InvalidInput(f"set {name!r} holds {rows[0]['kind']}, not {kind}")
        return rows[0]["id"]
    return create_set(db, name, kind, source, **kw)


def human_set_name(kind: str) -> str:
    """The name of the human annotation set of a kind (one per kind)."""
    return f"human-{kind}"


def stats(db: Database) -> dict:
    """Counts per set and per split, for `flask oiap stats`."""
    splits = {
        r["split"]: r["n"]
        for r in db.query("SELECT split, count(*) AS n FROM images GROUP BY split ORDER BY split")
    }
    # One pass over annotations joined to images: seconds on millions of rows, fine for a CLI report.
    per_split: dict[int, dict] = {}
    for r in db.query(
        """
        SELECT a.set_id, i.split, count(*) AS total, sum(a.rating IS 'good') AS good,
               sum(a.rating IS 'bad') AS bad
        FROM annotations a JOIN images i ON i.id = a.image_id
        WHERE a.deleted = 0 GROUP BY a.set_id, i.split
        """
    ):
        per_split.setdefault(r["set_id"], {})[r["split"]] = {
            "total": r["total"],
            "good": r["good"],
            "bad": r["bad"],
            "unrated": r["total"] - r["good"] - r["bad"],
        }
    return {
        "images": {"total": sum(splits.values()), "per_split": splits},
        "sets": [
            {k: s[k] for k in ("id", "name", "kind", "source", "total", "good", "bad", "unrated")}
            | {"per_split": per_split.get(s["id"], {})}
            for s in list_sets(db)
        ],
    }
