"""Annotations: insert, rate, undo. Every write that reviewers and the editor make goes through here.

A rating sets the current value on the annotation row (for the indexed queue and the trigger-kept
counters) and appends to the `ratings` history in the same transaction, with an audit event.
"""

import json
from collections.abc import Iterable, Sequence

import numpy as np
from sqlite_utils import Database

from ..audit.events import log_event
from ..db import immediate, now
from ..errors import Conflict, InvalidInput, NotFound
from . import masks

RATINGS = ("good", "bad")
SUPERSEDED = 2  # annotations.deleted: 0 live, 1 deleted, 2 superseded (m015)


def points_json(points: Sequence[Sequence[float]] | None) -> str | None:
    """Serialise points as [[x, y, visible], ...] with visible defaulting to 1."""
    if points is None:
        return None
    out = []
    for p in points:
        x, y = float(p[0]), float(p[1])
        visible = int(p[2]) if len(p) > 2 else 1
        out.append([round(x, 6), round(y, 6), visible])
    return json.dumps(out, separators=(",", ":"))


def annotation_row(
    set_id: int,
    image_id: str,
    kind: str,
    box: Sequence[float] | None = None,
    points: Sequence[Sequence[float]] | None = None,
    *,
    label: str | None = None,
    score: float | None = None,
    parent_id: int | None = None,
    origin_id: int | None = None,
    flags: dict | None = None,
    created_by: int | None = None,
    rating: str | None = None,
    created_at: str | None = None,
    deleted: bool = False,
    mask: str | np.ndarray | None = None,
) -> dict:
    """A dict ready for insert_annotations: normalised box and points, JSON fields serialised.

    `mask` (object_mask rows): a boolean H x W array over the whole image or its stored RLE string
    (app/annotations/masks.py), checked here; without a box, the box is the mask's.
    """
    mask_s = _mask_json(mask)
    if box is None and mask_s is not None:
        box = masks.bbox(mask_s)
    x0, y0, x1, y1 = (float(v) for v in box) if box is not None else (None,) * 4
    return {
        "set_id": set_id,
        "image_id": image_id,
        "kind": kind,
        "label": label,
        "x0": x0,
        "y0": y0,
        "x1": x1,
        "y1": y1,
        "points": points_json(points),
        "score": None if score is None else float(score),
        "parent_id": parent_id,
        "origin_id": origin_id,
        "flags": json.dumps(flags) if flags else None,
        "created_by": created_by,
        "created_at": created_at or now(),
        "rating": rating,
        "mask": mask_s,
        "deleted": int(deleted),
    }


def _mask_json(mask: str | np.ndarray | None) -> str | None:
    if mask is None:
        return None
    if isinstance(mask, str):
        return masks.check(mask)
    return masks.encode(mask)


_COLUMNS = (
    "set_id image_id kind label x0 y0 x1 y1 points score parent_id origin_id flags created_by created_at rating"
    " mask deleted"
).split()
_INSERT = f"INSERT INTO annotations ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"


def _values(row: dict) -> list:
    # Rows built by hand may leave `deleted` out: they are live.
    return [row.get(c) for c in _COLUMNS[:-1]] + [int(row.get("deleted") or 0)]


def insert_annotations(db: Database, rows: Iterable[dict]) -> int:
    """Insert many annotation rows (from annotation_row) in the caller's transaction; returns the count."""
    cur = db.conn.executemany(_INSERT, (_values(r) for r in rows))
    return cur.rowcount


