"""One row per face across sets, on the dev photos' real faces: repeated bulk runs, superseding,
a bad rating, a correction, landmarks over two sets, every export format, and the dashboard."""

import csv
import io
import json
import re
import zipfile

import pytest

from app.annotations.geometry import iou
from app.annotations.rows import annotation_row, insert_annotation, rate
from app.annotators.landmarks68 import DEFAULT_LANDMARKS68
from app.bulk.local import annotate_demo, bulk_annotate
from app.errors import Conflict
from app.export import ground_truth, iter_training_rows
from app.imports.demo import build_demo
from app.sets.queries import create_set, get_set_by_name

# The openimages writer leaves out images that are not Open Images ids (the demo photos are files
# with a path), so on the demo it writes none of these rows: checked apart in `exported_all`.
FORMATS = ("csv", "coco", "dlib-xml", "yolo-pose")


def faces_of_store(db, kind: str, split: str = "train") -> dict[int, tuple]:
    """annotation id -> face, found without the merge: union-find on IoU >= 0.5 over every row of the
    kind on the split's images (live, superseded and deleted alike: a face is a face)."""
    by_image: dict[str, list] = {}
    for image_id, ann_id, *box in db.execute(
        "SELECT a.image_id, a.id, coalesce(a.x0, p.x0), coalesce(a.y0, p.y0), coalesce(a.x1, p.x1),"
        " coalesce(a.y1, p.y1) FROM annotations a JOIN images i ON i.id = a.image_id"
        " LEFT JOIN annotations p ON p.id = a.parent_id WHERE a.kind = ? AND i.split = ?",
        [kind, split],
    ):
        by_image.setdefault(image_id, []).append((ann_id, box))
    out = {}
    for image_id, rows in by_image.items():
        parent = list(range(len(rows)))

        def find(i, parent=parent):
            while parent[i] != i:
                i = parent[i]
            return i

        for i in range(len(rows)):
            for j in range(i):
                if iou(rows[i][1], rows[j][1]) >= 0.5:
                    parent[find(i)] = find(j)
        out.update({ann_id: (image_id, find(i)) for i, (ann_id, _) in enumerate(rows)})
    return out


def run_sets(db, kind="face_box") -> list[int]:
    """The bulk runs' sets of a kind, oldest first."""
    return [
        r[0]
        for r in db.execute(
            "SELECT id FROM annotation_sets WHERE kind = ? AND model_id IS NOT NULL ORDER BY id", [kind]
        )
    ]


def train_rows(db, set_id: int, n: int = 1) -> list[int]:
    """The first n rows of a set on train images."""
    return [
        r[0]
        for r in db.execute(
            "SELECT a.id FROM annotations a JOIN images i ON i.id = a.image_id"
            " WHERE a.set_id = ? AND i.split = 'train' ORDER BY a.id LIMIT ?",
            [set_id, n],
        )
    ]


def exported(runner, tmp_path, kind: str, fmt: str, *extra: str) -> int:
    """Rows in an export file of the CLI."""
    out = tmp_path / f"{kind}-{fmt}{'.zip' if fmt == 'yolo-pose' else ''}"
    r = runner.invoke(args=["oiap", "export", "--kind", kind, "--format", fmt, "-o", str(out), *extra])
    assert r.exit_code == 0, r.output
    if fmt in ("csv", "openimages"):
        return len(out.read_text().splitlines()) - 1
    if fmt == "coco":
        return len(json.loads(out.read_text())["annotations"])
    if fmt == "dlib-xml":
        return len(re.findall(r"<box ", out.read_text()))
    with zipfile.ZipFile(out) as zf:
        return sum(len(zf.read(n).decode().splitlines()) for n in zf.namelist() if n.startswith("labels/"))


def exported_all(runner, tmp_path, kind: str, n: int) -> None:
    """Every format writes the merge's n rows; openimages none of them (the demo photos are local files)."""
    for fmt in FORMATS:
        assert exported(runner, tmp_path, kind, fmt) == n, fmt
    assert exported(runner, tmp_path, kind, "openimages") == 0


@pytest.fixture
def two_runs(app, db):
    """The dev photos with dlib's boxes as machine rows (an import), then two MTCNN runs over them."""
    build_demo(db, boxes_source="model")
    for _ in range(2):
        s = bulk_annotate(db, app.config, "face_box", progress=False)
        assert s["status"] == "done" and s["images"] == 10
    return run_sets(db)


