"""The review queue: which item a reviewer sees next, and the claims that keep reviewers apart.

The queue walks the index annotations_queue (set_id, deleted, rating, score, id), or
annotations_queue_image (set_id, deleted, rating, image_id, id) when ordered by image, from a cursor
(the item on screen) onwards and wraps around at the end. Every candidate is checked against the
claims table by primary key, so a step costs a few index lookups whatever the size of the set.

Claims: showing an item claims it for CLAIM_SECONDS. Finding and claiming happen in one
BEGIN IMMEDIATE transaction, so two reviewers can never be handed the same item; expired claims
are deleted on the way. A reviewer holds one claim at a time (the item on screen).
"""

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

from sqlite_utils import Database

from ..annotations.rows import decode, rate_in_transaction
from ..classes import check_label
from ..db import immediate
from ..errors import Conflict, InvalidInput, NotFound
from ..images.layout import SPLITS

ORDERS = {"score": "lowest score first", "image": "by image"}
STATUSES = {"unrated": "unrated", "bad": "rated bad", "good": "rated good", "all": "all (unrated first)"}
# The rating segments walked for each status, in order.
SEGMENTS = {"unrated": (None,), "bad": ("bad",), "good": ("good",), "all": (None, "bad", "good")}


@dataclass(frozen=True)
class Filters:
    """What a reviewer asked the queue for."""

    order: str = "score"
    status: str = "unrated"
    split: str | None = None
    min_score: float | None = None
    max_score: float | None = None
    label: str | None = None  # an object class (MID): only its boxes

    def as_params(self) -> dict:
        """The non-default filters, as query-string parameters."""
        out = {}
        if self.order != "score":
            out["order"] = self.order
        if self.status != "unrated":
            out["status"] = self.status
        if self.split:
            out["split"] = self.split
        if self.min_score is not None:
            out["min_score"] = self.min_score
        if self.max_score is not None:
            out["max_score"] = self.max_score
        if self.label:
            out["label"] = self.label
        return out


def _float(value: str | None, name: str) -> float | None:
    if value is None or str(value).strip() == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise InvalidInput(f"{name} must be a number, not {value!r}") from None


def parse_filters(args: Mapping) -> Filters:
    """Filters from request arguments; InvalidInput names a bad one."""
    order = args.get("order") or "score"
    if order not in ORDERS:
        raise InvalidInput(f"order is one of {', '.join(ORDERS)}, not {order!r}")
    status = args.get("status") or "unrated"
    if status not in STATUSES:
        raise InvalidInput(f"status is one of {', '.join(STATUSES)}, not {status!r}")
    split = args.get("split") or None
    if split is not None and split not in SPLITS:
        raise InvalidInput(f"split is one of {', '.join(SPLITS)}, not {split!r}")
    lo, hi = _float(args.get("min_score"), "min_score"), _float(args.get("max_score"), "max_score")
    if lo is not None and hi is not None and lo > hi:
        raise InvalidInput(f"min_score {lo} is above max_score {hi}")
    label = args.get("label") or None
    if label is not None:
        check_label(label, "label")
    return Filters(order, status, split, lo, hi, label)


def _key(db: Database, order: str, annotation_id: int) -> tuple | None:
    col = "score" if order == "score" else "image_id"
    row = db.execute(f"SELECT {col}, id FROM annotations WHERE id = ?", [annotation_id]).fetchone()
    return tuple(row) if row else None


def _ranges(order: str, filters: Filters, after: tuple | None) -> list[tuple[str, list, str]]:
    """Index ranges (where, params, order by) that together list the queue from `after` onwards."""
    if order == "image":
        if after is None:
            return [("1", [], "a.image_id, a.id")]
        return [("(a.image_id, a.id) > (?, ?)", list(after), "a.image_id, a.id")]
    ranged = filters.min_score is not None or filters.max_score is not None
    cond, params = "a.score IS NOT NULL", []
    if filters.min_score is not None:
        cond, params = "a.score >= ?", [filters.min_score]
    if filters.max_score is not None:
        cond += " AND a.score <= ?"
        params.append(filters.max_score)
    # NULL scores (human annotations) sort first, as SQLite sorts them.
    if after is None:
        out = [] if ranged else [("a.score IS NULL", [], "a.id")]
        return out + [(cond, params, "a.score, a.id")]
    score, ann_id = after
    if score is None:
        out = [] if ranged else [("a.score IS NULL AND a.id > ?", [ann_id], "a.id")]
        return out + [(cond, params, "a.score, a.id")]
    return [(cond + " AND (a.score, a.id) > (?, ?)", [*params, score, ann_id], "a.score, a.id")]


def label_condition(kind: str) -> str:
    """The SQL that keeps one class (param: the MID). For object boxes it names the kind as a literal,
    so SQLite may use the partial indexes of migration m019 (per set and class) instead of walking
    the whole set's queue for a rare class."""
    if kind == "object_box":
        return " AND a.kind = 'object_box' AND a.label = ?"
    return " AND a.label = ?"


