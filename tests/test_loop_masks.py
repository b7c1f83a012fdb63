"""Mask runs' `--classes` select only the images with a box of those classes, on the demo photos: the
hand-drawn person masks as human masks, the hand-drawn boxes of tests/data/objects_dev.csv as the box set
(`--boxes-from people`)."""

import csv
import json
import re

import pytest

from app.annotations.rows import annotation_row, insert_annotations
from app.db import immediate
from app.imports.folder import register_image_file
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
