"""Image rows: the one way imports add photos to the store.

Every importer (Open Images CSVs, a folder, a fetched set file, the demo) adds images here, so the
rule "an image id is added once; a second import never overwrites what the first recorded" lives
in one place. Writes happen in the caller's transaction.
"""

from collections.abc import Iterable, Sequence

from sqlite_utils import Database

# The columns an importer may fill, besides id and created_at.
COLUMNS = ("split", "path", "width", "height", "rotation", "licence", "author", "author_url", "title", "url")


def insert_sql(columns: Sequence[str]) -> str:
    """INSERT for rows of (id, *columns, created_at); an id already in the store is left as it is."""
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise ValueError(f"unknown image columns {unknown}; known: {', '.join(COLUMNS)}")
    names = ("id", *columns, "created_at")
    return (
        f"INSERT INTO images ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        " ON CONFLICT (id) DO NOTHING"
    )


def insert_images(db: Database, columns: Sequence[str], rows: Iterable[Sequence]) -> int:
    """Add image rows (id, *columns, created_at) in the caller's transaction; returns how many were new."""
    return db.conn.executemany(insert_sql(columns), rows).rowcount
