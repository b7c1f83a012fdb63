"""Which images a bulk run annotates: those no human labelled for the kind, or whose machine annotation
was rated bad, of a split, an id range or a file of ids, in id order from a resume cursor on. With
labels (--classes), only human rows and bad ratings of those classes count, and with a box set
(object_mask's --boxes-from) only images with a box of those classes are taken."""

import json
import re
from pathlib import Path

from sqlite_utils import Database

from ..errors import InvalidInput

HEX_PREFIX = re.compile(r"[0-9a-f]{1,16}")


def _selection_sql(
    kind: str,
    split: str | None,
    prefix: str | None,
    image_ids: list[str] | None,
    with_boxes_in: int | None,
    after: str | None,
    labels: list[str] | None = None,
) -> tuple[str, list]:
    # A human's boxes of a Car say nothing about the people in the photo: with labels, only those count.
    of_labels = "" if labels is None else " AND a.label IN (SELECT value FROM json_each(?))"
    label_param = [] if labels is None else [json.dumps(labels)]
    where = [
        "(NOT EXISTS (SELECT 1 FROM annotations a JOIN annotation_sets s ON s.id = a.set_id"
        f" WHERE a.image_id = i.id AND a.kind = ? AND a.deleted = 0 AND s.source = 'human'{of_labels})"
        " OR EXISTS (SELECT 1 FROM annotations a JOIN annotation_sets s ON s.id = a.set_id"
        " WHERE a.image_id = i.id AND a.kind = ? AND a.deleted = 0 AND a.rating = 'bad'"
        f" AND s.source != 'human'{of_labels}))"
    ]
    params: list = [kind, *label_param, kind, *label_param]
    if split:
        where.append("i.split = ?")
        params.append(split)
    if prefix:
        # A prefix ("3f") or a range of prefixes ("0..7"), so machines can split the data set.
        lo, _, hi = prefix.partition("..")
        hi = hi or lo
        if not (HEX_PREFIX.fullmatch(lo) and HEX_PREFIX.fullmatch(hi)) or hi < lo:
            raise InvalidInput(f"--prefix {prefix!r}: give hex characters (e.g. 3f) or a range such as 0..7")
        where.append("i.id >= ? AND i.id < ?")
        params += [lo, hi + "g"]  # 'g' sorts after every hex digit
    if image_ids is not None:
        where.append("i.id IN (SELECT value FROM json_each(?))")
        params.append(json.dumps(image_ids))
    if with_boxes_in is not None:
        # With labels, an image whose boxes are all of other classes has nothing to annotate: it is not
        # taken (nor counted in the run's total).
        box_labels = "" if labels is None else " AND b.label IN (SELECT value FROM json_each(?))"
        where.append(
            "EXISTS (SELECT 1 FROM annotations b WHERE b.set_id = ? AND b.image_id = i.id AND b.deleted = 0"
            f"{box_labels})"
        )
        params += [with_boxes_in, *label_param]
    if after:
        where.append("i.id > ?")
        params.append(after)
    return " AND ".join(where), params


def select_images(
    db: Database,
    kind: str,
    *,
    split: str | None = None,
    prefix: str | None = None,
    image_ids: list[str] | None = None,
    with_boxes_in: int | None = None,
    after: str | None = None,
    limit: int | None = None,
    labels: list[str] | None = None,
) -> list[dict]:
    """Images to annotate for a kind, in id order: those no human has labelled for the kind, plus those
    with a machine annotation of the kind rated bad; narrowed by split, id prefix, an id list, having
    boxes in a set, and ids after a cursor; labels: only human rows and bad ratings of these classes
    count, and only boxes of these classes in the set. Rows: id, split, path, width, height, rotation."""
    where, params = _selection_sql(kind, split, prefix, image_ids, with_boxes_in, after, labels)
    sql = f"SELECT i.id, i.split, i.path, i.width, i.height, i.rotation FROM images i WHERE {where} ORDER BY i.id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    return list(db.query(sql, params))


def count_images(db: Database, kind: str, **kw) -> int:
    """How many images select_images would return (without a limit)."""
    where, params = _selection_sql(
        kind,
        kw.get("split"),
        kw.get("prefix"),
        kw.get("image_ids"),
        kw.get("with_boxes_in"),
        kw.get("after"),
        kw.get("labels"),
    )
    return db.execute(f"SELECT count(*) FROM images i WHERE {where}", params).fetchone()[0]


def read_images_file(path: str | Path) -> list[str]:
    """Image ids from a file, one per line (blank lines and # comments skipped), validated."""
    from ..images.layout import validate_image_id

    ids = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            ids.append(validate_image_id(line.split(",")[0].strip(), f"{path} line {n}"))
    return ids
