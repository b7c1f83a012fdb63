"""CSV export, import-csv (ours and the original project's files), and the round trip."""

import csv
import io

import pytest

from app.annotations.rows import annotation_row, insert_annotation, rate
from app.export import csv_header
from app.sets.queries import create_set
from tests.test_export_merge import A, B, T, add_image

KIND = "face_landmarks68"


def _points(i):
    # 68 distinct points inside (0.2..0.6); every fifth one occluded, point 67 absent.
    pts = [
        [round(0.2 + 0.005 * j + 0.001 * i, 6), round(0.3 + 0.004 * j, 6), 0 if j % 5 == 0 else 1]
        for j in range(68)
    ]
    pts[67] = [0, 0, 0]
    return pts


def build(db):
    for image_id, split in ((A, "train"), (B, "train"), (T, "test")):
        add_image(db, image_id, split, w=400, h=300)
    human = create_set(db, "human-lm", KIND, "human")
    model = create_set(db, "model,lm", KIND, "model")  # a comma in the name gets quoted
    ids = {}
    ids["h"] = insert_annotation(
        db, annotation_row(human, A, KIND, (0.1, 0.2, 0.5, 0.7), _points(0), created_by=1)
    )
    ids["good"] = insert_annotation(db, annotation_row(model, B, KIND, (0.15, 0.25, 0.55, 0.75), _points(1)))
    ids["unrated"] = insert_annotation(db, annotation_row(model, B, KIND, (0.6, 0.1, 0.9, 0.4), _points(2)))
    ids["bad"] = insert_annotation(db, annotation_row(model, A, KIND, (0.6, 0.6, 0.9, 0.9), _points(3)))
    ids["test"] = insert_annotation(
        db, annotation_row(human, T, KIND, (0.1, 0.1, 0.4, 0.4), _points(4), created_by=1)
    )
    db.conn.commit()
    rate(db, ids["good"], 2, "good")
    rate(db, ids["bad"], 2, "bad")
    return ids