# A box row for insert_counted_by_batch (import-openimages): the image must be in the store, and the same box must not be in the set yet (idempotence; a box
# that someone deleted stays deleted). INDEXED BY: without it the planner may pick an index that
# starts with set_id alone and scan the whole set for every row (seen: 8k instead of 260k rows/s).
BOX_IF_NEW_SQL = (
    "INSERT INTO annotations (set_id, image_id, kind, label, x0, y0, x1, y1, flags, created_at)"
    " SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10"
    " WHERE EXISTS (SELECT 1 FROM images WHERE id = ?2)"
    " AND NOT EXISTS (SELECT 1 FROM annotations INDEXED BY annotations_set_image"
    " WHERE set_id = ?1 AND image_id = ?2 AND x0 = ?5 AND y0 = ?6 AND x1 = ?7 AND y1 = ?8)"
)


# A mask row for import-openimages-masks, as BOX_IF_NEW_SQL: the image must be in the store, and the
# same object (Open Images' BoxID, kept in flags) must not be in the set yet (idempotence).
MASK_IF_NEW_SQL = (
    "INSERT INTO annotations (set_id, image_id, kind, label, x0, y0, x1, y1, flags, created_at, mask)"
    " SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11"
    " WHERE EXISTS (SELECT 1 FROM images WHERE id = ?2)"
    " AND NOT EXISTS (SELECT 1 FROM annotations INDEXED BY annotations_set_image"
    " WHERE set_id = ?1 AND image_id = ?2 AND json_extract(flags, '$.BoxID') = json_extract(?9, '$.BoxID'))"
)


def insert_counted_by_batch(db: Database, sql: str, rows_by_set: dict[int, list]) -> int:
    """Run an unrated-annotation INSERT over many rows, adding to each set's n_total once per set.

    For bulk imports: the per-row counter trigger skips the sets listed in bulk_counting (migration
    m007), so the rows of each set go in with one UPDATE of its counter, from the rows actually
    inserted (an INSERT ... SELECT ... WHERE may skip some). Call it inside the caller's write
    transaction (immediate), so rows and counts commit together: a crash never leaves a counter that
    disagrees with the table, and no other connection ever sees a set listed. The rows must have
    rating NULL and deleted 0 (n_good and n_bad do not change). Returns the rows inserted.
    """
    conn = db.conn
    if not conn.in_transaction:
        raise RuntimeError("insert_counted_by_batch needs an open write transaction")
    added = 0
    sets = [(set_id,) for set_id in rows_by_set]
    conn.executemany("INSERT INTO bulk_counting (set_id) VALUES (?)", sets)
    try:
        for set_id, rows in rows_by_set.items():
            n = conn.executemany(sql, rows).rowcount
            # New live rows change the set's pages: bump layout_version as the triggers do (m008).
            conn.execute(
                "UPDATE annotation_sets SET n_total = n_total + ?, layout_version = layout_version + (? > 0)"
                " WHERE id = ?",
                [n, n, set_id],
            )
            added += n
    finally:
        # Also on error: the caller's transaction rolls back, but a set must never stay listed.
        conn.executemany("DELETE FROM bulk_counting WHERE set_id = ?", sets)
    return added


# A row copied whole from a set file (sets/files.py): with its version, deletion and current rating.
COPIED_COLUMNS = (
    "set_id image_id kind label x0 y0 x1 y1 points score flags created_by created_at version deleted rating"
    " rated_by rated_at"
).split()
_INSERT_COPIED = (
    f"INSERT INTO annotations ({', '.join(COPIED_COLUMNS)}) VALUES ({', '.join('?' * len(COPIED_COLUMNS))})"
)


def insert_copied(db: Database, rows: Iterable[Sequence]) -> int:
    """Insert rows copied from a set file, values in COPIED_COLUMNS order, in the caller's transaction.

    The rating history goes into `ratings` separately (the file carries it); the counters follow
    from the triggers as for any insert.
    """
    return db.conn.executemany(_INSERT_COPIED, rows).rowcount


def set_links(db: Database, updates: Iterable[Sequence]) -> None:
    """Set (parent_id, origin_id) of rows by id, from [parent_id, origin_id, id] lists, in the caller's
    transaction: a copied set's links are resolved after all its rows exist."""
    db.conn.executemany("UPDATE annotations SET parent_id = ?, origin_id = ? WHERE id = ?", updates)


