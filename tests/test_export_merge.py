"""The merge rules, each on a small store built here."""

import pytest

from app.annotations.geometry import iou
from app.annotations.rows import annotation_row, insert_annotation, rate
from app.errors import InvalidInput
from app.export import ground_truth, iter_training_rows
from app.kinds import FLIP_5, FLIP_68, LANDMARK68_NAMES
from app.sets.queries import create_set

A = "aaaaaaaaaaaaaaaa"
B = "bbbbbbbbbbbbbbbb"
T = "cccccccccccccccc"  # a test image
V = "dddddddddddddddd"  # a validation image


def add_image(db, image_id, split="train", w=640, h=480):
    db.execute(
        "INSERT INTO images (id, split, width, height, created_at) VALUES (?, ?, ?, ?, 'now')",
        [image_id, split, w, h],
    )


@pytest.fixture
def store(db):
    """Two train images, one validation, one test; a human set and two model sets of face boxes."""
    for image_id, split in ((A, "train"), (B, "train"), (V, "validation"), (T, "test")):
        add_image(db, image_id, split)
    s = {
        "human": create_set(db, "human-face_box", "face_box", "human"),
        "m1": create_set(db, "model-1", "face_box", "model"),
        "m2": create_set(db, "model-2", "face_box", "model"),
    }
    db.conn.commit()
    return s


def add(db, set_id, image_id, box, **kw):
    ann_id = insert_annotation(db, annotation_row(set_id, image_id, "face_box", box, **kw))
    db.conn.commit()
    return ann_id


def rows(db, **kw):
    return [(r.annotation_id, r.source, r.weight) for r in iter_training_rows(db, "face_box", **kw)]


def test_human_good_unrated_and_never_bad(db, store):
    h = add(db, store["human"], A, (0.1, 0.1, 0.3, 0.3), created_by=1)
    good = add(db, store["m1"], A, (0.5, 0.5, 0.7, 0.7))
    bad = add(db, store["m1"], A, (0.7, 0.1, 0.9, 0.3))
    unrated = add(db, store["m1"], B, (0.1, 0.5, 0.2, 0.6))
    rate(db, good, 2, "good")
    rate(db, bad, 2, "bad")
    assert rows(db) == [(h, "human", 1.0), (good, "machine_good", 1.0), (unrated, "machine_unrated", 0.5)]
    assert rows(db, include_unrated=False) == [(h, "human", 1.0), (good, "machine_good", 1.0)]
    assert rows(db, unrated_weight=0.25)[-1] == (unrated, "machine_unrated", 0.25)


def test_rating_bad_then_good_brings_it_back(db, store):
    m = add(db, store["m1"], A, (0.5, 0.5, 0.7, 0.7))
    rate(db, m, 2, "bad")
    assert rows(db) == []
    rate(db, m, 1, "good")
    assert rows(db) == [(m, "machine_good", 1.0)]


def test_human_replaces_the_machine_annotation_it_corrects(db, store):
    m = add(db, store["m1"], A, (0.1, 0.1, 0.3, 0.3))
    rate(db, m, 2, "good")
    # The correction moved far (IoU < 0.5), but origin_id names the machine row.
    h = add(db, store["human"], A, (0.25, 0.25, 0.45, 0.45), origin_id=m, created_by=1)
    assert iou((0.1, 0.1, 0.3, 0.3), (0.25, 0.25, 0.45, 0.45)) < 0.5
    assert rows(db) == [(h, "human", 1.0)]


def test_human_replaces_overlapping_machine_annotations_on_the_same_image_only(db, store):
    overlapped = add(db, store["m1"], A, (0.10, 0.10, 0.30, 0.30))
    also = add(db, store["m2"], A, (0.11, 0.11, 0.31, 0.31))
    rate(db, also, 2, "good")
    apart = add(db, store["m1"], A, (0.6, 0.6, 0.8, 0.8))
    other_image = add(db, store["m1"], B, (0.10, 0.10, 0.30, 0.30))
    h = add(db, store["human"], A, (0.10, 0.10, 0.32, 0.32), created_by=1)
    assert iou((0.10, 0.10, 0.30, 0.30), (0.10, 0.10, 0.32, 0.32)) >= 0.5
    got = [r[0] for r in rows(db)]
    assert overlapped not in got and also not in got
    assert got == [apart, h, other_image]


def test_iou_threshold_is_inclusive_at_half(db, store):
    # Same height, the machine box half as wide inside the human one: IoU exactly 0.5.
    m = add(db, store["m1"], A, (0.0, 0.0, 0.2, 0.4))
    h = add(db, store["human"], A, (0.0, 0.0, 0.4, 0.4), created_by=1)
    assert iou((0.0, 0.0, 0.2, 0.4), (0.0, 0.0, 0.4, 0.4)) == pytest.approx(0.5)
    assert [r[0] for r in rows(db)] == [h]
    assert m


def test_deleted_rows_never(db, store):
    h = add(db, store["human"], A, (0.1, 0.1, 0.3, 0.3), created_by=1)
    m = add(db, store["m1"], B, (0.1, 0.1, 0.3, 0.3))
    db.execute("UPDATE annotations SET deleted = 1 WHERE id IN (?, ?)", [h, m])
    db.conn.commit()
    assert rows(db) == []


