"""Corrections in place: what the review and the set page show of a machine annotation a person fixed.

A correction is a human annotation whose origin_id is the machine annotation (app/editor/edits.py writes it
and rates the machine one bad). The machine row never changes, so the pages look the correction up
and show its box and points, marked "corrected by NAME" (or "removed by NAME" when the person
deleted the face). Lookups go through the partial index annotations_origin; a set's count of
corrected annotations is the counter annotation_sets.n_corrected (migration m011, kept by triggers).

For a human set: who may rate what. Nobody rates their own human annotations (the queue skips
them), so an author's empty queue says how many are theirs, and how many are claimed right now.
"""

import json
import time

from sqlite_utils import Database

from ..db import fetch_rows

GEOMETRY = ("x0", "y0", "x1", "y1", "points")
# What a correction replaces on the page: its geometry, and an object box's class (label).
SHOWN = (*GEOMETRY, "label")


def corrections_of(db: Database, ids: list[int]) -> dict[int, dict]:
    """The latest correction of each machine annotation id that has one: {origin id: correction}.

    A correction: id, x0..y1, points (decoded), deleted, by (username), created_by, created_at.
    """
    if not ids:
        return {}
    out: dict[int, dict] = {}
    for r in fetch_rows(
        db,
        "SELECT h.origin_id, h.id, h.x0, h.y0, h.x1, h.y1, h.points, h.label, h.deleted, h.created_by, h.created_at,"
        " u.username AS by FROM annotations h LEFT JOIN users u ON u.id = h.created_by"
        " WHERE h.origin_id IN (SELECT value FROM json_each(?)) ORDER BY h.id",
        [json.dumps(ids)],
    ):
        r["points"] = json.loads(r["points"]) if r["points"] else None
        r["by"] = r["by"] or "someone"
        out[r.pop("origin_id")] = r  # ordered by id: the latest wins
    return out


def corrected_view(ann: dict, corr: dict | None) -> dict:
    """The annotation as the pages draw it: the correction's box and points when a person fixed it,
    with `correction` (the human row) and `corrected_by` set; unchanged otherwise."""
    if corr is None:
        return ann
    out = dict(ann, correction=corr, corrected_by=corr["by"])
    if not corr["deleted"]:
        out.update({k: corr[k] for k in SHOWN if corr[k] is not None or k == "points"})
    return out


def correction_label(corr: dict) -> str:
    """'corrected by NAME' or, when the person deleted the face, 'removed by NAME'."""
    return f"{'removed' if corr['deleted'] else 'corrected'} by {corr['by']}"


def author_counts(db: Database, set_id: int, user_id: int) -> dict:
    """For a human set's queue: unrated annotations the user made (others rate them) and unrated ones
    another reviewer holds a claim on now."""
    own = db.execute(
        "SELECT count(*) FROM annotations WHERE set_id = ? AND deleted = 0 AND rating IS NULL AND created_by = ?",
        [set_id, user_id],
    ).fetchone()[0]
    claimed = db.execute(
        "SELECT count(*) FROM claims c JOIN annotations a ON a.id = c.annotation_id"
        " WHERE a.set_id = ? AND a.deleted = 0 AND a.rating IS NULL AND c.user_id != ? AND c.expires_at > ?",
        [set_id, user_id, time.time()],
    ).fetchone()[0]
    return {"own_unrated": own, "claimed": claimed}
