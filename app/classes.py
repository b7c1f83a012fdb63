"""Open Images classes: a class MID's display name ("/m/0k4j" -> "Car"), for pages, filters and the editor.

The 601 boxable classes ship in app/data/openimages-classes-boxable.csv (Open Images' own
class-descriptions-boxable.csv, CC BY 4.0; see app/data/NOTICE.md), so names are known without the
metadata files. A class outside that list (the full, non-boxable list) gets the display name an
import stored in its set's params, else its MID.
"""

import csv
import json
import re
from collections.abc import Iterable
from functools import cache

from sqlite_utils import Database

from .errors import InvalidInput
from .paths import REPO_ROOT

CLASSES_FILE = REPO_ROOT / "app" / "data" / "openimages-classes-boxable.csv"
LABEL_RE = re.compile(r"/[mg]/[0-9a-z_]{1,40}")


@cache
def boxable() -> dict[str, str]:
    """MID -> display name of Open Images' boxable classes, in the file's order."""
    with open(CLASSES_FILE, newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        next(rows)  # LabelName,DisplayName
        return {mid: name for mid, name in rows}


def display_name(mid: str | None, known: dict[str, str] | None = None) -> str:
    """The class's display name: from `known` (names_in_store), else the boxable list, else the MID."""
    if not mid:
        return "no class"
    return (known or {}).get(mid) or boxable().get(mid) or mid


def names_in_store(db: Database) -> dict[str, str]:
    """MID -> display name that imports stored in their sets' params (classes beyond the boxable list)."""
    out = {}
    for label, params in db.execute(
        "SELECT label, params FROM annotation_sets WHERE label IS NOT NULL AND params IS NOT NULL"
    ).fetchall():
        try:
            name = json.loads(params).get("display_name")
        except (ValueError, AttributeError):
            continue
        if name and label not in boxable():
            out[label] = name
    return out


def class_counts(db: Database, set_id: int) -> list[dict]:
    """Per class of a set of object boxes, its live rows: label, name, total, unrated, good, bad; most
    rows first."""
    # A walk of m019's covering index (set, class, deleted, rating): ~0.1 s for 300k boxes on a busy
    # 2-core machine, half the time of reading the rows; only full pages ask (never the htmx fragments).
    rows = db.execute(
        "SELECT label, count(*), sum(rating IS NULL), coalesce(sum(rating = 'good'), 0),"
        " coalesce(sum(rating = 'bad'), 0) FROM annotations INDEXED BY annotations_queue_class"
        " WHERE set_id = ? AND kind = 'object_box' AND deleted = 0 GROUP BY label",
        [set_id],
    ).fetchall()
    known = names_in_store(db) if any(r[0] not in boxable() for r in rows) else {}
    out = [
        {
            "label": label,
            "name": display_name(label, known),
            "total": total,
            "unrated": unrated,
            "good": good,
            "bad": bad,
        }
        for label, total, unrated, good, bad in rows
    ]
    return sorted(out, key=lambda c: (-c["total"], c["name"].lower()))


def choices(db: Database) -> list[dict]:
    """Every class a box can be given: the boxable list, then other classes the store's sets name."""
    out = [{"label": mid, "name": name} for mid, name in boxable().items()]
    out += [{"label": mid, "name": name} for mid, name in sorted(names_in_store(db).items())]
    return sorted(out, key=lambda c: c["name"].lower())


def check_label(value: str, where: str = "class") -> str:
    """A class MID such as /m/0k4j; InvalidInput names the bad one."""
    if not isinstance(value, str) or not LABEL_RE.fullmatch(value):
        raise InvalidInput(f"{where} must be an Open Images class MID such as /m/0k4j (Car), not {value!r}")
    return value


def parse_classes(value: str | Iterable[str] | None, option: str = "--classes") -> list[str] | None:
    """Class MIDs from a comma-separated option (or a list), in order, each once; None when none given.

    Every command's --classes (imports, bulk-annotate, evaluate) reads through here; InvalidInput names
    the bad class and what a good one looks like."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    mids = [v.strip() for v in items if v.strip()]
    for mid in mids:
        if not LABEL_RE.fullmatch(mid):
            raise InvalidInput(
                f"bad class {mid!r} in {option}: give Open Images MIDs separated by commas, e.g. /m/01g317,/m/0k4j"
            )
    if not mids:
        raise InvalidInput(
            f"{option} {value!r} names no class: give Open Images MIDs such as /m/01g317,/m/0k4j"
        )
    return list(dict.fromkeys(mids))