def _candidates(
    db: Database,
    review_set: Mapping,
    user_id: int,
    filters: Filters,
    cursor: tuple[int, int] | None,
    now_ts: float,
    limit: int,
    after: tuple | None,
) -> list[tuple[int, int]]:
    """Up to `limit` (segment, id) pairs of the queue after the cursor (whose sort key is `after`,
    see cursor_key), wrapping around once."""
    segments = SEGMENTS[filters.status]
    common = (
        " AND NOT EXISTS (SELECT 1 FROM claims c WHERE c.annotation_id = a.id"
        " AND c.user_id != ? AND c.expires_at > ?)"
    )
    common_params: list = [user_id, now_ts]
    if review_set["source"] == "human":
        # Nobody rates their own human annotation, so the queue never offers it.
        common += " AND a.created_by IS NOT ?"
        common_params.append(user_id)
    if filters.label:
        common += label_condition(review_set["kind"])
        common_params.append(filters.label)
    if filters.split:
        common += " AND EXISTS (SELECT 1 FROM images i WHERE i.id = a.image_id AND i.split = ?)"
        common_params.append(filters.split)

    start_seg = 0
    if cursor is not None:
        start_seg = cursor[0] if 0 <= cursor[0] < len(segments) else 0
    # The walk: the cursor's segment from the cursor, the later segments, then from the start (wrap).
    plan = [(start_seg, after)] + [(s, None) for s in range(start_seg + 1, len(segments))]
    if after is not None or start_seg > 0:
        plan += [(s, None) for s in range(0, start_seg + 1)]
    out: list[tuple[int, int]] = []
    seen: set[int] = set()
    for seg, seg_after in plan:
        rating = segments[seg]
        rating_cond = "a.rating IS NULL" if rating is None else "a.rating = ?"
        rating_params = [] if rating is None else [rating]
        for where, params, order_by in _ranges(filters.order, filters, seg_after):
            sql = (
                f"SELECT a.id FROM annotations a WHERE a.set_id = ? AND a.deleted = 0 AND {rating_cond}"
                f" AND {where}{common} ORDER BY {order_by} LIMIT ?"
            )
            rows = db.execute(
                sql, [review_set["id"], *rating_params, *params, *common_params, limit - len(out)]
            ).fetchall()
            for (ann_id,) in rows:
                if ann_id not in seen:
                    seen.add(ann_id)
                    out.append((seg, ann_id))
            if len(out) >= limit:
                return out
    return out


def claim_next(
    db: Database,
    review_set: Mapping,
    user_id: int,
    filters: Filters,
    cursor: tuple[int, int] | None,
    claim_seconds: float,
) -> tuple[tuple[int, int] | None, int | None]:
    """Claim the next item of the queue after the cursor for the user.

    Returns ((segment, id) claimed or None when the queue is empty, the id after it for preloading).
    """
    after = cursor_key(db, filters, cursor)
    with immediate(db):
        return _claim_next_locked(db, review_set, user_id, filters, cursor, claim_seconds, after)


def rate_and_claim_next(
    db: Database,
    review_set: Mapping,
    user_id: int,
    annotation_id: int,
    value: str,
    filters: Filters,
    cursor: tuple[int, int] | None,
    claim_seconds: float,
) -> tuple[tuple[int, int] | None, int | None]:
    """Rate an item (as annotations.rate does) and claim the next one, in one write transaction."""
    after = cursor_key(db, filters, cursor)
    with immediate(db):
        refuse_if_claimed(db, annotation_id, user_id)
        rate_in_transaction(db, annotation_id, user_id, value, set_id=review_set["id"])
        return _claim_next_locked(db, review_set, user_id, filters, cursor, claim_seconds, after)


def cursor_key(db: Database, filters: Filters, cursor: tuple[int, int] | None) -> tuple | None:
    """The queue's sort key of the cursor's annotation: (score, id) or (image_id, id); None without one.

    Read before the write transaction: a row's score and image never change once written, so the
    write lock, which every other reviewer's rating queues behind, is not held for this read."""
    return _key(db, filters.order, cursor[1]) if cursor is not None else None


def _claim_next_locked(db, review_set, user_id, filters, cursor, claim_seconds, after):
    now_ts = time.time()
    # Expired claims, and the one this reviewer held (the item they leave).
    db.execute("DELETE FROM claims WHERE expires_at <= ? OR user_id = ?", [now_ts, user_id])
    found = _candidates(db, review_set, user_id, filters, cursor, now_ts, 2, after)
    if not found:
        return None, None
    db.execute(
        "INSERT OR REPLACE INTO claims (annotation_id, user_id, expires_at) VALUES (?, ?, ?)",
        [found[0][1], user_id, now_ts + claim_seconds],
    )
    return found[0], (found[1][1] if len(found) > 1 else None)