def read_csv(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_export_columns_and_rows(runner, db):
    ids = build(db)
    result = runner.invoke(args=["oiap", "export", "--kind", KIND, "--format", "csv", "-o", "-"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split(",") == csv_header(KIND)
    assert lines[0].startswith("image_id,split,source,weight,annotation_id,set,x0,y0,x1,y1,1x,1y,2x,2y")
    assert lines[0].endswith("68x,68y")
    rows = read_csv(result.stdout)
    assert [(r["annotation_id"], r["source"], r["weight"]) for r in rows] == [
        (str(ids["h"]), "human", "1.0"),
        (str(ids["good"]), "machine_good", "1.0"),
        (str(ids["unrated"]), "machine_unrated", "0.5"),
    ]
    first = rows[0]
    assert (first["image_id"], first["split"], first["set"]) == (A, "train", "human-lm")
    assert [float(first[c]) for c in ("x0", "y0", "x1", "y1")] == [0.1, 0.2, 0.5, 0.7]
    pts = _points(0)
    assert (float(first["1x"]), float(first["1y"])) == (pts[0][0], pts[0][1])
    assert (float(first["68x"]), float(first["68y"])) == (0.0, 0.0)
    assert rows[1]["set"] == "model,lm"
    # Never the test image, never the bad row.
    assert T not in result.stdout and str(ids["bad"]) not in [r["annotation_id"] for r in rows]


def test_no_unrated_and_box_kind_columns(runner, db):
    build(db)
    out = runner.invoke(args=["oiap", "export", "--kind", KIND, "--format", "csv", "--no-unrated", "-o", "-"])
    assert [r["source"] for r in read_csv(out.stdout)] == ["human", "machine_good"]
    out = runner.invoke(args=["oiap", "export", "--kind", "face_box", "--format", "csv", "-o", "-"])
    assert out.stdout.strip() == "image_id,split,source,weight,annotation_id,set,x0,y0,x1,y1"


def test_test_split_exports_only_alone_as_ground_truth(runner, db):
    ids = build(db)
    out = runner.invoke(
        args=["oiap", "export", "--kind", KIND, "--format", "csv", "--split", "test", "-o", "-"]
    )
    assert out.exit_code == 0, out.output
    assert [r["annotation_id"] for r in read_csv(out.stdout)] == [str(ids["test"])]
    out = runner.invoke(
        args=["oiap", "export", "--kind", KIND, "--format", "csv", "--split", "train,test", "-o", "-"]
    )
    assert out.exit_code != 0 and "exported alone" in out.output


def test_export_to_file_reports_count(runner, db, tmp_path):
    build(db)
    path = tmp_path / "out.csv"
    out = runner.invoke(args=["oiap", "export", "--kind", KIND, "--format", "csv", "-o", str(path)])
    assert out.exit_code == 0, out.output
    assert "exported 3 face_landmarks68 rows" in out.output
    assert len(read_csv(path.read_text())) == 3


def _without_ids(text):
    return [{k: v for k, v in r.items() if k not in ("annotation_id", "set")} for r in read_csv(text)]


def test_csv_round_trip(runner, db, tmp_path, app):
    build(db)
    path = tmp_path / "h.csv"
    runner.invoke(args=["oiap", "export", "--kind", KIND, "--format", "csv", "-o", str(path)])
    before = path.read_text()
    # Import into a fresh store with the same images.
    from app import create_app
    from app.db import connect, migrate

    cfg = dict(app.config)
    cfg["DATABASE"] = str(tmp_path / "second.sqlite3")
    second = create_app(cfg)
    db2 = connect(cfg["DATABASE"])
    migrate(db2)
    for image_id in (A, B, T):
        add_image(db2, image_id, "test" if image_id == T else "train", w=400, h=300)
    db2.conn.commit()
    r2 = second.test_cli_runner()
    out = r2.invoke(
        args=["oiap", "import-csv", str(path), "--kind", KIND, "--set", "back", "--source", "model"]
    )
    assert out.exit_code == 0, out.output
    assert "imported 3 rows" in out.output
    again = r2.invoke(args=["oiap", "export", "--kind", KIND, "--format", "csv", "-o", "-"]).stdout
    # As a model import every row is machine: human rows come back as machine_unrated.
    expected = _without_ids(before)
    expected[0]["source"], expected[0]["weight"] = "machine_unrated", "0.5"
    assert _without_ids(again) == expected
    # Re-importing adds nothing.
    out = r2.invoke(
        args=["oiap", "import-csv", str(path), "--kind", KIND, "--set", "back", "--source", "model"]
    )
    assert "imported 0 rows" in out.output and "3 already there" in out.output
    # As human rows, the human rows come back identical.
    out = r2.invoke(
        args=["oiap", "import-csv", str(path), "--kind", KIND, "--set", "h2", "--source", "human"]
    )
    human = r2.invoke(
        args=["oiap", "export", "--kind", KIND, "--format", "csv", "--sets", "h2", "-o", "-"]
    ).stdout
    assert [r["source"] for r in read_csv(human)] == ["human"] * 3
    assert [{k: v for k, v in r.items() if k not in ("source", "weight")} for r in _without_ids(human)] == [
        {k: v for k, v in r.items() if k not in ("source", "weight")} for r in _without_ids(before)
    ]
    db2.close()


def test_import_original_project_csv_pixels_and_normalised(runner, db, tmp_path):
    add_image(db, A, "train", w=400, h=300)
    add_image(db, B, "train", w=200, h=100)
    db.conn.commit()
    header = ["img_id", "source", "left", "top", "right", "bottom", "fl", "ft", "fr", "fb"]
    header += [f"{c}{i}" for i in range(68) for c in "xy"]
    pixel_pts = []
    for i in range(68):
        pixel_pts += [40 + 2 * i, 60 + i]
    pixel_pts[-2:] = [0, 0]  # point 68 absent
    norm_pts = []
    for i in range(68):
        norm_pts += [0.3 + 0.002 * i, 0.4 + 0.003 * i]
    lines = [
        header,
        # pixels: no face_bbox, the bbox is used
        [A, "dlib", 40, 30, 240, 210, 0, 0, 0, 0, *pixel_pts],
        # normalised, with a face_bbox that wins over bbox
        [B, "human", 0.1, 0.1, 0.9, 0.9, 0.25, 0.35, 0.5, 0.65, *norm_pts],
        [A, "dlib", 40, 30, "x", 210, 0, 0, 0, 0, *pixel_pts],  # malformed: a word
        ["ffffffffffffffff", "dlib", 0.1, 0.1, 0.2, 0.2, 0, 0, 0, 0, *norm_pts],  # unknown image
        [A, "dlib", 40, 30, 240],  # malformed: too short
    ]
    path = tmp_path / "face_landmarks_train.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(lines)
    out = runner.invoke(args=["oiap", "import-csv", str(path), "--kind", KIND, "--set", "orig"])
    assert out.exit_code == 0, out.output
    assert (
        "imported 2 rows" in out.output
        and "2 malformed" in out.output
        and "1 with unknown image" in out.output
    )
    assert f"{path}:4: not a number" in out.output
    assert f"{path}:6: expected at least 10 columns" in out.output
    assert f"{path}:5: unknown image id 'ffffffffffffffff'" in out.output
    rows = read_csv(
        runner.invoke(args=["oiap", "export", "--kind", KIND, "--format", "csv", "-o", "-"]).stdout
    )
    a, b = rows
    assert [float(a[c]) for c in ("x0", "y0", "x1", "y1")] == [0.1, 0.1, 0.6, 0.7]
    assert (float(a["1x"]), float(a["1y"])) == (0.1, 0.2)
    assert (float(a["68x"]), float(a["68y"])) == (0.0, 0.0)
    assert [float(b[c]) for c in ("x0", "y0", "x1", "y1")] == [0.25, 0.35, 0.5, 0.65]
    assert (float(b["2x"]), float(b["2y"])) == (0.302, 0.403)


def test_import_original_bbox_file_without_header(runner, db, tmp_path):
    add_image(db, A, "train", w=400, h=300)
    db.conn.commit()
    path = tmp_path / "face_bbox_train.csv"
    path.write_text(f"{A},human,0,0,0,0,100,60,200,180\n{A},human,0.5,0.5,0.25,0.75,0,0,0,0\n")
    out = runner.invoke(args=["oiap", "import-csv", str(path), "--kind", "face_box", "--set", "bb", "--json"])
    assert out.exit_code == 0, out.output
    assert '"imported": 1' in out.output and '"line": 2' in out.output and "inverted box" in out.output
    rows = read_csv(
        runner.invoke(args=["oiap", "export", "--kind", "face_box", "--format", "csv", "-o", "-"]).stdout
    )
    assert [float(rows[0][c]) for c in ("x0", "y0", "x1", "y1")] == [0.25, 0.2, 0.5, 0.6]


def test_import_rejects_an_unknown_layout(runner, db, tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b,c\n1,2,3\n")
    out = runner.invoke(args=["oiap", "import-csv", str(path), "--kind", "face_box", "--set", "x"])
    assert out.exit_code != 0 and "unrecognised CSV" in out.output


@pytest.mark.parametrize("command", ["export", "import-csv"])
def test_commands_have_help(runner, command):
    out = runner.invoke(args=["oiap", command, "--help"])
    assert out.exit_code == 0 and "Usage" in out.output


def test_import_our_csv_reports_malformed_rows_by_line(runner, db, tmp_path):
    add_image(db, A, "train")
    db.conn.commit()
    head = "image_id,split,source,weight,annotation_id,set,x0,y0,x1,y1"
    path = tmp_path / "ours.csv"
    path.write_text(
        f"{head}\n"
        f"{A},train,human,1.0,1,s,0.1,0.1,0.2,0.2\n"
        f"{A},train,human,1.0,2,s,0.1,0.1,0.2\n"  # a column short
        f"{A},train,human,1.0,3,s,0.1,oops,0.2,0.2\n"
        f"{B},train,human,1.0,4,s,0.1,0.1,0.2,0.2\n"  # not in the store
    )
    out = runner.invoke(args=["oiap", "import-csv", str(path), "--kind", "face_box", "--set", "s"])
    assert out.exit_code == 0, out.output
    assert f"{path}:3: expected 10 columns" in out.output
    assert f"{path}:4: not a number" in out.output
    assert f"{path}:5: unknown image id '{B}'" in out.output
    assert "imported 1 rows" in out.output


def test_unrated_weight_is_checked(runner, db):
    build(db)
    out = runner.invoke(
        args=["oiap", "export", "--kind", KIND, "--format", "csv", "--unrated-weight", "2", "-o", "-"]
    )
    assert out.exit_code != 0 and "between 0 and 1" in out.output
    out = runner.invoke(
        args=["oiap", "export", "--kind", KIND, "--format", "csv", "--unrated-weight", "0.2", "-o", "-"]
    )
    assert [r["weight"] for r in read_csv(out.stdout)] == ["1.0", "1.0", "0.2"]