def test_two_runs_and_an_import_give_one_row_per_face_in_every_format(runner, db, tmp_path, two_runs):
    r1, r2 = two_runs
    face_of = faces_of_store(db, "face_box")
    rows = list(iter_training_rows(db, "face_box"))
    per_face = {}
    for r in rows:
        per_face.setdefault(face_of[r.annotation_id], []).append(r)
    # Every face of the train photos gives exactly one row...
    assert len(per_face) == len(set(face_of.values())) and all(len(v) == 1 for v in per_face.values())
    # ...from the newest run where MTCNN found the face, from dlib's import where it did not, never
    # from the first run.
    sets = {r.set_id for r in rows}
    assert r1 not in sets and r2 in sets
    demo = get_set_by_name(db, "demo-faces")["id"]
    for r in rows:
        if r.set_id == demo:
            others = [a for a, f in face_of.items() if f == face_of[r.annotation_id] and a != r.annotation_id]
            assert not any(db["annotations"].get(a)["set_id"] == r2 for a in others)
    exported_all(runner, tmp_path, "face_box", len(rows))


def test_a_newer_run_supersedes_the_older_runs_unrated_rows(runner, admin_client, db, two_runs):
    r1, r2 = two_runs
    s1, s2 = (db["annotation_sets"].get(s) for s in (r1, r2))
    superseded = db.execute(
        "SELECT count(*) FROM annotations WHERE set_id = ? AND deleted = 2", [r1]
    ).fetchone()[0]
    # MTCNN gives the same faces twice: every row of the first run is superseded by the second...
    assert superseded == s2["n_total"] > 40 and s1["n_superseded"] == superseded and s1["n_total"] == 0
    assert {r[0] for r in db.execute("SELECT superseded_by FROM annotations WHERE set_id = ?", [r1])} == {r2}
    # ...and kept, but neither queued nor on the set page; the counters and pages say so.
    assert "superseded by a newer run" in admin_client.get(f"/sets/{r1}").get_data(as_text=True)
    review = admin_client.get(f"/review/{r1}").get_data(as_text=True)
    assert 'data-annotation-id="' not in review and f"{superseded} superseded" in review
    listed = {s["id"]: s for s in json.loads(runner.invoke(args=["oiap", "sets", "list", "--json"]).output)}
    assert listed[r1]["superseded"] == superseded and listed[r2]["superseded"] == 0
    # dlib's boxes are an import, not a run: never superseded.
    assert get_set_by_name(db, "demo-faces")["n_superseded"] == 0
    # A reviewer who still had one on screen is told why it cannot be rated.
    old = db.execute("SELECT id FROM annotations WHERE set_id = ? LIMIT 1", [r1]).fetchone()[0]
    with pytest.raises(Conflict, match="superseded by a newer run"):
        rate(db, old, 1, "good")


def test_rated_rows_are_never_superseded_and_good_beats_a_newer_unrated_row(app, db):
    build_demo(db, boxes_source="model")
    bulk_annotate(db, app.config, "face_box", progress=False)
    (r1,) = run_sets(db)
    good, bad = train_rows(db, r1, 2)
    rate(db, good, 1, "good")
    rate(db, bad, 1, "bad")
    bulk_annotate(db, app.config, "face_box", progress=False)
    r1_rows = dict(db.execute("SELECT id, deleted FROM annotations WHERE set_id = ?", [r1]).fetchall())
    assert (
        r1_rows[good] == 0 and r1_rows[bad] == 0 and sum(v == 2 for v in r1_rows.values()) == len(r1_rows) - 2
    )
    face_of = faces_of_store(db, "face_box")
    chosen = {face_of[r.annotation_id]: r for r in iter_training_rows(db, "face_box")}
    assert chosen[face_of[good]].annotation_id == good and chosen[face_of[good]].source == "machine_good"


