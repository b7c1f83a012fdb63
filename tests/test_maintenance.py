"""Backups, restores, the audit page, and a full or read-only store."""

import sqlite3
import threading

import pytest

from app.annotations.rows import annotation_row, insert_annotations, rate
from app.backup import integrity_problems
from app.db import connect
from app.sets.queries import create_set

IMG = "00000000000000aa"


def _seed(db, n=50):
    db.execute("INSERT INTO images (id, split, created_at) VALUES (?, 'train', 'now')", [IMG])
    sid = create_set(db, "s", "face_box", "model")
    with db.atomic():
        insert_annotations(
            db, [annotation_row(sid, IMG, "face_box", (0, 0, 0.5, 0.5), score=i) for i in range(n)]
        )
    return sid


def test_backup_while_writing_then_restore(app, db, runner, tmp_path):
    _seed(db)
    ids = [r[0] for r in db.execute("SELECT id FROM annotations")]
    stop = threading.Event()

    def writer():
        w = connect(app.config["DATABASE"])
        i = 0
        while not stop.is_set():
            rate(w, ids[i % len(ids)], 1, "good" if i % 2 else "bad")
            i += 1
        w.close()

    t = threading.Thread(target=writer)
    t.start()
    try:
        for k in range(3):
            result = runner.invoke(args=["oiap", "backup", str(tmp_path / f"b{k}.sqlite3")])
            assert result.exit_code == 0, result.output
    finally:
        stop.set()
        t.join()
    backup_file = tmp_path / "b2.sqlite3"
    assert integrity_problems(backup_file) == []
    copy = sqlite3.connect(backup_file)
    assert copy.execute("SELECT count(*) FROM annotations").fetchone()[0] == 50
    n_ratings = copy.execute("SELECT count(*) FROM ratings").fetchone()[0]
    copy.close()

    # Refused without --force; with it, the store holds exactly the backup.
    refused = runner.invoke(args=["oiap", "restore", str(backup_file)])
    assert refused.exit_code != 0 and "--force" in refused.output
    db.execute("DELETE FROM ratings")
    done = runner.invoke(args=["oiap", "restore", "--force", str(backup_file)])
    assert done.exit_code == 0, done.output
    fresh = connect(app.config["DATABASE"])
    assert fresh.execute("SELECT count(*) FROM ratings").fetchone()[0] == n_ratings
    assert fresh.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    fresh.close()


def test_restore_refuses_a_corrupt_or_foreign_file(app, runner, tmp_path):
    corrupt = tmp_path / "corrupt.sqlite3"
    corrupt.write_bytes(b"SQLite format 3\x00" + b"\xff" * 5000)
    r = runner.invoke(args=["oiap", "restore", "--force", str(corrupt)])
    assert r.exit_code != 0 and "nothing restored" in r.output
    foreign = tmp_path / "other.sqlite3"
    c = sqlite3.connect(foreign)
    c.execute("CREATE TABLE x (a)")
    c.commit()
    c.close()
    r = runner.invoke(args=["oiap", "restore", "--force", str(foreign)])
    assert r.exit_code != 0 and "not an oiap database" in r.output
    # The store is untouched.
    db = connect(app.config["DATABASE"])
    assert db.execute("SELECT count(*) FROM users").fetchone()[0] == 2


def test_backup_to_a_folder_is_a_clear_error(runner, tmp_path):
    r = runner.invoke(args=["oiap", "backup", str(tmp_path)])
    assert r.exit_code != 0


def test_audit_page_filters_and_is_admin_only(admin_client, reviewer_client, db):
    sid = _seed(db, 3)
    a, b, _ = [r[0] for r in db.execute("SELECT id FROM annotations ORDER BY id")]
    rate(db, a, 1, "good")
    rate(db, b, 2, "bad")
    page = admin_client.get("/audit?user=2")
    assert page.status_code == 200
    assert f"annotation {b}".encode() in page.data and f">annotation {a}</a>".encode() not in page.data
    assert admin_client.get(f"/audit?set={sid}&action=rate").status_code == 200
    assert admin_client.get("/audit?user=abc").status_code == 400
    assert reviewer_client.get("/audit").status_code == 403


def test_full_disk_is_a_clear_error_and_nothing_half_written(app, db, monkeypatch):
    """SQLite's max_page_count makes the real SQLITE_FULL path happen without filling a disk."""
    _seed(db, 1)
    ann = db.execute("SELECT id FROM annotations").fetchone()[0]
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    import app.db as appdb

    real_connect = appdb.connect

    def full_connect(path):
        d = real_connect(path)
        d.execute(f"PRAGMA max_page_count = {pages}")
        return d

    monkeypatch.setattr(appdb, "connect", full_connect)
    big = annotation_row(1, IMG, "face_box", (0, 0, 1, 1), flags={"pad": "x" * 200_000})
    with app.app_context():
        d = appdb.get_db()
        with pytest.raises(sqlite3.OperationalError, match="full"):
            with d.atomic():
                rate(d, ann, 1, "good")
                insert_annotations(d, [big])
    check = real_connect(app.config["DATABASE"])
    # The rating made in the same transaction was rolled back with it.
    assert check.execute("SELECT rating FROM annotations WHERE id = ?", [ann]).fetchone()[0] is None
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_read_only_store_gives_a_clear_message(app, db, runner, monkeypatch):
    import app.db as appdb

    real_connect = appdb.connect

    def ro_connect(path):
        d = real_connect(path)
        d.execute("PRAGMA query_only = 1")
        return d

    monkeypatch.setattr(appdb, "connect", ro_connect)
    r = runner.invoke(args=["oiap", "user", "add", "newbie", "--password-stdin"], input="long enough pw\n")
    assert r.exit_code != 0
    assert "read-only" in r.output and "Traceback" not in r.output
