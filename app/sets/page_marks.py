"""Marks for opening a set page by number in O(log n): the (image_id, id) key of every `every`-th live
row of a set, in page order, so page N starts at the mark at or before row (N - 1) * per_page and skips
fewer than `every` entries of the covering index annotations_set_page, wherever N is in the set.

Marks are built by one walk of that index (hops of `every` entries, in SQLite) inside the reader's
snapshot, and stored with the set's layout_version of that snapshot (migration m008: the counter
triggers bump it whenever a live row enters, leaves or moves in the set; ratings do not). A reader uses
stored marks only when their version is the set's version in its own snapshot, so stale marks are
never used; a rebuild replaces a set's marks in one write transaction, so no reader sees half of them.
"""

import sqlite3
import time

from sqlite_utils import Database

from ..db import immediate

# 64 pages of 60 between marks: a jump skips at most 3 839 index entries (~0.2 ms); 2.5 M rows need
# ~650 marks.
MARK_EVERY = 60 * 64
# Below this many marks' worth of rows, skipping from the nearer end is as fast: no marks at all.
MIN_MARKS = 4
# Stale marks are rebuilt at most this often (a rebuild walks the whole set: ~175 ms for 2.5 M rows).
REBUILD_AFTER_S = 10.0

_FIRST = "SELECT image_id, id FROM annotations WHERE set_id = ? AND deleted = 0 ORDER BY image_id, id LIMIT 1"
_HOP = (
    "SELECT image_id, id FROM annotations WHERE set_id = ? AND deleted = 0 AND (image_id, id) >= (?, ?)"
    " ORDER BY image_id, id LIMIT 1 OFFSET ?"
)


def build_marks(db: Database, set_id: int, every: int) -> list[tuple[str, int]]:
    """The keys of the set's live rows at ranks 0, every, 2 * every, ... in page order (one index walk)."""
    marks: list[tuple[str, int]] = []
    key = db.execute(_FIRST, [set_id]).fetchone()
    while key is not None:
        marks.append((key[0], key[1]))
        key = db.execute(_HOP, [set_id, key[0], key[1], every]).fetchone()
    return marks


def stored_mark(
    db: Database, set_id: int, every: int, mark: int, version: int
) -> tuple[tuple[str, int] | None, bool]:
    """Mark number `mark` of the set if it was stored at `version` (else None), and whether to rebuild.

    Rebuild when there are no marks or the stale ones are REBUILD_AFTER_S old: a set that changes all
    the time (a bulk job writing into it) is rebuilt at most that often, and jumps in between skip
    from the nearer end, at most half a walk where a rebuild is a whole one.
    """
    row = db.execute(
        "SELECT version, image_id, annotation_id FROM set_page_marks WHERE set_id = ? AND every = ? AND mark = ?",
        [set_id, every, mark],
    ).fetchone()
    if row is not None and row[0] == version:
        return (row[1], row[2]), False
    built = db.execute(
        "SELECT built_at FROM set_page_marks WHERE set_id = ? AND every = ? AND mark = 0", [set_id, every]
    ).fetchone()
    return None, built is None or time.time() - built[0] >= REBUILD_AFTER_S


def store_marks(db: Database, set_id: int, every: int, version: int, marks: list[tuple[str, int]]) -> bool:
    """Replace the set's marks by these, built at `version`, in one short write transaction.

    Nothing is written when the set has changed since (the marks would be stale at once) or when a
    concurrent request already stored marks of this version. Returns whether it wrote.
    """
    try:
        with immediate(db):
            cur = db.execute("SELECT layout_version FROM annotation_sets WHERE id = ?", [set_id]).fetchone()
            if cur is None or cur[0] != version or stored_mark(db, set_id, every, 0, version)[0]:
                return False
            now = time.time()
            db.execute("DELETE FROM set_page_marks WHERE set_id = ? AND every = ?", [set_id, every])
            db.conn.executemany(
                "INSERT INTO set_page_marks (set_id, every, mark, version, built_at, image_id, annotation_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(set_id, every, i, version, now, image_id, ann) for i, (image_id, ann) in enumerate(marks)],
            )
        return True
    except sqlite3.OperationalError:
        # Locked past the busy timeout, or a read-only store: the page was answered from the marks
        # built in memory; the next jump builds them again.
        return False
