"""A set's pages for the thumbnail grid: page N (from the marks of page_marks.py), or the page after or
before an (image_id, id) key, all over the covering index annotations_set_page."""

import json
import re

from sqlite_utils import Database

from ..annotations.rows import decode
from ..db import snapshot
from ..errors import InvalidInput
from . import page_marks

# Image ids in the store: Open Images' 16 hex, or whatever import-dir gave (no dots).
IMAGE_KEY = re.compile(r"[^./]{1,200}")


def set_page(
    db: Database,
    set_id: int,
    page: int,
    per_page: int = 60,
    after: tuple[str, int] | None = None,
    before: tuple[str, int] | None = None,
    mark_every: int = page_marks.MARK_EVERY,
) -> list[dict]:
    """One page of a set's annotations, image by image, for the thumbnail grid: page N, or the page
    right after / before an (image_id, id) key (what the pager's links use: as fast deep in the set)."""
    if page < 1:
        raise InvalidInput("page starts at 1")
    # One read snapshot for the counts, the marks and the rows (autocommit reads each take their own).
    outer = db.conn.in_transaction
    built = None
    with snapshot(db):
        if after is not None:
            ids = _page_ids(db, AFTER_KEY, "ASC", [set_id, *after, per_page])
        elif before is not None:
            ids = _page_ids(db, BEFORE_KEY, "DESC", [set_id, *before, per_page])
        else:
            ids, built = _page_ids_by_number(db, set_id, page, per_page, mark_every)
        anns = [
            decode(r)
            for r in db.query(
                "SELECT a.id, a.image_id, a.x0, a.y0, a.x1, a.y1, a.points, a.flags, a.label, a.score,"
                " a.rating, i.width, i.height FROM annotations a JOIN images i ON i.id = a.image_id"
                " WHERE a.id IN (SELECT value FROM json_each(?)) ORDER BY a.image_id, a.id",
                [json.dumps(ids)],
            )
        ]
    if built is not None and not outer:
        page_marks.store_marks(db, set_id, mark_every, *built)
    return anns


_PAGE_SQL = (
    "SELECT id FROM annotations WHERE set_id = ? AND deleted = 0{0} ORDER BY image_id {1}, id {1} LIMIT ?"
)


# Where a page starts: after / before a pager key, or from a mark.
AFTER_KEY = " AND (image_id, id) > (?, ?)"
BEFORE_KEY = " AND (image_id, id) < (?, ?)"
FROM_KEY = " AND (image_id, id) >= (?, ?)"


def page_sql(where: str, direction: str) -> str:
    """The SQL that reads one page's ids (params: set_id, [key], limit, offset); tests EXPLAIN it."""
    return _PAGE_SQL.format(where, direction) + " OFFSET ?"


def _page_ids(db: Database, where: str, direction: str, params: list, offset: int = 0) -> list[int]:
    # Over the covering index annotations_set_page: a skip reads index entries only.
    sql = page_sql(where, direction)
    return [r[0] for r in db.execute(sql, [*params, offset])]


def _plain_page_ids(db: Database, set_id: int, skip: int, per_page: int, total: int) -> list[int]:
    """Page ids by skipping from the nearer end of the set (small sets, and stale marks)."""
    if skip > total // 2:
        take = max(0, min(per_page, total - skip))
        return _page_ids(db, "", "DESC", [set_id, take], max(0, total - skip - take))[::-1]
    return _page_ids(db, "", "ASC", [set_id, per_page], skip)


def _page_ids_by_number(
    db: Database, set_id: int, page: int, per_page: int, every: int
) -> tuple[list[int], tuple[int, list] | None]:
    """Page N's ids, and (version, marks) when marks were built for it and should be stored."""
    row = db.execute("SELECT n_total, layout_version FROM annotation_sets WHERE id = ?", [set_id]).fetchone()
    total, version = row if row else (0, 0)
    skip = (page - 1) * per_page
    if total < every * page_marks.MIN_MARKS or skip >= total:
        return _plain_page_ids(db, set_id, skip, per_page, total), None
    mark = skip // every
    built = None
    key, rebuild = page_marks.stored_mark(db, set_id, every, mark, version)
    if key is None and not rebuild:
        return _plain_page_ids(db, set_id, skip, per_page, total), None
    if key is None:
        # Missing or stale: one walk of the index in this snapshot, so the marks match `version`.
        marks = page_marks.build_marks(db, set_id, every)
        if mark >= len(marks):  # n_total disagrees with the table: never guess, skip plainly
            return _page_ids(db, "", "ASC", [set_id, per_page], skip), None
        built = (version, marks)
        key = marks[mark]
    ids = _page_ids(db, FROM_KEY, "ASC", [set_id, *key, per_page], skip - mark * every)
    return ids, built


def parse_page_key(value: str | None) -> tuple[str, int] | None:
    """A pager key "<image_id>.<annotation id>" from a URL, or None; InvalidInput when malformed."""
    if not value:
        return None
    image_id, _, ann = value.partition(".")
    if not (IMAGE_KEY.fullmatch(image_id) and ann.isascii() and ann.isdigit()):
        raise InvalidInput(f"bad page key {value!r}")
    return image_id, int(ann)
