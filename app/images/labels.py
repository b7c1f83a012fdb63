"""Image-level labels and the class hierarchy: every read and write of `image_labels` and `class_hierarchy`.

An image-level label says that a person verified a class on an image: confidence 1, the class is
there; 0, a person checked and it is not. Open Images publishes them as
`*-annotations-human-imagelabels*.csv` (imports/openimages_labels.py brings them in); its detection
metric (models/metrics_openimages.py) needs them: a detection of a class verified absent is a false
positive, one of a class nobody verified on that image is ignored.
"""

from collections.abc import Iterable

from sqlite_utils import Database

# One row per image and class. A label of an image not in the store is dropped (the WHERE), as
# boxes are; a re-import of the same row changes nothing (the DO UPDATE's WHERE), so SQLite's change
# count is the number of labels added or changed.
UPSERT_LABEL_SQL = (
    "INSERT INTO image_labels (image_id, label, confidence, source)"
    " SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM images WHERE id = ?1)"
    " ON CONFLICT (image_id, label) DO UPDATE SET confidence = excluded.confidence, source = excluded.source"
    " WHERE confidence IS NOT excluded.confidence OR source IS NOT excluded.source"
)


def upsert_labels(db: Database, rows: Iterable[tuple[str, str, int, str | None]]) -> int:
    """Write (image_id, label, confidence, source) rows in the caller's transaction; returns how many
    were added or changed (rows of images not in the store and unchanged rows do not count)."""
    before = db.conn.total_changes
    db.conn.executemany(UPSERT_LABEL_SQL, rows)
    return db.conn.total_changes - before


def labels_by_image(db: Database, split: str) -> dict[str, dict[str, int]]:
    """The verified labels of a split's images: image id -> {label: confidence}."""
    out: dict[str, dict[str, int]] = {}
    for image_id, label, confidence in db.execute(
        "SELECT l.image_id, l.label, l.confidence FROM image_labels l JOIN images i ON i.id = l.image_id"
        " WHERE i.split = ? ORDER BY l.image_id",
        [split],
    ):
        out.setdefault(image_id, {})[label] = confidence
    return out


def image_labels(db: Database, image_id: str) -> dict[str, int]:
    """One image's verified labels: {label: confidence}."""
    return dict(db.execute("SELECT label, confidence FROM image_labels WHERE image_id = ?", [image_id]))


def store_hierarchy(db: Database, edges: Iterable[tuple[str, str]]) -> int:
    """Replace the class hierarchy with these (label, parent) edges, in the caller's transaction; returns
    how many rows changed (0 when the same hierarchy is stored again)."""
    new = set(edges)
    old = set(db.execute("SELECT label, parent FROM class_hierarchy"))
    db.conn.executemany("DELETE FROM class_hierarchy WHERE label = ? AND parent = ?", sorted(old - new))
    db.conn.executemany("INSERT INTO class_hierarchy (label, parent) VALUES (?, ?)", sorted(new - old))
    return len(old ^ new)


def class_hierarchy(db: Database) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(ancestors, descendants) of each class by the stored hierarchy, its root(s) left out (Open Images'
    "Entity" is a virtual node, never a class of its own); both empty when none is stored."""
    parents: dict[str, set[str]] = {}
    for label, parent in db.execute("SELECT label, parent FROM class_hierarchy"):
        parents.setdefault(label, set()).add(parent)
    roots = {p for ps in parents.values() for p in ps} - set(parents)
    ancestors: dict[str, set[str]] = {}

    def up(label: str, seen: frozenset = frozenset()) -> set[str]:
        if label not in ancestors:
            out: set[str] = set()
            for p in parents.get(label, ()):
                if p in roots or p in seen:
                    continue
                out |= {p} | up(p, seen | {label})
            ancestors[label] = out
        return ancestors[label]

    for label in parents:
        up(label)
    descendants: dict[str, set[str]] = {}
    for label, ups in ancestors.items():
        for a in ups:
            descendants.setdefault(a, set()).add(label)
    return {k: v for k, v in ancestors.items() if v}, descendants
