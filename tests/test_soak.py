"""The soak, short: gunicorn serving a real instance, 5 reviewers for 12 s, kill -9 of the server in
the middle and a restart; nothing acknowledged may be lost (tests/soak_harness.py does the checks)."""

import sqlite3

import pytest

from tests.soak_harness import Record, _overlaps, soak, verify


@pytest.mark.slow
def test_soak_with_a_server_crash(tmp_path):
    result = soak(tmp_path / "instance", reviewers=5, seconds=12, kill_at=6, copies=2)
    assert result["problems"] == [], result
    assert result["items_lost"] == 0 and result["integrity"] == "ok"
    assert result["server_kills"] == 1 and result["server_starts"] == 2
    # The run did real work on both sides of the crash, and the crash was felt by the clients.
    assert result["ratings"] > 50 and result["undos"] > 0 and result["edits"] > 0
    assert result["connection_errors"] > 0
    assert not any(code >= 500 for code in result["statuses"])


def test_overlap_check_finds_an_item_on_two_screens():
    held = [(7, "a", 0.0, 2.0), (7, "b", 1.0, 3.0), (8, "a", 3.0, 4.0), (8, "b", 4.0, 5.0)]
    assert _overlaps(held) == [(7, "a", "b", 1.0)]
    # A long hold overlapping a later one of another reviewer, with a short one between.
    held = [(9, "a", 0.0, 10.0), (9, "a", 1.0, 2.0), (9, "b", 3.0, 4.0)]
    assert _overlaps(held) == [(9, "a", "b", 1.0)]


def test_verify_reports_a_lost_rating_and_wrong_counters(tmp_path):
    # A store where one acknowledged rating is missing and a counter was tampered with.
    from app.auth.users import create_user
    from app.db import connect, migrate
    from app.imports.demo import build_demo

    path = tmp_path / "s.db"
    db = connect(str(path))
    migrate(db)
    build_demo(db)
    uid = create_user(db, "soak00", "soak password 123").id
    db.execute("UPDATE annotation_sets SET n_good = 5 WHERE id = 1")
    db.conn.commit()
    db.close()
    rec = Record()
    rec.ratings.append(("soak00", 1, "good"))
    result = verify(path, rec, {"soak00": uid})
    assert result["items_lost"] == 2  # not in ratings, not in events
    assert any("counters differ" in p for p in result["problems"])
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
