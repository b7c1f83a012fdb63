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
