"""`flask oiap loop --kind object_mask` end to end on the demo photos: the hand-drawn person masks train
(training photos) and measure (testing photos), the hand-drawn boxes of tests/data/objects_dev.csv are the
box set the bulk step masks (`--boxes-from`); and mask runs' `--classes` select only the images with a
box of those classes."""

import csv
import json
import re

import pytest

from app.annotations import masks
from app.annotations.rows import annotation_row, insert_annotations
from app.db import immediate
from app.imports.folder import register_image_file
from app.models.mask_models import ensure_mask_models
from app.models.registry import active_model
from app.sets.queries import create_set
from tests.conftest import DEMO_DATA, TEST_DATA
from tests.person_masks import PERSON, photos
from tests.test_box_masks import _add_sam

TIE = "/m/01rkbr"


@pytest.fixture
def store(db):
    """Every photo of objects_dev.csv (the testing photos of the masks on the test split, the others on
    train), the person masks as a human object_mask set, the hand-drawn boxes as the human set "people"."""
    split_of = {p.name: "test" if p.file == "testing" else "train" for p in photos()}
    with open(TEST_DATA / "objects_dev.csv", newline="") as f:
        boxes = list(csv.DictReader(f))
    with immediate(db):
        ids = {}
        for name in sorted({b["file"] for b in boxes}):
            image_id, _ = register_image_file(db, DEMO_DATA / name, split_of.get(name, "train"))
            ids[name] = image_id
        size = {r[0]: r[1:] for r in db.execute("SELECT id, width, height FROM images")}
        gt = create_set(db, "human-masks", "object_mask", "human")
        rows = [
            annotation_row(gt, ids[p.name], "object_mask", label=PERSON, mask=m)
            for p in photos()
            for m in p.masks
        ]
        people = create_set(db, "people", "object_box", "human")
        for b in boxes:
            w, h = size[ids[b["file"]]]
            box = (float(b["x0"]) / w, float(b["y0"]) / h, float(b["x1"]) / w, float(b["y1"]) / h)
            rows.append(annotation_row(people, ids[b["file"]], "object_box", box, label=b["label"]))
        insert_annotations(db, rows)
    db.ids = ids
    return db


def _cli(runner, *args) -> dict:
    r = runner.invoke(args=["oiap", *args, "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


@pytest.mark.slow
def test_loop_trains_promotes_and_masks_the_boxes_of_a_set(app, store, runner, tmp_path):
    db = store
    # Without a box set the loop stops before it trains, naming the option and the store's box sets.
    r = runner.invoke(args=["oiap", "loop", "--kind", "object_mask", "--epochs", "1"])
    assert r.exit_code != 0 and "--boxes-from SET" in r.output and "people" in r.output, r.output
    for kind, bad, says in (
        ("object_mask", "human-masks", "holds object_mask"),
        ("object_mask", "nope", "no annotation set named 'nope'"),
        ("face_landmarks68", "people", "holds object_box, not face_box"),
        ("face_box", "people", "--boxes-from is for --kind face_landmarks68 and object_mask"),
    ):
        r = runner.invoke(args=["oiap", "loop", "--kind", kind, "--boxes-from", bad])
        assert r.exit_code != 0 and says in r.output, r.output
    assert db.execute("SELECT count(*) FROM runs").fetchone() == (0,)

    # The active model is a user's SAM pair whose masks are the prompt boxes (0.64 IoU on the testing
    # photos): a weak model that a mask net refining the builtin beats, so the loop goes on to annotate.
    builtin = ensure_mask_models(db)["builtin-masks"]
    _add_sam(runner, tmp_path)
    sam = db.execute("SELECT id FROM models WHERE name = 'tiny-sam'").fetchone()[0]
    assert runner.invoke(args=["oiap", "models", "activate", str(sam)]).exit_code == 0
    out = _cli(
        runner,
        "loop",
        "--kind",
        "object_mask",
        "--epochs",
        "1",
        "--from",
        str(builtin),
        "--boxes-from",
        "people",
    )
    assert out["promotion"]["promoted"] and out["promotion"]["gain"] > 0.1, out["promotion"]
    new = out["train"]["model_id"]
    assert active_model(db, "object_mask")["id"] == new
    run = out["annotate"]
    # The photos with boxes in "people" and no human mask: every box of theirs gets a mask by the new model.
    unmasked = {i for name, i in db.ids.items() if name not in {p.name for p in photos()}}
    got = db.execute(
        "SELECT a.image_id, a.label, a.mask, b.set_id, b.label, b.x0, b.y0, b.x1, b.y1 FROM annotations a"
        " JOIN annotations b ON b.id = a.parent_id WHERE a.set_id = ?",
        [run["sets"]["mask"]["id"]],
    ).fetchall()
    assert run["status"] == "done" and run["images"] == run["total"] == len(unmasked)
    assert {g[0] for g in got} == unmasked
    people = db.execute("SELECT id FROM annotation_sets WHERE name = 'people'").fetchone()[0]
    boxes = db.execute(
        "SELECT count(*) FROM annotations WHERE set_id = ? AND image_id IN (SELECT value FROM json_each(?))",
        [people, json.dumps(sorted(unmasked))],
    ).fetchone()[0]
    # A mask per box (an empty mask is not written: at most a few), each of its box's class and inside it.
    assert 0.9 * boxes <= len(got) <= boxes
    for _, label, mask, set_id, box_label, *box in got:
        x0, y0, x1, y1 = masks.bbox(mask)
        h, w = masks.size(mask)
        assert set_id == people and label == box_label
        assert x0 >= box[0] - 1 / w and y0 >= box[1] - 1 / h and x1 <= box[2] + 1 / w and y1 <= box[3] + 1 / h
    assert db.execute(
        "SELECT model_id FROM annotation_sets WHERE id = ?", [run["sets"]["mask"]["id"]]
    ).fetchone() == (new,)


def test_mask_runs_with_classes_take_only_the_images_with_a_box_of_them(app, store, runner, tmp_path):
    db = store
    _add_sam(runner, tmp_path)  # its masks are the boxes: quick, and these tests are about selection
    run = ["bulk-annotate", "--kind", "object_mask", "--boxes-from", "people", "--model", "tiny-sam"]
    ties = {db.ids[n] for n in ("2008_001322.jpg", "2008_002079.jpg", "2008_002470.jpg")}
    out = _cli(runner, *run, "--classes", TIE)
    # The three photos with a tie, and only they, are selected and counted; two of them have human masks,
    # of people, which say nothing about the ties.
    assert out["total"] == out["images"] == 3 and out["sets"]["mask"]["annotations"] == 5, out
    got = db.execute(
        "SELECT DISTINCT image_id, label FROM annotations WHERE set_id = ?", [out["sets"]["mask"]["id"]]
    ).fetchall()
    assert {i for i, _ in got} == ties and {lab for _, lab in got} == {TIE}
    # The run's line says so too (the progress bar's total is the same count).
    r = runner.invoke(args=["oiap", *run, "--classes", TIE])
    assert r.exit_code == 0 and re.search(r"run \d+ \w+: 3/3 images", r.output), r.output
    # A class no box has: nothing to do, not every photo of the set.
    car = _cli(runner, *run, "--classes", "/m/0k4j")
    assert car["total"] == car["images"] == 0 and car["sets"]["mask"]["annotations"] == 0
    # Without --classes, every photo with a box and no human mask.
    masked = {db.ids[p.name] for p in photos()}
    every = _cli(runner, *run)
    assert every["total"] == every["images"] == len(set(db.ids.values()) - masked)
