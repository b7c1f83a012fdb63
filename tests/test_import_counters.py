"""import-openimages keeps the set counters by batch (one UPDATE per set and batch, not a trigger per
row): the counters equal the table after an import, after a kill -9 in the middle of one and its
resume, and with reviewers rating the same set while it runs."""

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app.annotations.rows import annotation_row, insert_annotation, rate
from app.db import connect
from app.imports import openimages
from tests.openimages_csv import (
    BBOX_HEADER_V6,
    CLASSES,
    FACE,
    IMAGE_HEADER,
    PERSON,
    bbox_row,
    image_row,
    write_csv,
)

REPO = Path(__file__).resolve().parent.parent


def _meta(folder: Path, n_images: int, boxes_per_image: int, seed: int = 3) -> Path:
    """Metadata for n_images train images with boxes_per_image boxes each, faces and persons mixed."""
    rng = random.Random(seed)
    folder.mkdir()
    ids = [f"{0xB000 + i:016x}" for i in range(n_images)]
    write_csv(
        folder / "train-images-boxable-with-rotation.csv", IMAGE_HEADER, [image_row(i, "train") for i in ids]
    )
    write_csv(folder / "class-descriptions-boxable.csv", None, CLASSES)
    rows = []
    for image_id in ids:
        for _ in range(boxes_per_image):
            x0, y0 = rng.random() * 0.7, rng.random() * 0.7
            rows.append(
                bbox_row(image_id, rng.choice((FACE, FACE, PERSON)), box=(x0, x0 + 0.2, y0, y0 + 0.2))
            )
    write_csv(folder / "oidv6-train-annotations-bbox.csv", BBOX_HEADER_V6, rows)
    return folder


def _assert_counters_match(db) -> list[tuple]:
    rows = db.execute(
        "SELECT s.id, s.n_total, s.n_good, s.n_bad,"
        " (SELECT count(*) FROM annotations a WHERE a.set_id = s.id AND a.deleted = 0),"
        " (SELECT count(*) FROM annotations a WHERE a.set_id = s.id AND a.deleted = 0 AND a.rating = 'good'),"
        " (SELECT count(*) FROM annotations a WHERE a.set_id = s.id AND a.deleted = 0 AND a.rating = 'bad')"
        " FROM annotation_sets s ORDER BY s.id"
    ).fetchall()
    for set_id, n_total, n_good, n_bad, total, good, bad in rows:
        assert (n_total, n_good, n_bad) == (total, good, bad), f"set {set_id}"
    assert db.execute("SELECT count(*) FROM bulk_counting").fetchone()[0] == 0
    return rows


def test_counters_equal_the_table_after_an_import_in_many_mixed_batches(db, tmp_path, monkeypatch):
    monkeypatch.setattr(openimages, "BATCH", 7)  # batches that hold faces and persons
    meta = _meta(tmp_path / "meta", 40, 5)
    summary = openimages.import_openimages(db, meta, splits=["train"], classes=f"{FACE},{PERSON}")
    rows = _assert_counters_match(db)
    assert sum(r[4] for r in rows) == summary["boxes_added"] == 200
    # The per-row trigger still counts every other insert into those sets.
    face_set = summary["sets"]["openimages-human-face"]
    before = db.execute("SELECT n_total FROM annotation_sets WHERE id = ?", [face_set]).fetchone()[0]
    insert_annotation(db, annotation_row(face_set, f"{0xB000:016x}", "face_box", (0.0, 0.0, 0.1, 0.1)))
    db.conn.commit()
    assert (
        db.execute("SELECT n_total FROM annotation_sets WHERE id = ?", [face_set]).fetchone()[0] == before + 1
    )
    rows = _assert_counters_match(db)
    # A second run adds nothing and leaves the counters as they are.
    assert (
        openimages.import_openimages(db, meta, splits=["train"], classes=f"{FACE},{PERSON}")["boxes_added"]
        == 0
    )
    assert _assert_counters_match(db) == rows


