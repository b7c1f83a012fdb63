import random

import pytest

from app.annotations.rows import (
    annotation_row,
    insert_annotations,
    rate,
    rate_many,
    rating_history,
    undo_last_rating,
)
from app.errors import InvalidInput
from app.sets.queries import create_set, get_set

IMG = "0123456789abcdef"


@pytest.fixture
def machine_set(db):
    db.execute("INSERT INTO images (id, split, created_at) VALUES (?, 'train', 'now')", [IMG])
    sid = create_set(db, "m", "face_box", "model")
    with db.atomic():
        insert_annotations(
            db, [annotation_row(sid, IMG, "face_box", (0.1, 0.1, 0.2, 0.2), score=i / 10) for i in range(10)]
        )
    return sid


def _counts(db, sid):
    s = get_set(db, sid)
    real = db.execute(
        "SELECT count(*), coalesce(sum(rating IS 'good'), 0), coalesce(sum(rating IS 'bad'), 0)"
        " FROM annotations WHERE set_id = ? AND deleted = 0",
        [sid],
    ).fetchone()
    return (s["n_total"], s["n_good"], s["n_bad"]), tuple(real)


def test_rate_keeps_history_and_counters(db, machine_set):
    ann = db.execute("SELECT min(id) FROM annotations").fetchone()[0]
    rate(db, ann, 1, "bad")
    rate(db, ann, 2, "good")
    assert [h["value"] for h in rating_history(db, ann)] == ["bad", "good"]
    kept, real = _counts(db, machine_set)
    assert kept == real == (10, 1, 0)
    assert db.execute("SELECT count(*) FROM events WHERE action = 'rate'").fetchone()[0] == 2


def test_undo_restores_previous_value(db, machine_set):
    a, b = [r[0] for r in db.execute("SELECT id FROM annotations ORDER BY id LIMIT 2")]
    rate(db, a, 1, "good")
    rate(db, b, 1, "bad")
    assert undo_last_rating(db, 1)["annotation_id"] == b
    assert db.execute("SELECT rating FROM annotations WHERE id = ?", [b]).fetchone()[0] is None
    assert undo_last_rating(db, 1)["annotation_id"] == a
    assert undo_last_rating(db, 1) is None
    assert _counts(db, machine_set)[0] == (10, 0, 0)


def test_one_action_is_one_undo(db, machine_set):
    a, b, c, d = [r[0] for r in db.execute("SELECT id FROM annotations ORDER BY id LIMIT 4")]
    rate(db, a, 1, "bad")
    rate_many(db, [b, c, d], 1, "good")
    # Another reviewer rated c since: that rating is theirs to undo, not part of this undo.
    rate(db, c, 2, "bad")
    done = undo_last_rating(db, 1)
    assert done["annotation_ids"] == [b, d] and done["annotation_id"] == b and done["undone"] == "good"
    ratings = dict(db.execute("SELECT id, rating FROM annotations WHERE id IN (?, ?, ?, ?)", [a, b, c, d]))
    assert ratings == {a: "bad", b: None, c: "bad", d: None}
    # The next undo is the single rating before the action.
    assert undo_last_rating(db, 1)["annotation_ids"] == [a]
    assert undo_last_rating(db, 1) is None
    kept, real = _counts(db, machine_set)
    assert kept == real == (10, 0, 1)


def test_random_ratings_and_undos_keep_counters_equal_to_table(db, machine_set):
    rng = random.Random(7)
    ids = [r[0] for r in db.execute("SELECT id FROM annotations")]
    for _ in range(200):
        if rng.random() < 0.3:
            undo_last_rating(db, rng.choice([1, 2]))
        else:
            rate(db, rng.choice(ids), rng.choice([1, 2]), rng.choice(["good", "bad"]))
    kept, real = _counts(db, machine_set)
    assert kept == real


def test_nobody_rates_their_own_human_annotation(db):
    db.execute("INSERT INTO images (id, split, created_at) VALUES (?, 'train', 'now')", [IMG])
    sid = create_set(db, "h", "face_box", "human")
    with db.atomic():
        insert_annotations(db, [annotation_row(sid, IMG, "face_box", (0, 0, 1, 1), created_by=1)])
    ann = db.execute("SELECT id FROM annotations").fetchone()[0]
    with pytest.raises(InvalidInput):
        rate(db, ann, 1, "good")
    rate(db, ann, 2, "good")


def test_bad_rating_value_is_refused(db, machine_set):
    ann = db.execute("SELECT min(id) FROM annotations").fetchone()[0]
    with pytest.raises(InvalidInput):
        rate(db, ann, 1, "great")
