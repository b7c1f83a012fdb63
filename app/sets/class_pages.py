"""A set's thumbnail pages for one class of object boxes (?label=): the page after or before an
(image_id, id) key, or page N by skipping, over the partial index annotations_page_class (m019).

Page numbers skip index entries of that class only (no marks: a class is a slice of a set, and
page_marks keeps marks for whole sets), which is cheap at the sizes one class of one set reaches.
"""

from sqlite_utils import Database

from ..annotations.rows import decode
from ..db import snapshot
from ..errors import InvalidInput

# The kind is a literal so that SQLite may use the partial index (WHERE kind = 'object_box').
_IDS = (
    "SELECT id FROM annotations WHERE set_id = ? AND kind = 'object_box' AND label = ? AND deleted = 0{0}"
    " ORDER BY image_id {1}, id {1} LIMIT ? OFFSET ?"
)


def class_page_sql(where: str = "", direction: str = "ASC") -> str:
    """The SQL that reads one page's ids of a class (params: set_id, label, [key], limit, offset)."""
    return _IDS.format(where, direction)


def class_page(
    db: Database,
    set_id: int,
    label: str,
    page: int,
    per_page: int = 60,
    after: tuple[str, int] | None = None,
    before: tuple[str, int] | None = None,
) -> list[dict]:
    """One page of a set's boxes of one class, image by image, as sets.pages.set_page gives them."""
    if page < 1:
        raise InvalidInput("page starts at 1")
    with snapshot(db):
        if after is not None:
            sql, params = class_page_sql(" AND (image_id, id) > (?, ?)"), [set_id, label, *after, per_page, 0]
        elif before is not None:
            sql, params = (
                class_page_sql(" AND (image_id, id) < (?, ?)", "DESC"),
                [set_id, label, *before, per_page, 0],
            )
        else:
            sql, params = class_page_sql(), [set_id, label, per_page, (page - 1) * per_page]
        ids = [r[0] for r in db.execute(sql, params)]
        marks = ",".join("?" * len(ids))
        return (
            [
                decode(r)
                for r in db.query(
                    "SELECT a.id, a.image_id, a.x0, a.y0, a.x1, a.y1, a.points, a.flags, a.label, a.score,"
                    f" a.rating, i.width, i.height FROM annotations a JOIN images i ON i.id = a.image_id"
                    f" WHERE a.id IN ({marks}) ORDER BY a.image_id, a.id",
                    ids,
                )
            ]
            if ids
            else []
        )