def mark_superseded(db: Database, annotation_ids: Sequence[int], set_id: int) -> int:
    """Mark rows superseded by the newer run `set_id` (deleted = 2, m015), in the caller's transaction
    (sets/supersede.py decides which); returns how many rows were marked."""
    return db.execute(
        "UPDATE annotations SET deleted = ?, superseded_by = ? WHERE id IN (SELECT value FROM json_each(?))",
        [SUPERSEDED, set_id, json.dumps(list(annotation_ids))],
    ).rowcount


def replace_copied_set(db: Database, old_set: int, new_set: int, new_ids: Sequence[int]) -> int:
    """Put a fetched set's new copy in place of its old copy's rows, in the caller's transaction.

    Rows of other sets that point at an old row (parent_id, origin_id) point at the new row at the
    same position instead (the owner only appends and flags deletions, so position i of the old copy
    is position i of the new one; a row with no counterpart loses the link). The old rows, their
    rating history (the new copy brings its own) and their claims are deleted. Returns how many
    links were moved.
    """
    old_ids = [r[0] for r in db.execute("SELECT id FROM annotations WHERE set_id = ? ORDER BY id", [old_set])]
    db.execute("CREATE TEMP TABLE IF NOT EXISTS s3_remap (old INTEGER PRIMARY KEY, new INTEGER)")
    db.execute("DELETE FROM temp.s3_remap")
    db.conn.executemany(
        "INSERT INTO temp.s3_remap (old, new) VALUES (?, ?)",
        [(old, new_ids[i] if i < len(new_ids) else None) for i, old in enumerate(old_ids)],
    )
    moved = 0
    for column in ("parent_id", "origin_id"):
        moved += db.execute(
            f"UPDATE annotations SET {column} = (SELECT new FROM temp.s3_remap WHERE old = {column})"
            f" WHERE set_id NOT IN (?, ?) AND {column} IN (SELECT old FROM temp.s3_remap)",
            [old_set, new_set],
        ).rowcount
    db.execute("DELETE FROM ratings WHERE annotation_id IN (SELECT old FROM temp.s3_remap)")
    db.execute("DELETE FROM claims WHERE annotation_id IN (SELECT old FROM temp.s3_remap)")
    db.execute("UPDATE annotations SET parent_id = NULL, origin_id = NULL WHERE set_id = ?", [old_set])
    db.execute("DELETE FROM annotations WHERE set_id = ?", [old_set])
    db.execute("DELETE FROM temp.s3_remap")
    return moved


def insert_annotation(db: Database, row: dict) -> int:
    """Insert one annotation row and return its id."""
    cur = db.execute(_INSERT, _values(row))
    return cur.lastrowid


def delete_at_version(db: Database, annotation_id: int, version: int) -> bool:
    """Delete an annotation (the row stays, flagged) if it is still live at `version`; False when
    someone wrote it in between (compare-and-swap). In the caller's transaction."""
    cur = db.execute(
        "UPDATE annotations SET deleted = 1, version = version + 1 WHERE id = ? AND version = ? AND deleted = 0",
        [annotation_id, version],
    )
    return cur.rowcount == 1


def move_at_version(
    db: Database,
    annotation_id: int,
    version: int,
    box: Sequence[float],
    points: Sequence[Sequence[float]] | None,
    *,
    label: str | None = None,
    mask: str | np.ndarray | None = None,
) -> bool:
    """Give an annotation a new box and points (and, given one, class label) if it is still live at
    `version` (compare-and-swap); its rating is cleared, since a changed face is a new claim. In the
    caller's transaction.

    With `mask` (an array or stored RLE string) the row's mask is replaced too; without, it is kept.
    """
    mask_s = _mask_json(mask)
    cur = db.execute(
        "UPDATE annotations SET x0 = ?, y0 = ?, x1 = ?, y1 = ?, points = ?, label = coalesce(?, label),"
        " mask = coalesce(?, mask), version = version + 1, rating = NULL, rated_by = NULL, rated_at = NULL"
        " WHERE id = ? AND version = ? AND deleted = 0",
        [*box, points_json(points), label, mask_s, annotation_id, version],
    )
    return cur.rowcount == 1


