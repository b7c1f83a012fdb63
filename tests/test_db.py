from app.db import connect, migrate
from app.migrations import migrations


def test_migrations_on_empty_database(tmp_path):
    db = connect(str(tmp_path / "new.db"))
    applied = migrate(db)
    assert applied == [m.name for m in migrations._migrations]
    tables = set(db.table_names())
    for t in (
        "images",
        "annotation_sets",
        "annotations",
        "ratings",
        "claims",
        "users",
        "models",
        "runs",
        "run_errors",
        "events",
    ):
        assert t in tables
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_migrations_on_existing_database_are_idempotent(tmp_path):
    path = str(tmp_path / "old.db")
    db = connect(path)
    migrate(db)
    db.execute("INSERT INTO images (id, split, created_at) VALUES ('0123456789abcdef', 'train', 'now')")
    db.close()
    db = connect(path)
    assert migrate(db) == []
    assert db.execute("SELECT count(*) FROM images").fetchone()[0] == 1


def test_set_counters_follow_ratings_and_deletes(db):
    from app.sets.queries import create_set, list_sets

    db.execute("INSERT INTO images (id, split, created_at) VALUES ('0123456789abcdef', 'train', 'now')")
    sid = create_set(db, "s", "face_box", "model")
    ids = [
        db.execute(
            "INSERT INTO annotations (set_id, image_id, kind, created_at) VALUES (?, '0123456789abcdef', 'face_box', 'now')",
            [sid],
        ).lastrowid
        for _ in range(4)
    ]
    db.execute("UPDATE annotations SET rating = 'good' WHERE id = ?", [ids[0]])
    db.execute("UPDATE annotations SET rating = 'bad' WHERE id = ?", [ids[1]])
    db.execute("UPDATE annotations SET rating = 'good' WHERE id = ?", [ids[1]])
    db.execute("UPDATE annotations SET deleted = 1 WHERE id = ?", [ids[2]])
    db.execute("DELETE FROM annotations WHERE id = ?", [ids[3]])
    (s,) = list_sets(db)
    real = db.execute(
        "SELECT count(*), sum(rating IS 'good'), sum(rating IS 'bad') FROM annotations WHERE set_id = ? AND deleted = 0",
        [sid],
    ).fetchone()
    assert (s["total"], s["good"], s["bad"]) == tuple(real) == (2, 2, 0)


# m008 as it first shipped: set_page_marks without built_at. The code's m008 is the later, edited
# text (built_at between version and image_id), kept as it is: migrations are append-only.
ORIGINAL_M008_MARKS = """
    DROP TABLE set_page_marks;
    CREATE TABLE set_page_marks (
        set_id INTEGER NOT NULL,
        every INTEGER NOT NULL,
        mark INTEGER NOT NULL,
        version INTEGER NOT NULL,
        image_id TEXT NOT NULL,
        annotation_id INTEGER NOT NULL,
        PRIMARY KEY (set_id, every, mark)
    ) WITHOUT ROWID;
"""


def _schema(db) -> list[tuple]:
    return db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").fetchall()


def _marks_columns(db) -> list[str]:
    return [r[1] for r in db.execute("PRAGMA table_info(set_page_marks)")]


def _store_and_read_marks(db) -> None:
    from app.sets.page_marks import store_marks, stored_mark
    from app.sets.queries import create_set

    set_id = create_set(db, "marks", "face_box", "human")
    version = db.execute("SELECT layout_version FROM annotation_sets WHERE id = ?", [set_id]).fetchone()[0]
    assert store_marks(db, set_id, 24, version, [("0123456789abcdef", 7)])
    assert stored_mark(db, set_id, 24, 0, version) == (("0123456789abcdef", 7), False)


def test_m009_brings_either_m008_to_one_schema(tmp_path):
    fresh = connect(str(tmp_path / "fresh.db"))
    migrate(fresh)
    assert _marks_columns(fresh)[4] == "built_at"

    # A store migrated with m008 as first shipped: no built_at until m009, old marks dropped by it.
    original = connect(str(tmp_path / "original.db"))
    migrations.apply(original, stop_before="m009_page_marks_built_at")
    original.executescript(ORIGINAL_M008_MARKS)
    assert "built_at" not in _marks_columns(original)
    original.execute(
        "INSERT INTO annotation_sets (name, kind, source, created_at) VALUES ('s', 'face_box', 'human', 'now')"
    )
    original.execute(
        "INSERT INTO set_page_marks (set_id, every, mark, version, image_id, annotation_id)"
        " VALUES (1, 24, 0, 0, '0123456789abcdef', 1)"
    )
    original.conn.commit()
    assert migrate(original)[0] == "m009_page_marks_built_at"
    assert original.execute("SELECT count(*) FROM set_page_marks").fetchone()[0] == 0

    # A store migrated with the edited m008 (built_at already there).
    edited = connect(str(tmp_path / "edited.db"))
    migrations.apply(edited, stop_before="m009_page_marks_built_at")
    assert _marks_columns(edited)[4] == "built_at"
    assert migrate(edited)[0] == "m009_page_marks_built_at"

    assert _schema(original) == _schema(fresh)
    assert _schema(edited) == _schema(fresh)
    for db in (fresh, original, edited):
        _store_and_read_marks(db)
    # Deleting a set still drops its marks (m008's trigger, on the table m009 made).
    fresh.execute("DELETE FROM annotation_sets")
    assert fresh.execute("SELECT count(*) FROM set_page_marks").fetchone()[0] == 0