def test_a_bad_rating_takes_the_identical_and_older_rows_of_its_face(app, db, two_runs):
    r1, r2 = two_runs
    face_of = faces_of_store(db, "face_box")
    (target,) = train_rows(db, r2)
    face = face_of[target]
    rate(db, target, 1, "bad")
    # dlib's (older) row of that face and the first run's (identical, superseded) row give nothing.
    assert not [r for r in iter_training_rows(db, "face_box") if face_of[r.annotation_id] == face]
    # A third run draws the same box again: identical to the bad one, so it stays out too; the rated
    # row is not superseded, and the other faces now come from the third run.
    bulk_annotate(db, app.config, "face_box", progress=False)
    r3 = run_sets(db)[-1]
    assert db["annotations"].get(target)["deleted"] == 0
    face_of = faces_of_store(db, "face_box")
    rows = list(iter_training_rows(db, "face_box"))
    assert not [r for r in rows if face_of[r.annotation_id] == face]
    again = [a for a, f in face_of.items() if f == face and db["annotations"].get(a)["set_id"] == r3]
    assert len(again) == 1 and db["annotations"].get(again[0])["rating"] is None
    assert {r.set_id for r in rows} - {get_set_by_name(db, "demo-faces")["id"]} == {r3}


def test_a_correction_is_the_one_row_of_its_face(db, two_runs):
    _, r2 = two_runs
    human = create_set(db, "human-face_box", "face_box", "human")
    m = db["annotations"].get(train_rows(db, r2)[0])
    # Dragged far enough that the boxes no longer overlap by half: origin_id still ties them.
    w = m["x1"] - m["x0"]
    moved = (m["x0"] + 0.6 * w, m["y0"], m["x1"] + 0.6 * w, m["y1"])
    assert iou(moved, (m["x0"], m["y0"], m["x1"], m["y1"])) < 0.5
    h = insert_annotation(
        db, annotation_row(human, m["image_id"], "face_box", moved, origin_id=m["id"], created_by=1)
    )
    db.conn.commit()
    face_of = faces_of_store(db, "face_box")
    on_image = [r for r in iter_training_rows(db, "face_box") if r.image_id == m["image_id"]]
    assert h in [r.annotation_id for r in on_image]
    assert not [r for r in on_image if face_of[r.annotation_id] == face_of[m["id"]]]
    # The other faces of the image are untouched: one row each.
    faces = {f for a, f in face_of.items() if f[0] == m["image_id"]} - {face_of[m["id"]], face_of[h]}
    assert len(on_image) == 1 + len(faces)


def test_unrated_rows_of_a_model_that_is_not_active_never_train(db):
    db.execute(
        "INSERT INTO images (id, split, width, height, created_at) VALUES (?, 'train', 640, 480, 'now')",
        ["a" * 16],
    )
    active = db.execute("SELECT id FROM models WHERE kind = 'face_box' AND status = 'active'").fetchone()
    other = db.execute(
        "INSERT INTO models (kind, name, sha256, path, status, source, created_at)"
        " VALUES ('face_box', 'old', 'x', 'x', 'retired', 'trained', 'now')"
    ).lastrowid
    if active is None:  # the builtin rows come with init-db; a store without one still tests the rule
        active = (
            db.execute(
                "INSERT INTO models (kind, name, sha256, path, status, source, created_at)"
                " VALUES ('face_box', 'new', 'y', 'y', 'active', 'trained', 'now')"
            ).lastrowid,
        )
    run_old = create_set(db, "old-run", "face_box", "model", model_id=other)
    run_new = create_set(db, "new-run", "face_box", "model", model_id=active[0])
    a = insert_annotation(db, annotation_row(run_old, "a" * 16, "face_box", (0.1, 0.1, 0.3, 0.3)))
    b = insert_annotation(db, annotation_row(run_new, "a" * 16, "face_box", (0.6, 0.6, 0.8, 0.8)))
    db.conn.commit()
    assert [r.annotation_id for r in iter_training_rows(db, "face_box")] == [b]
    rate(db, a, 1, "good")
    assert [r.annotation_id for r in iter_training_rows(db, "face_box")] == [a, b]


