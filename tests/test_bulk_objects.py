"""bulk-annotate --kind object_box on a tiny real store: one labelled set per run, --classes, bad files
as errors, resume after kill -9, supersession only within a class, the Ray engine."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from PIL import Image

from app.annotations.geometry import iou
from app.annotations.rows import annotation_row, insert_annotations
from app.bulk.local import bulk_annotate, list_runs
from app.db import connect
from app.models.registry import get_model
from app.paths import REPO_ROOT
from app.sets.queries import create_set
from tests.conftest import DEMO_DATA
from tests.test_bulk import add_image, set_rows
from tests.test_cluster import local_ray  # noqa: F401 (fixture)

PERSON, TIE = "/m/01g317", "/m/01rkbr"
PHOTOS = ["2008_002506.jpg", "2008_001322.jpg", "2008_002470.jpg", "astronaut.png"]


def photo_store(db, tmp_path, names=PHOTOS):
    """The dev photos copied into tmp_path and registered; returns {file name: image id}."""
    ids = {}
    for k, name in enumerate(names):
        p = tmp_path / name
        p.write_bytes((DEMO_DATA / name).read_bytes())
        ids[name] = add_image(db, p, image_id=f"{k + 1:016x}")
    return ids


def test_object_boxes_with_classes_one_set_and_bad_files_as_errors(app, db, tmp_path, runner):
    ids = photo_store(db, tmp_path)
    (bad := tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg at all" * 20)
    bad_id = add_image(db, bad, image_id="00000000000000ff")
    r = runner.invoke(
        args=["oiap", "bulk-annotate", "--kind", "object_box", "--classes", f"{PERSON},{TIE}", "--json"]
    )
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["status"] == "done" and s["images"] == s["total"] == 5
    assert list(s["sets"]) == ["box"] and s["sets"]["box"]["kind"] == "object_box"
    assert s["sets"]["box"]["name"].startswith("nanodet-object_box-")
    assert s["errors"] == 1 and s["error_samples"][0].startswith(f"{bad_id}: corrupt:")
    rows = set_rows(db, s["sets"]["box"]["id"])
    assert {r["label"] for r in rows} == {PERSON, TIE} and all(r["kind"] == "object_box" for r in rows)
    assert all(0.35 <= r["score"] <= 1 and 0 <= r["x0"] < r["x1"] <= 1 for r in rows)
    # The set holds no class but its own label per row; the run remembers its classes for --resume.
    st = db.execute(
        "SELECT label, params FROM annotation_sets WHERE id = ?", [s["sets"]["box"]["id"]]
    ).fetchone()
    assert st[0] is None and json.loads(st[1])["classes"] == [PERSON, TIE]
    # The tie of 2008_001322 (hand-drawn at 366,268-402,375 of 500x375) is there, normalised.
    ties = [r for r in rows if r["image_id"] == ids["2008_001322.jpg"] and r["label"] == TIE]
    hand = (366 / 500, 268 / 375, 402 / 500, 375 / 375)
    assert max(iou(hand, (t["x0"], t["y0"], t["x1"], t["y1"])) for t in ties) >= 0.5
    people = {i: sum(r["label"] == PERSON and r["image_id"] == i for r in rows) for i in ids.values()}
    assert people[ids["2008_002506.jpg"]] >= 3 and people[ids["astronaut.png"]] >= 1


@pytest.mark.parametrize(
    "args,message",
    [
        (["--kind", "face_box", "--classes", PERSON], "--classes is for --kind object_box"),
        (["--kind", "object_box", "--classes", "person"], "give Open Images MIDs"),
        (["--kind", "object_box", "--classes", "/m/0dzct"], "gives no /m/0dzct"),
        (["--kind", "object_box", "--model", "nosuch"], "no object_box model"),
        (["--kind", "face_box", "--model", "mtcnn"], "--model is for --kind object_box"),
    ],
)
def test_bad_options_name_the_problem(runner, args, message):
    r = runner.invoke(args=["oiap", "bulk-annotate", *args])
    assert r.exit_code != 0 and message in r.output, r.output


def test_model_by_name_and_supersession_within_a_class(app, db, tmp_path):
    ids = photo_store(db, tmp_path, ["2008_002506.jpg"])
    image = ids["2008_002506.jpg"]
    first = bulk_annotate(db, app.config, "object_box", classes=[PERSON], model="nanodet", progress=False)
    people = set_rows(db, first["sets"]["box"]["id"])
    assert len(people) >= 3 and {r["label"] for r in people} == {PERSON}
    # An older model run's unrated tie exactly over the first person: another class, another object.
    model_id = db.execute(
        "SELECT model_id FROM annotation_sets WHERE id = ?", [first["sets"]["box"]["id"]]
    ).fetchone()[0]
    assert get_model(db, model_id)["name"] == "nanodet"
    old = create_set(db, "older-run", "object_box", "model", model_id=model_id)
    p = people[0]
    insert_annotations(
        db,
        [
            annotation_row(
                old, image, "object_box", (p["x0"], p["y0"], p["x1"], p["y1"]), label=TIE, score=0.5
            )
        ],
    )
    db.conn.commit()
    second = bulk_annotate(db, app.config, "object_box", classes=[PERSON], progress=False)
    states = {
        r["id"]: (r["deleted"], r["superseded_by"])
        for r in db.query("SELECT id, deleted, superseded_by FROM annotations WHERE set_id IN (?, ?)",
                          [first["sets"]["box"]["id"], old])
    }  # fmt: skip
    new_set = second["sets"]["box"]["id"]
    assert all(states[r["id"]] == (2, new_set) for r in people)  # same class, same place: superseded
    tie = db.execute("SELECT deleted FROM annotations WHERE set_id = ?", [old]).fetchone()[0]
    assert tie == 0


def _by_image(db, set_id):
    out = {}
    for r in set_rows(db, set_id):
        out.setdefault(r["image_id"], []).append(
            (r["label"], round(r["x0"], 4), round(r["y0"], 4), round(r["x1"], 4))
        )
    return {k: sorted(v) for k, v in out.items()}


def _small_photos(db, tmp_path, n):
    """n small real photos (the dev photos, mirrored past the first ten), registered in id order."""
    files = sorted(DEMO_DATA.glob("*.jpg"))
    for k in range(n):
        im = Image.open(files[k % len(files)]).convert("RGB")
        if k >= len(files):
            im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        im.thumbnail((320, 320))
        im.save(p := tmp_path / f"o{k:02d}.jpg", quality=90)
        add_image(db, p, image_id=f"{k + 1:016x}")


@pytest.mark.slow
def test_resume_after_kill_9_gives_the_same_set(app, db, tmp_path):
    _small_photos(db, tmp_path, 14)
    env = dict(
        os.environ,
        OIAP_INSTANCE=app.instance_path,
        OIAP_DATABASE=app.config["DATABASE"],
        OIAP_SECRET_KEY="test",
        FLASK_APP="app",
    )
    cmd = [
        sys.executable,
        "-m",
        "flask",
        "oiap",
        "bulk-annotate",
        "--kind",
        "object_box",
        "--classes",
        PERSON,
    ]
    proc = subprocess.Popen(
        [*cmd, "--batch", "1", "--workers", "1", "--json"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    watch = connect(app.config["DATABASE"])
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            row = watch.execute("SELECT progress FROM runs WHERE command = 'bulk-annotate'").fetchone()
            if (row and row[0] >= 3) or proc.poll() is not None:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        watch.close()
    run_id, progress, status = db.execute("SELECT id, progress, status FROM runs").fetchone()
    assert status == "running" and 3 <= progress < 14, "the kill must land mid-run"
    assert [(r["id"], r["status"]) for r in list_runs(db)] == [(run_id, "stopped")]
    resumed = bulk_annotate(db, app.config, resume=run_id, progress=False)
    assert resumed["status"] == "done" and resumed["images"] == 14
    assert resumed["images_this_session"] == 14 - progress
    whole = bulk_annotate(db, app.config, "object_box", classes=[PERSON], progress=False)
    a = _by_image(db, resumed["sets"]["box"]["id"])
    b = _by_image(db, whole["sets"]["box"]["id"])
    assert a == b and len(a) >= 12
    assert {lab for rows in a.values() for lab, *_ in rows} == {PERSON}  # the resumed run kept --classes
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.slow
def test_ray_engine_gives_the_local_engines_boxes(app, db, tmp_path, local_ray):  # noqa: F811
    _small_photos(db, tmp_path, 4)
    local = bulk_annotate(db, app.config, "object_box", classes=[PERSON, TIE], progress=False)
    remote = bulk_annotate(
        db, app.config, "object_box", classes=[PERSON, TIE], progress=False, engine="ray", workers=1
    )
    assert remote["engine"] == "ray" and remote["images"] == 4 and remote["errors"] == 0
    a = _by_image(db, local["sets"]["box"]["id"])
    b = _by_image(db, remote["sets"]["box"]["id"])
    assert a == b and len(a) == 4


def test_a_photo_stored_sideways_gets_its_people_on_the_files_grid(app, db, tmp_path):
    import numpy as np

    from app.images.orientation import Orientation
    from tests.test_nanodet import hand_boxes
    from tests.test_orientation import _turned_file

    name = "2008_002506.jpg"
    path, (w, h) = _turned_file(tmp_path, name, 90, with_exif=True)  # file turned 90 CCW, EXIF undoes it
    image_id = add_image(db, path, size=(h, w))
    s = bulk_annotate(db, app.config, "object_box", classes=[PERSON], progress=False)
    assert s["errors"] == 0
    rows = set_rows(db, s["sets"]["box"]["id"])
    found = [(r["x0"] * h, r["y0"] * w, r["x1"] * h, r["y1"] * w) for r in rows if r["image_id"] == image_id]
    o = Orientation(False, 1)  # upright -> file, as the file was made
    for box in hand_boxes(name, PERSON):
        p = o.to_upright(np.asarray(box, dtype=np.float64).reshape(2, 2), w, h)
        on_file = (*p.min(axis=0), *p.max(axis=0))
        assert max(iou(on_file, f) for f in found) >= 0.5, (box, on_file, found)


def test_the_chain_keeps_only_the_classes_asked_whatever_the_detector_gives(app, db, tmp_path):
    from app.annotators.nanodet import NanoDet
    from app.bulk.chain import Chain

    photo_store(db, tmp_path, ["2008_001322.jpg"])
    (row,) = db.query("SELECT id, split, path, width, height, rotation FROM images")
    every = Chain("object_box", NanoDet(), None, app.config, 1024, None).run([row])[0]["faces"]
    ties = Chain("object_box", NanoDet(), None, app.config, 1024, None, [TIE]).run([row])[0]["faces"]
    assert {f["label"] for f in every} == {PERSON, TIE}  # the detector was asked for everything
    assert ties and {f["label"] for f in ties} == {TIE}


def test_with_classes_only_human_boxes_of_those_classes_keep_an_image_out(app, db, tmp_path):
    ids = photo_store(db, tmp_path, ["2008_002506.jpg", "2008_001322.jpg"])
    a, b = ids["2008_002506.jpg"], ids["2008_001322.jpg"]
    human = create_set(db, "mine", "object_box", "human")
    insert_annotations(
        db,
        [
            annotation_row(human, a, "object_box", (0.1, 0.1, 0.3, 0.3), label="/m/0k4j"),  # a car
            annotation_row(human, b, "object_box", (0.0, 0.4, 0.4, 1.0), label=PERSON),
        ],
    )
    db.conn.commit()
    people = bulk_annotate(db, app.config, "object_box", classes=[PERSON], progress=False)
    assert people["total"] == 1
    assert {r["image_id"] for r in set_rows(db, people["sets"]["box"]["id"])} == {a}
    # Without --classes any human object box keeps its image out, as for faces.
    assert bulk_annotate(db, app.config, "object_box", progress=False)["total"] == 0
