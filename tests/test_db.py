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