def refuse_if_claimed(db: Database, annotation_id: int, user_id: int) -> None:
    """Conflict (409) when another reviewer holds an unexpired claim on the item: they are looking at
    it and may rate it, and two ratings racing would silently overwrite one another."""
    row = db.execute(
        "SELECT u.username, c.expires_at FROM claims c LEFT JOIN users u ON u.id = c.user_id"
        " WHERE c.annotation_id = ? AND c.user_id != ? AND c.expires_at > ?",
        [annotation_id, user_id, time.time()],
    ).fetchone()
    if row is not None:
        left = max(1, round(row[1] - time.time()))
        raise Conflict(
            f"{row[0] or 'another reviewer'} is reviewing annotation {annotation_id} now, so your rating was "
            f"not saved; rate it when they move on (their claim ends within {left} s) or go on to the next item"
        )


def rate_unclaimed(db: Database, annotation_id: int, user_id: int, value: str, set_id: int) -> dict:
    """Rate an item of a set (as annotations.rate does) unless another reviewer holds a claim on it."""
    with immediate(db):
        refuse_if_claimed(db, annotation_id, user_id)
        return rate_in_transaction(db, annotation_id, user_id, value, set_id=set_id)


def claim_item(db: Database, annotation_id: int, user_id: int, claim_seconds: float) -> int | None:
    """Claim one item (going back, after an undo); returns the user id holding it when someone else does."""
    now_ts = time.time()
    with immediate(db):
        if db.execute("SELECT 1 FROM annotations WHERE id = ?", [annotation_id]).fetchone() is None:
            raise NotFound(f"no annotation {annotation_id}")
        db.execute("DELETE FROM claims WHERE expires_at <= ?", [now_ts])
        holder = db.execute("SELECT user_id FROM claims WHERE annotation_id = ?", [annotation_id]).fetchone()
        if holder and holder[0] != user_id:
            return holder[0]
        db.execute("DELETE FROM claims WHERE user_id = ?", [user_id])
        db.execute(
            "INSERT INTO claims (annotation_id, user_id, expires_at) VALUES (?, ?, ?)",
            [annotation_id, user_id, now_ts + claim_seconds],
        )
    return None


def item(db: Database, annotation_id: int, set_id: int) -> dict:
    """An annotation of the set with its image and every annotation of the set on that image."""
    cur = db.execute(
        "SELECT a.*, i.width, i.height, i.split, i.licence, i.author, i.author_url, i.title, i.url,"
        " i.rotation, u.username AS rated_by_name FROM annotations a"
        " JOIN images i ON i.id = a.image_id LEFT JOIN users u ON u.id = a.rated_by"
        " WHERE a.id = ? AND a.set_id = ?",
        [annotation_id, set_id],
    )
    row = cur.fetchone()
    if row is None:
        raise NotFound(f"no annotation {annotation_id} in set {set_id}")
    ann = decode(dict(zip([c[0] for c in cur.description], row, strict=True)))
    # The overview draws boxes only: points are read (and decoded) only where there is no box.
    others = db.execute(
        "SELECT id, x0, y0, x1, y1, CASE WHEN x0 IS NULL THEN points END, rating FROM annotations"
        " WHERE set_id = ? AND image_id = ? AND deleted = 0 ORDER BY id",
        [set_id, ann["image_id"]],
    ).fetchall()
    ann["others"] = [
        {
            "id": o[0],
            "x0": o[1],
            "y0": o[2],
            "x1": o[3],
            "y1": o[4],
            "points": json.loads(o[5]) if o[5] else None,
            "rating": o[6],
        }
        for o in others
    ]
    return ann


def preview(db: Database, annotation_id: int) -> dict:
    """What preloading an item's images needs: image id and size, and the box."""
    row = db.execute(
        "SELECT a.image_id, a.x0, a.y0, a.x1, a.y1, CASE WHEN a.x0 IS NULL THEN a.points END, i.width, i.height"
        " FROM annotations a JOIN images i ON i.id = a.image_id WHERE a.id = ?",
        [annotation_id],
    ).fetchone()
    if row is None:
        raise NotFound(f"no annotation {annotation_id}")
    keys = ("image_id", "x0", "y0", "x1", "y1", "points", "width", "height")
    out = dict(zip(keys, row, strict=True))
    out["points"] = json.loads(out["points"]) if out["points"] else None
    return out


def image_ids_to_rate(
    db: Database, set_id: int, image_id: str, user_id: int, source: str, label: str | None = None
) -> list[int]:
    """The annotations of the set on an image that the user may rate ("all faces in this image are good"),
    or with `label` only those of one class ("all boxes of this class in this image are good").

    Not their own human annotations, and not those another reviewer holds a claim on right now.
    """
    sql = (
        "SELECT a.id FROM annotations a WHERE a.set_id = ? AND a.image_id = ? AND a.deleted = 0"
        " AND NOT EXISTS (SELECT 1 FROM claims c WHERE c.annotation_id = a.id AND c.user_id != ? AND c.expires_at > ?)"
    )
    params: list = [set_id, image_id, user_id, time.time()]
    if source == "human":
        sql += " AND a.created_by IS NOT ?"
        params.append(user_id)
    if label is not None:
        sql += " AND a.label = ?"
        params.append(label)
    return [r[0] for r in db.execute(sql + " ORDER BY a.id", params).fetchall()]
