"""Kept per-thread connections and the in-process write lock (app/db.py)."""

import threading

from app import db as appdb


def test_kept_connection_is_reused_and_left_clean(app):
    with app.app_context():
        first = appdb.get_db()
        # Work left uncommitted by a request must not outlive it.
        first.conn.execute("BEGIN")
        first.execute("INSERT INTO events (at, action) VALUES ('t', 'left-open')")
        assert first.conn.in_transaction
    with app.app_context():
        again = appdb.get_db()
        assert again is first
        assert not again.conn.in_transaction
        assert again.execute("SELECT count(*) FROM events WHERE action = 'left-open'").fetchone()[0] == 0


def test_kept_connection_sees_a_restore(app, tmp_path):
    from app.backup import restore

    with app.app_context():
        kept = appdb.get_db()
        kept.execute("INSERT INTO events (at, action) VALUES ('t', 'in-backup')")
    backup = tmp_path / "b.sqlite3"
    src = appdb.connect(app.config["DATABASE"])
    dst = appdb.connect(str(backup))
    src.conn.backup(dst.conn)
    dst.close()
    src.execute("INSERT INTO events (at, action) VALUES ('t', 'after-backup')")
    src.close()
    # restore writes the backup into the live file (same file, SQLite's backup API).
    restore(app.config["DATABASE"], backup, force=True)
    with app.app_context():
        again = appdb.get_db()
        assert again is kept
        actions = {r[0] for r in again.execute("SELECT action FROM events")}
        assert "in-backup" in actions and "after-backup" not in actions


def test_not_kept_when_configured(app):
    app.config["DB_KEEP_CONNECTIONS"] = False
    with app.app_context():
        first = appdb.get_db()
    with app.app_context():
        assert appdb.get_db() is not first


def test_writers_in_threads_all_commit(app):
    """Many threads writing through immediate() on their own connections: none fails, none is lost."""
    path = app.config["DATABASE"]
    errors = []

    def write(n):
        d = appdb.connect(path)
        try:
            for i in range(25):
                with appdb.immediate(d):
                    d.execute("INSERT INTO events (at, action) VALUES (?, 'w')", [f"{n}-{i}"])
        except Exception as e:  # reported below
            errors.append(e)
        finally:
            d.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    d = appdb.connect(path)
    assert d.execute("SELECT count(*) FROM events WHERE action = 'w'").fetchone()[0] == 200
    d.close()


def _in_database_file(path: str, action: str) -> bool:
    # immutable=1 reads the database file alone, never the WAL: what a checkpoint has copied there.
    import sqlite3

    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM events WHERE action = ?", [action]).fetchone()[0] > 0
    finally:
        conn.close()


def test_background_checkpoints_come_every_interval_not_at_each_commit(app):
    """The server's connections never checkpoint in a request; the background thread copies the WAL
    into the database every DB_CHECKPOINT_SECONDS, syncing only the WAL in between."""
    import time

    path = app.config["DATABASE"]
    app.config.update(DB_CHECKPOINT_SECONDS=2.0, DB_WAL_SYNC_SECONDS=0.1)
    try:
        started = time.monotonic()
        with app.app_context():
            db = appdb.get_db()
            assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
            with appdb.immediate(db):
                db.execute("INSERT INTO events (at, action) VALUES ('t', 'to-checkpoint')")
        assert appdb._checkpointers[path][0].is_alive()
        # Committed (every connection sees it) but still only in the WAL, through several WAL syncs.
        time.sleep(0.5)
        if time.monotonic() - started < 1.5:  # a machine too busy to tell is no evidence either way
            assert not _in_database_file(path, "to-checkpoint")
        deadline = time.monotonic() + 30
        while not _in_database_file(path, "to-checkpoint"):
            assert time.monotonic() < deadline, "no checkpoint within 30 s"
            time.sleep(0.1)
    finally:
        appdb.stop_checkpointer(path)
    assert path not in appdb._checkpointers
