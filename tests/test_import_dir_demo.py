import json
import re
import shutil

import pytest

from app.errors import InvalidInput
from app.imports.dlib_xml import import_dlib_faces, import_dlib_xml
from app.imports.folder import content_id
from app.wording import when
from tests.conftest import DEMO_DATA


def test_import_dir_registers_photos_and_skips_a_corrupt_file(runner, db, tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(DEMO_DATA / "2008_001009.jpg", folder / "a.jpg")
    shutil.copy(DEMO_DATA / "astronaut.png", folder / "sub" / "b.PNG")
    data = (DEMO_DATA / "2008_002470.jpg").read_bytes()
    (folder / "broken.jpg").write_bytes(data[: len(data) // 3])  # truncated JPEG
    (folder / "notes.png").write_text("not an image")
    (folder / "readme.txt").write_text("ignored: not .jpg/.png")
    r = runner.invoke(args=["oiap", "import-dir", str(folder), "--split", "validation", "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output[r.output.index('{\n  "run_id"') :])
    assert (summary["files"], summary["added"], summary["existing"]) == (4, 2, 0)
    assert len(summary["errors"]) == 2
    assert any("broken.jpg" in e for e in summary["errors"]) and any(
        "notes.png" in e for e in summary["errors"]
    )
    assert "skipped" in r.output and "broken.jpg" in r.output

    a = db["images"].get(content_id(folder / "a.jpg"))
    assert (a["width"], a["height"], a["split"]) == (360, 480, "validation")
    assert a["path"] == str((folder / "a.jpg").resolve())
    assert a["id"] == content_id(DEMO_DATA / "2008_001009.jpg")
    errors = list(db.query("SELECT source FROM run_errors WHERE run_id = ?", [summary["run_id"]]))
    assert sorted(e["source"].rsplit("/", 1)[1] for e in errors) == ["broken.jpg", "notes.png"]

    again = runner.invoke(args=["oiap", "import-dir", str(folder)])
    assert "0 added, 2 already registered, 2 unreadable" in again.output
    assert db.execute("SELECT count(*) FROM images").fetchone()[0] == 2


def test_import_dir_refuses_a_missing_folder(runner, tmp_path):
    r = runner.invoke(args=["oiap", "import-dir", str(tmp_path / "nope")])
    assert r.exit_code == 1 and "is not a folder" in r.output


def test_demo_builds_sets_with_every_split_and_normalised_landmarks(runner, db):
    r = runner.invoke(args=["oiap", "demo"])
    assert r.exit_code == 0, r.output
    splits = dict(db.execute("SELECT split, count(*) FROM images GROUP BY split").fetchall())
    assert splits == {"train": 5, "validation": 2, "test": 3}
    sets = {s["name"]: s for s in db.query("SELECT * FROM annotation_sets")}
    # dlib's boxes were drawn by hand: a human set; its 68 points are a model's: a model set.
    assert sets["demo-faces"]["kind"] == "face_box" and sets["demo-faces"]["source"] == "human"
    assert sets["demo-landmarks68"]["source"] == "model"
    assert sets["demo-faces"]["n_total"] == 43 and sets["demo-landmarks68"]["n_total"] == 43
    marks = list(db.query("SELECT * FROM annotations WHERE set_id = ?", [sets["demo-landmarks68"]["id"]]))
    for m in marks:
        points = json.loads(m["points"])
        assert len(points) == 68
        assert all(0 <= x <= 1 and 0 <= y <= 1 and v == 1 for x, y, v in points)
        assert 0 <= m["x0"] < m["x1"] <= 1 and 0 <= m["y0"] < m["y1"] <= 1
        parent = db["annotations"].get(m["parent_id"])
        assert parent["set_id"] == sets["demo-faces"]["id"] and parent["image_id"] == m["image_id"]
    # The first face of 2007_007763.jpg (500x375): box top 90 left 194 size 37, point 00 at (201, 107).
    first = db.execute(
        "SELECT a.x0, a.y0, a.points FROM annotations a JOIN images i ON i.id = a.image_id"
        " WHERE i.path = 'app/demo_data/2007_007763.jpg' AND a.set_id = ? ORDER BY a.id LIMIT 1",
        [sets["demo-landmarks68"]["id"]],
    ).fetchone()
    assert (first[0], first[1]) == (194 / 500, 90 / 375)
    assert json.loads(first[2])[0] == [round(201 / 500, 6), round(107 / 375, 6), 1]
    astronaut = db["images"].get(content_id(DEMO_DATA / "astronaut.png"))
    assert astronaut["author"] == "NASA" and astronaut["split"] == "train"

    r = runner.invoke(args=["oiap", "demo", "--if-empty"])
    assert "demo not loaded" in r.output
    r = runner.invoke(args=["oiap", "demo"])  # again without --if-empty: idempotent
    n_demo = "SELECT count(*) FROM annotations a JOIN annotation_sets s ON s.id = a.set_id WHERE s.name LIKE 'demo-%'"
    assert r.exit_code == 0 and db.execute(n_demo).fetchone()[0] == 86
    # The builtin models annotated the photos once (boxes, 5 and 68 points), not again on the rerun.
    assert (
        db.execute(
            "SELECT count(*) FROM annotation_sets WHERE source = 'model' AND model_id IS NOT NULL"
        ).fetchone()[0]
        == 3
    )


def test_dashboard_lists_demo_sets(runner, admin_client, db):
    runner.invoke(args=["oiap", "demo"])
    page = admin_client.get("/").get_data(as_text=True)
    assert "demo-faces" in page and "demo-landmarks68" in page
    # Each set says when it was made, in words ("3 Dec 2026 18:05 UTC", app/wording.when).
    created = db.execute("SELECT created_at FROM annotation_sets WHERE name = 'demo-faces'").fetchone()[0]
    assert re.search(r"\d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d UTC", when(created))
    assert when(created) in page


def test_stats_count_per_set_and_split(runner):
    runner.invoke(args=["oiap", "demo"])
    r = runner.invoke(args=["oiap", "stats", "--json"])
    stats = json.loads(r.output)
    assert stats["images"] == {"total": 10, "per_split": {"test": 3, "train": 5, "validation": 2}}
    faces = next(s for s in stats["sets"] if s["name"] == "demo-faces")
    assert sum(c["total"] for c in faces["per_split"].values()) == faces["total"] == 43
    assert set(faces["per_split"]) == {"train", "validation", "test"}
    assert faces["per_split"]["train"]["unrated"] == 18  # dlib's training photos hold 18 faces
    text = runner.invoke(args=["oiap", "stats"]).output
    assert "demo-faces: 43 total" in text and "  test" in text


def test_import_dlib_xml_checks_the_number_of_parts(db, tmp_path):
    shutil.copy(DEMO_DATA / "2008_001009.jpg", tmp_path / "p.jpg")
    xml = tmp_path / "five.xml"
    parts = "".join(f"<part name='{i:02d}' x='{100 + i}' y='120'/>" for i in range(5))
    xml.write_text(
        f"<dataset><images><image file='p.jpg'><box top='100' left='90' width='50' height='60'>{parts}</box>"
        "<box top='0' left='0' width='10' height='10' ignore='1'/></image></images></dataset>"
    )
    r = import_dlib_xml(db, xml, "five", "face_landmarks5", "human", split="validation")
    assert (r["added"], r["ignored"], r["images_added"]) == (1, 1, 1)
    row = db.execute("SELECT x0, y0, points FROM annotations").fetchone()
    assert (row[0], row[1]) == (90 / 360, 100 / 480) and len(json.loads(row[2])) == 5
    assert import_dlib_xml(db, xml, "five", "face_landmarks5", "human")["added"] == 0
    with pytest.raises(InvalidInput, match="has 5 parts, face_landmarks68 needs 68"):
        import_dlib_xml(db, xml, "sixty-eight", "face_landmarks68", "human")


def test_import_dlib_faces_gives_boxes_and_points_that_point_at_them(db):
    boxes, points = import_dlib_faces(db, DEMO_DATA / "testing_with_face_landmarks.xml", "test")
    assert boxes["added"] == points["added"] > 0
    rows = db.execute(
        "SELECT p.parent_id, b.id, p.x0 = b.x0 AND p.y0 = b.y0 AND p.x1 = b.x1 AND p.y1 = b.y1, b.kind"
        " FROM annotations p LEFT JOIN annotations b ON b.id = p.parent_id WHERE p.kind = 'face_landmarks68'"
    ).fetchall()
    assert len(rows) == points["added"]
    assert all(parent == box and same and kind == "face_box" for parent, box, same, kind in rows)
    sets = db.execute("SELECT name, source FROM annotation_sets ORDER BY id").fetchall()
    assert sets == [("human-face_box", "human"), ("human-face_landmarks68", "human")]
    assert {r[0] for r in db.execute("SELECT DISTINCT split FROM images")} == {"test"}