def test_landmarks_of_two_sets_give_one_row_per_face_and_ground_truth_is_rated(app, db, runner, tmp_path):
    build_demo(db)
    annotate_demo(db, app.config)
    face_of = faces_of_store(db, "face_landmarks68")
    rows = list(iter_training_rows(db, "face_landmarks68"))
    per_face = {}
    for r in rows:
        per_face.setdefault(face_of[r.annotation_id], []).append(r)
    assert len(per_face) == len(set(face_of.values())) == len(rows) >= 18
    # The active model's run is chosen over dlib's model output (not a run of ours), which fills in
    # only the faces the run missed.
    facemesh = run_sets(db, "face_landmarks68")[-1]
    run_faces = {face_of[a] for a in train_rows(db, facemesh, 1000)}
    assert all((r.set_id == facemesh) == (face_of[r.annotation_id] in run_faces) for r in rows)
    assert sum(r.set_id == facemesh for r in rows) >= 17
    exported_all(runner, tmp_path, "face_landmarks68", len(rows))
    # Evaluation ground truth is what people vouched for: none until a test row is rated good.
    assert list(ground_truth(db, "face_landmarks68", "test")) == []
    t = db.execute(
        "SELECT a.id FROM annotations a JOIN images i ON i.id = a.image_id"
        " WHERE a.set_id = ? AND i.split = 'test' ORDER BY a.id LIMIT 1",
        [facemesh],
    ).fetchone()[0]
    rate(db, t, 1, "good")
    assert [r.annotation_id for r in ground_truth(db, "face_landmarks68", "test")] == [t]


def test_the_dashboard_shows_per_kind_the_set_to_review_now(app, db, admin_client):
    build_demo(db)
    annotate_demo(db, app.config)
    bulk_annotate(db, app.config, "face_landmarks68", progress=False)
    page = admin_client.get("/").get_data(as_text=True)
    sections = dict(re.findall(r'<section class="kind" data-kind="(\w+)">(.*?)</section>', page, re.S))
    assert set(sections) == {"face_box", "face_landmarks5", "face_landmarks68"}
    newest = run_sets(db, "face_landmarks68")[-1]
    now, folded = sections["face_landmarks68"].split("<details", 1)
    assert f'href="/review/{newest}"' in now and "Review now" in now
    run_id = json.loads(db["annotation_sets"].get(newest)["params"])["run_id"]
    assert f"68 face landmarks by {DEFAULT_LANDMARKS68}, run {run_id}" in now
    assert f"Model {DEFAULT_LANDMARKS68}" in now and "10 images" in now and "from the command line" in now
    # The older run (all superseded) and dlib's points are folded below.
    older = run_sets(db, "face_landmarks68")[0]
    assert f'data-set-id="{older}"' in folded and "demo-landmarks68" in folded
    assert "Good: jaw, brows, eyes, nose and lips" in sections["face_landmarks68"]
    assert "human labels (demo-faces)" in sections["face_box"]


def test_csv_export_names_each_face_once(runner, db, tmp_path, two_runs):
    face_of = faces_of_store(db, "face_box")
    out = tmp_path / "t.csv"
    assert (
        runner.invoke(
            args=["oiap", "export", "--kind", "face_box", "--format", "csv", "-o", str(out)]
        ).exit_code
        == 0
    )
    ids = [int(r["annotation_id"]) for r in csv.DictReader(io.StringIO(out.read_text()))]
    assert len({face_of[i] for i in ids}) == len(ids) == len(set(face_of.values()))


def test_two_human_rows_of_one_face_give_the_newest_and_a_peer_rejected_one_gives_way(db):
    db.execute(
        "INSERT INTO images (id, split, width, height, created_at) VALUES (?, 'train', 640, 480, 'now')",
        ["b" * 16],
    )
    human = create_set(db, "human-face_box", "face_box", "human")
    imported = create_set(db, "boxes", "face_box", "import")
    m = insert_annotation(db, annotation_row(imported, "b" * 16, "face_box", (0.1, 0.1, 0.3, 0.3)))
    h1 = insert_annotation(
        db, annotation_row(human, "b" * 16, "face_box", (0.1, 0.1, 0.31, 0.31), created_by=1)
    )
    h2 = insert_annotation(
        db, annotation_row(human, "b" * 16, "face_box", (0.11, 0.1, 0.3, 0.3), created_by=2)
    )
    db.conn.commit()
    assert [(r.annotation_id, r.source) for r in iter_training_rows(db, "face_box")] == [(h2, "human")]
    rate(db, h2, 1, "bad")
    assert [r.annotation_id for r in iter_training_rows(db, "face_box")] == [h1]
    rate(db, h1, 2, "bad")
    assert [(r.annotation_id, r.source) for r in iter_training_rows(db, "face_box")] == [
        (m, "machine_unrated")
    ]