def get_annotation(db: Database, annotation_id: int) -> dict:
    """One annotation with points and flags decoded; NotFound when missing."""
    rows = list(db.query("SELECT * FROM annotations WHERE id = ?", [annotation_id]))
    if not rows:
        raise NotFound(f"no annotation {annotation_id}")
    return decode(rows[0])


def decode(row: dict) -> dict:
    """Decode the JSON columns of an annotation row in place and return it."""
    row["points"] = json.loads(row["points"]) if row.get("points") else None
    row["flags"] = json.loads(row["flags"]) if row.get("flags") else {}
    return row


def _check_rateable(db: Database, ann: dict, user_id: int | None) -> None:
    if ann["deleted"] == 2:  # m015: a newer run of the same face replaced it
        raise Conflict(
            f"annotation {ann['id']} was superseded by a newer run of the same face; rate that one"
        )
    if ann["deleted"]:
        raise Conflict(f"annotation {ann['id']} was deleted")
    if user_id is not None and ann["created_by"] == user_id:
        source = db.execute("SELECT source FROM annotation_sets WHERE id = ?", [ann["set_id"]]).fetchone()
        if source and source[0] == "human":
            raise InvalidInput("you cannot rate your own annotation; another reviewer has to")


def rate_in_transaction(
    db: Database, annotation_id: int, user_id: int | None, value: str, set_id: int | None = None
) -> dict:
    """rate() for a caller that already holds the write lock (inside immediate(db)).

    With set_id, an annotation of another set is NotFound (the review page rates within one set).
    """
    row = db.execute(
        "SELECT id, set_id, created_by, deleted, rating FROM annotations WHERE id = ?", [annotation_id]
    ).fetchone()
    if row is None or (set_id is not None and row[1] != set_id):
        raise NotFound(f"no annotation {annotation_id}" + (f" in set {set_id}" if set_id is not None else ""))
    if value not in RATINGS:
        raise InvalidInput(f"a rating is 'good' or 'bad', not {value!r}")
    ann = dict(zip(("id", "set_id", "created_by", "deleted", "rating"), row, strict=True))
    _check_rateable(db, ann, user_id)
    at = now()
    db.execute(
        "UPDATE annotations SET rating = ?, rated_by = ?, rated_at = ? WHERE id = ?",
        [value, user_id, at, annotation_id],
    )
    rating_id = db.execute(
        "INSERT INTO ratings (annotation_id, user_id, value, previous, at) VALUES (?, ?, ?, ?, ?)",
        [annotation_id, user_id, value, ann["rating"], at],
    ).lastrowid
    log_event(
        db,
        "rate",
        user_id=user_id,
        target_type="annotation",
        target_id=annotation_id,
        set_id=ann["set_id"],
        before={"rating": ann["rating"]},
        after={"rating": value, "rating_id": rating_id},
    )
    return {
        "annotation_id": annotation_id,
        "rating": value,
        "previous": ann["rating"],
        "rating_id": rating_id,
    }


def rate(db: Database, annotation_id: int, user_id: int | None, value: str) -> dict:
    """Rate an annotation good or bad: current value on the row, history in ratings, audit event."""
    if value not in RATINGS:
        raise InvalidInput(f"a rating is 'good' or 'bad', not {value!r}")
    with immediate(db):
        return rate_in_transaction(db, annotation_id, user_id, value)