def test_a_failed_batch_rolls_back_its_rows_and_counts(db, tmp_path, monkeypatch):
    monkeypatch.setattr(openimages, "BATCH", 10)
    meta = _meta(tmp_path / "meta", 20, 3)
    calls = []

    def fail_on_third(db_, run_id, progress, cursor=None):
        # Inside the batch's transaction, after its rows and counter updates.
        calls.append(progress)
        if len(calls) == 3:
            raise RuntimeError("disk full")

    monkeypatch.setattr(openimages, "set_progress", fail_on_third)
    with pytest.raises(RuntimeError):
        openimages.import_openimages(db, meta, splits=["train"], classes=f"{FACE},{PERSON}")
    rows = _assert_counters_match(db)
    assert sum(r[4] for r in rows) == 20  # two batches of 10 committed, the third rolled back
    monkeypatch.undo()
    openimages.import_openimages(db, meta, splits=["train"], classes=f"{FACE},{PERSON}")
    assert sum(r[4] for r in _assert_counters_match(db)) == 60


CHILD = """
import sys, time
sys.path.insert(0, {repo!r})
from app.db import connect
from app.imports import openimages
openimages.BATCH = 50
real = openimages.set_progress
def slow(*a, **kw):
    real(*a, **kw)
    print("batch", flush=True)
    time.sleep(0.2)  # inside the open transaction: the kill lands mid-batch
openimages.set_progress = slow
openimages.import_openimages(connect({db!r}), {meta!r}, splits=["train"], classes="{face},{person}")
"""


def test_kill_9_in_the_middle_of_an_import_then_resume(app, db, tmp_path):
    meta = _meta(tmp_path / "meta", 100, 6)
    code = CHILD.format(repo=str(REPO), db=app.config["DATABASE"], meta=str(meta), face=FACE, person=PERSON)
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as child:
        try:
            for _ in range(3):  # two batches committed, the third inside its transaction
                assert child.stdout.readline() == "batch\n"
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.wait(10)
    assert child.returncode == -signal.SIGKILL
    after_kill = connect(app.config["DATABASE"])
    try:
        rows = _assert_counters_match(after_kill)
    finally:
        after_kill.close()
    assert 100 <= sum(r[4] for r in rows) < 600
    summary = openimages.import_openimages(db, meta, splits=["train"], classes=f"{FACE},{PERSON}")
    rows = _assert_counters_match(db)
    assert sum(r[4] for r in rows) == 600 and summary["boxes_added"] < 600


def test_counters_stay_right_with_ratings_during_the_import(app, db, tmp_path, monkeypatch):
    monkeypatch.setattr(openimages, "BATCH", 25)
    meta = _meta(tmp_path / "meta", 150, 4)
    path = app.config["DATABASE"]
    done = threading.Event()
    errors: list[BaseException] = []
    ratings = [0]

    def reviewer():
        # Another connection, as a web request would be, rating what the import has added so far.
        rdb = connect(path)
        rng = random.Random(1)
        try:
            while not done.is_set() or ratings[0] < 50:
                ids = [r[0] for r in rdb.execute("SELECT id FROM annotations ORDER BY random() LIMIT 5")]
                for ann_id in ids:
                    rate(rdb, ann_id, 1, rng.choice(("good", "bad")))
                    ratings[0] += 1
                time.sleep(0.001)
        except BaseException as e:
            errors.append(e)
        finally:
            rdb.close()

    t = threading.Thread(target=reviewer)
    t.start()
    try:
        openimages.import_openimages(db, meta, splits=["train"], classes=f"{FACE},{PERSON}")
    finally:
        done.set()
        t.join(60)
    assert not errors
    rows = _assert_counters_match(db)
    assert sum(r[4] for r in rows) == 600
    assert sum(r[5] + r[6] for r in rows) > 0 and ratings[0] >= 50