def test_deleted_human_does_not_override(db, store):
    m = add(db, store["m1"], A, (0.1, 0.1, 0.3, 0.3))
    h = add(db, store["human"], A, (0.1, 0.1, 0.3, 0.3), origin_id=m, created_by=1)
    db.execute("UPDATE annotations SET deleted = 1 WHERE id = ?", [h])
    db.conn.commit()
    assert rows(db) == [(m, "machine_unrated", 0.5)]


def test_human_rated_bad_by_a_peer_is_left_out(db, store):
    h = add(db, store["human"], A, (0.1, 0.1, 0.3, 0.3), created_by=1)
    rate(db, h, 2, "bad")
    assert rows(db) == []


def test_test_split_never_trains(db, store):
    add(db, store["human"], T, (0.1, 0.1, 0.3, 0.3), created_by=1)
    v = add(db, store["human"], V, (0.1, 0.1, 0.3, 0.3), created_by=1)
    a = add(db, store["human"], A, (0.1, 0.1, 0.3, 0.3), created_by=1)
    assert rows(db) == [(a, "human", 1.0)]
    assert [r[0] for r in rows(db, splits=("train", "validation"))] == [a, v]
    with pytest.raises(InvalidInput, match="test split never trains"):
        rows(db, splits=("train", "test"))
    with pytest.raises(InvalidInput):
        rows(db, splits="test")


def test_ground_truth_is_human_and_good_with_overrides(db, store):
    h = add(db, store["human"], T, (0.1, 0.1, 0.3, 0.3), created_by=1)
    under = add(db, store["m1"], T, (0.1, 0.1, 0.3, 0.3))
    rate(db, under, 2, "good")
    good = add(db, store["m1"], T, (0.5, 0.5, 0.7, 0.7))
    rate(db, good, 2, "good")
    add(db, store["m1"], T, (0.7, 0.1, 0.9, 0.3))  # unrated: not ground truth
    got = [(r.annotation_id, r.source, r.weight) for r in ground_truth(db, "face_box", "test")]
    assert got == [(h, "human", 1.0), (good, "machine_good", 1.0)]


def test_sets_filter_still_applies_human_overrides(db, store):
    m1 = add(db, store["m1"], A, (0.1, 0.1, 0.3, 0.3))
    m2 = add(db, store["m2"], B, (0.1, 0.1, 0.3, 0.3))
    add(db, store["human"], A, (0.1, 0.1, 0.3, 0.3), created_by=1)
    assert [r[0] for r in rows(db, sets=["model-1", "model-2"])] == [m2]
    assert [r[0] for r in rows(db, sets=[str(store["m1"])])] == []
    assert m1
    with pytest.raises(InvalidInput, match="no annotation set"):
        rows(db, sets=["nope"])


def test_other_kinds_stay_apart(db, store):
    lm = create_set(db, "lm", "face_landmarks5", "model")
    add(db, store["human"], A, (0.1, 0.1, 0.3, 0.3), created_by=1)
    pts = [[0.15, 0.15], [0.25, 0.15], [0.2, 0.2], [0.16, 0.26], [0.24, 0.26]]
    m = insert_annotation(db, annotation_row(lm, A, "face_landmarks5", (0.1, 0.1, 0.3, 0.3), pts))
    db.conn.commit()
    got = list(iter_training_rows(db, "face_landmarks5"))
    assert [r.annotation_id for r in got] == [m]
    assert got[0].points[0] == [0.15, 0.15, 1]


def test_landmarks_without_a_box_take_the_parent_box(db, store):
    lm = create_set(db, "lm", "face_landmarks5", "model")
    parent = add(db, store["m1"], A, (0.1, 0.1, 0.3, 0.3))
    pts = [[0.15, 0.15], [0.25, 0.15], [0.2, 0.2], [0.16, 0.26], [0.24, 0.26]]
    insert_annotation(db, annotation_row(lm, A, "face_landmarks5", None, pts, parent_id=parent))
    db.conn.commit()
    (row,) = iter_training_rows(db, "face_landmarks5")
    assert row.box == (0.1, 0.1, 0.3, 0.3)


def test_order_is_stable_by_image_then_id(db, store):
    ids = [
        add(db, store["m1"], B, (0.1, 0.1, 0.2, 0.2)),
        add(db, store["m1"], A, (0.5, 0.5, 0.6, 0.6)),
        add(db, store["m2"], A, (0.1, 0.1, 0.2, 0.2)),
    ]
    assert [r[0] for r in rows(db)] == [ids[1], ids[2], ids[0]]


def test_flip_maps_are_involutions():
    for flip in (FLIP_68, FLIP_5):
        assert sorted(flip) == list(range(len(flip)))
        assert all(flip[flip[i]] == i for i in range(len(flip)))
    # Outer eye corners swap; the chin and nose tip stay.
    assert FLIP_68[36] == 45 and FLIP_68[8] == 8 and FLIP_68[33] == 33
    assert len(set(LANDMARK68_NAMES)) == 68