def rate_many(db: Database, annotation_ids: Iterable[int], user_id: int | None, value: str) -> list[dict]:
    """Rate several annotations in one transaction, each exactly as rate() does (all or none)."""
    if value not in RATINGS:
        raise InvalidInput(f"a rating is 'good' or 'bad', not {value!r}")
    with immediate(db):
        done = [rate_in_transaction(db, i, user_id, value) for i in annotation_ids]
        if len(done) > 1:
            # One action, one undo: undo_last_rating takes the whole group back.
            first = done[0]["rating_id"]
            db.execute(
                f"UPDATE ratings SET action_id = ? WHERE id IN ({','.join('?' * len(done))})",
                [first, *(d["rating_id"] for d in done)],
            )
        return done


def undo_last_rating(db: Database, user_id: int, set_id: int | None = None) -> dict | None:
    """Undo the user's most recent rating (in a set): the annotation goes back to its previous value.

    Returns what was undone, or None when there is nothing to undo. Only a rating that is still the
    annotation's current one (nobody rated it since) is undone. Ratings written by one rate_many()
    (one action) are undone together: "annotation_ids" lists them all, "annotation_id" is the first.
    """
    with immediate(db):
        sql = (
            "SELECT r.id, r.annotation_id, r.value, r.previous, a.set_id, a.rated_by, a.rating, r.action_id"
            " FROM ratings r JOIN annotations a ON a.id = r.annotation_id"
            " WHERE r.user_id = ? AND r.value != 'cleared'"
            " AND NOT EXISTS (SELECT 1 FROM ratings l WHERE l.annotation_id = r.annotation_id AND l.id > r.id)"
        )
        params: list = [user_id]
        if set_id is not None:
            sql += " AND a.set_id = ?"
            params.append(set_id)
        sql += " ORDER BY r.id DESC LIMIT 1"
        rows = list(db.query(sql, params))
        if not rows:
            return None
        r = rows[0]
        group = [r]
        if r["action_id"] is not None:
            # The rest of the action: the user's ratings with its action_id that are still current.
            group = list(
                db.query(
                    "SELECT r.id, r.annotation_id, r.value, r.previous, a.set_id FROM ratings r"
                    " JOIN annotations a ON a.id = r.annotation_id WHERE r.action_id = ? AND r.user_id = ?"
                    " AND NOT EXISTS (SELECT 1 FROM ratings l WHERE l.annotation_id = r.annotation_id AND l.id > r.id)"
                    " ORDER BY r.id",
                    [r["action_id"], user_id],
                )
            )
        for g in group:
            _undo_one(db, g, user_id)
    return {
        "annotation_id": group[0]["annotation_id"],
        "annotation_ids": [g["annotation_id"] for g in group],
        "undone": r["value"],
        "rating": r["previous"],
    }


def _undo_one(db: Database, r: dict, user_id: int) -> None:
    # Inside the caller's immediate(): the annotation goes back to its previous rating.
    previous = r["previous"]
    at = now()
    db.execute(
        "UPDATE annotations SET rating = ?, rated_by = ?, rated_at = ? WHERE id = ?",
        [previous, user_id if previous else None, at if previous else None, r["annotation_id"]],
    )
    db.execute(
        "INSERT INTO ratings (annotation_id, user_id, value, previous, at) VALUES (?, ?, 'cleared', ?, ?)",
        [r["annotation_id"], user_id, r["value"], at],
    )
    log_event(
        db,
        "undo_rating",
        user_id=user_id,
        target_type="annotation",
        target_id=r["annotation_id"],
        set_id=r["set_id"],
        before={"rating": r["value"]},
        after={"rating": previous},
    )


def rating_history(db: Database, annotation_id: int) -> list[dict]:
    """Every rating of an annotation, oldest first, with the username."""
    return list(
        db.query(
            "SELECT r.id, r.value, r.previous, r.at, u.username FROM ratings r"
            " LEFT JOIN users u ON u.id = r.user_id WHERE r.annotation_id = ? ORDER BY r.id",
            [annotation_id],
        )
    )
