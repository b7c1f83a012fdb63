"""The original project's files both ways (import-csv, export --format original-csv), and the
openimages export's Source and Confidence, on the demo photos and their dlib boxes and landmarks.

The original project (annotate/face.py) writes face_bbox_*.csv with a header `img_id,left,top,right,
bottom` and one face a row, normalised by the image's size (its CNN detector widens boxes by 10%,
so a value may pass 0 or 1); face_landmarks_*.csv with `img_id,source,bbox_left..bbox_bottom,
face_bbox_left..face_bbox_bottom,1x,1y..68x,68y`, "%.5f" normalised, zeros for a missing box.
"""

import csv
import io
import json

import pytest

from app.annotations.rows import annotation_row, insert_annotations, rate
from app.imports.demo import build_demo
from app.sets.queries import create_set


@pytest.fixture
def demo(db):
    build_demo(db)
    return db


def _cli(runner, *args):
    return runner.invoke(args=["oiap", *args])


def _boxes(db, set_name, split="train"):
    return sorted(
        tuple(r)
        for r in db.execute(
            "SELECT a.image_id, a.x0, a.y0, a.x1, a.y1 FROM annotations a"
            " JOIN annotation_sets s ON s.id = a.set_id JOIN images i ON i.id = a.image_id"
            " WHERE s.name = ? AND i.split = ? AND a.deleted = 0",
            [set_name, split],
        )
    )


def _set_names(db):
    return {r[0] for r in db.execute("SELECT name FROM annotation_sets")}


def test_face_bbox_file_as_the_original_writes_it(runner, demo, tmp_path):
    faces = _boxes(demo, "demo-faces")
    assert len(faces) == 18
    # The original's flush(): a header line, then csv.writer rows of Python floats.
    path = tmp_path / "face_bbox_2019-01-01T10:00:00.csv"
    with open(path, "w", newline="") as f:
        f.write("img_id,left,top,right,bottom\n")
        w = csv.writer(f)
        for image_id, *box in faces:
            w.writerow([image_id, *box])
        # Its CNN detector's box widened by 10% past the image's left and bottom edges.
        w.writerow([faces[0][0], -0.025, 0.5, 0.3, 1.0375])
    out = _cli(runner, "import-csv", str(path), "--kind", "face_box", "--set", "orig-bbox", "--json")
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert (report["format"], report["imported"], report["malformed"]) == ("original-bbox", 19, 0)
    got = _boxes(demo, "orig-bbox")
    widened = (faces[0][0], 0.0, 0.5, 0.3, 1.0)
    assert got == sorted([*faces, widened])

    # Without the header line (a file the original appended to after deleting its first line).
    bare = tmp_path / "face_bbox_bare.csv"
    bare.write_text(path.read_text().split("\n", 1)[1])
    out = _cli(runner, "import-csv", str(bare), "--kind", "face_box", "--set", "orig-bare", "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["imported"] == 19 and _boxes(demo, "orig-bare") == got
    # Importing it again adds nothing.
    out = _cli(runner, "import-csv", str(path), "--kind", "face_box", "--set", "orig-bbox", "--json")
    assert json.loads(out.output)["duplicates"] == 19


def test_a_failed_import_leaves_no_set_behind(runner, demo, tmp_path):
    path = tmp_path / "face_bbox_other_store.csv"
    path.write_text(
        "img_id,left,top,right,bottom\n0123456789abcdef,0.1,0.1,0.2,0.2\nfedcba9876543210,0.1,0.1\n"
    )
    out = _cli(runner, "import-csv", str(path), "--kind", "face_box", "--set", "nothing")
    assert out.exit_code == 1 and "Traceback" not in out.output
    assert "nothing imported" in out.output and "all 2 row(s) failed" in out.output
    assert "unknown image id '0123456789abcdef'" in out.output and "expected 5 columns" in out.output
    assert "'nothing' was not created" in out.output
    assert "nothing" not in _set_names(demo)
    # A header and no rows: no set either.
    empty = tmp_path / "face_bbox_empty.csv"
    empty.write_text("img_id,left,top,right,bottom\n")
    out = _cli(runner, "import-csv", str(empty), "--kind", "face_box", "--set", "empty")
    assert out.exit_code == 1 and "no rows to import" in out.output and "empty" not in _set_names(demo)
    # A bbox file named with a landmark kind: said, nothing made.
    faces = _boxes(demo, "demo-faces")
    good = tmp_path / "face_bbox_good.csv"
    good.write_text("img_id,left,top,right,bottom\n" + ",".join(map(str, faces[0])) + "\n")
    out = _cli(runner, "import-csv", str(good), "--kind", "face_landmarks68", "--set", "lm")
    assert out.exit_code == 1 and "--kind face_box" in out.output and "lm" not in _set_names(demo)
    # Into an existing set, nothing new is not an error: the set was there before.
    out = _cli(runner, "import-csv", str(good), "--kind", "face_box", "--set", "demo-faces", "--json")
    assert out.exit_code == 0 and json.loads(out.output)["duplicates"] == 1


def test_export_original_face_bbox_and_back(runner, demo, tmp_path):
    path = tmp_path / "face_bbox_export.csv"
    out = _cli(runner, "export", "--kind", "face_box", "--format", "original-csv", "-o", str(path))
    assert out.exit_code == 0, out.output
    lines = path.read_text().splitlines()
    assert lines[0] == "img_id,left,top,right,bottom"
    rows = [line.split(",") for line in lines[1:]]
    assert len(rows) == 18 and all(len(r) == 5 for r in rows)
    assert sorted((r[0], *map(float, r[1:])) for r in rows) == _boxes(demo, "demo-faces")
    out = _cli(runner, "import-csv", str(path), "--kind", "face_box", "--set", "back", "--json")
    assert out.exit_code == 0 and json.loads(out.output)["imported"] == 18
    assert _boxes(demo, "back") == _boxes(demo, "demo-faces")


def test_export_original_face_landmarks_and_back(runner, demo, tmp_path):
    path = tmp_path / "face_landmarks_export.csv"
    out = _cli(runner, "export", "--kind", "face_landmarks68", "--format", "original-csv", "-o", str(path))
    assert out.exit_code == 0, out.output
    rows = list(csv.reader(io.StringIO(path.read_text())))
    head = rows[0]
    assert head[:10] == [
        "img_id",
        "source",
        "bbox_left",
        "bbox_top",
        "bbox_right",
        "bbox_bottom",
        "face_bbox_left",
        "face_bbox_top",
        "face_bbox_right",
        "face_bbox_bottom",
    ]
    assert head[10:12] == ["1x", "1y"] and head[-2:] == ["68x", "68y"] and len(head) == 146
    assert len(rows) == 19 and all(len(r) == 146 and r[1] == "face_bbox" for r in rows[1:])
    assert all(float(v) == 0 for r in rows[1:] for v in r[2:6])

    def points(set_name):
        return sorted(
            (r[0], json.loads(r[1]))
            for r in demo.execute(
                "SELECT a.image_id, a.points FROM annotations a JOIN annotation_sets s ON s.id = a.set_id"
                " JOIN images i ON i.id = a.image_id WHERE s.name = ? AND i.split = 'train'",
                [set_name],
            )
        )

    out = _cli(runner, "import-csv", str(path), "--kind", "face_landmarks68", "--set", "lm-back", "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) | {"errors": []} == json.loads(out.output)
    assert json.loads(out.output)["format"] == "original"
    assert points("lm-back") == points("demo-landmarks68")
    # Landmarks of the demo carry their box: the face_bbox columns are the stored box.
    first = rows[1]
    box = demo.execute(
        "SELECT x0, y0, x1, y1 FROM annotations a JOIN annotation_sets s ON s.id = a.set_id"
        " WHERE s.name = 'demo-landmarks68' AND a.image_id = ? ORDER BY a.id LIMIT 1",
        [first[0]],
    ).fetchone()
    assert tuple(float(v) for v in first[6:10]) == tuple(box)


def test_original_csv_of_another_kind_is_refused_before_writing(runner, demo, tmp_path):
    path = tmp_path / "x.csv"
    out = _cli(runner, "export", "--kind", "face_landmarks5", "--format", "original-csv", "-o", str(path))
    assert out.exit_code == 1 and "original-csv writes face_box and face_landmarks68" in out.output
    assert not path.exists()


def test_openimages_export_keeps_googles_source_and_confidence(runner, demo):
    oi = "000002b66c9c498e"  # an Open Images image: no stored path, the layout finds its file
    demo.execute(
        "INSERT INTO images (id, split, width, height, created_at) VALUES (?, 'train', 1024, 768, 'now')",
        [oi],
    )
    human = create_set(demo, "human-face_box", "face_box", "human")
    imported = create_set(demo, "openimages-human-face", "face_box", "import")
    machine = create_set(demo, "machine", "face_box", "model")
    insert_annotations(
        demo,
        [
            annotation_row(human, oi, "face_box", (0.1, 0.1, 0.2, 0.2), created_by=1),
            annotation_row(imported, oi, "face_box", (0.3, 0.3, 0.4, 0.4), flags={"Source": "xclick"}),
            annotation_row(machine, oi, "face_box", (0.5, 0.5, 0.6, 0.6), score=0.875),
            annotation_row(machine, oi, "face_box", (0.7, 0.7, 0.8, 0.8), score=0.99),
        ],
    )
    demo.conn.commit()
    ids = [r[0] for r in demo.execute("SELECT id FROM annotations WHERE image_id = ? ORDER BY id", [oi])]
    rate(demo, ids[1], 2, "good")
    rate(demo, ids[3], 2, "good")
    out = _cli(runner, "export", "--kind", "face_box", "--format", "openimages", "-o", "-")
    assert out.exit_code == 0, out.output
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    # The demo's photos are not Open Images images: left out, and said so.
    assert {r["ImageID"] for r in rows} == {oi}
    assert f"{len({b[0] for b in _boxes(demo, 'demo-faces')})} image(s) left out" in out.stderr
    assert "not Open Images images" in out.stderr
    got = sorted((r["XMin"], r["Source"], r["Confidence"]) for r in rows)
    assert got == [
        ("0.1", "freeform", "1.0"),  # drawn by a person
        ("0.3", "xclick", "1.0"),  # Google's own box keeps its Source
        ("0.5", "machine", "0.875"),  # a machine label: Confidence is the model's score
        ("0.7", "activemil", "1.0"),  # a machine box a person verified
    ]


def test_original_csv_from_the_export_page(app, demo, admin_client):
    resp = admin_client.get("/export/download?kind=face_box&format=original-csv&split=train")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert (
        resp.headers["Content-Disposition"] == 'attachment; filename="oiap-face_box-train-original-csv.csv"'
    )
    lines = resp.get_data(as_text=True).splitlines()
    assert lines[0] == "img_id,left,top,right,bottom" and len(lines) == 1 + len(_boxes(demo, "demo-faces"))
    resp = admin_client.get("/export/download?kind=face_landmarks5&format=original-csv")
    assert resp.status_code == 400 and "original-csv writes face_box and face_landmarks68" in resp.get_data(
        as_text=True
    )
