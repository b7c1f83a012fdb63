"""Property-based tests (hypothesis) for the coordinate code and the CSV import/export."""

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.annotations.geometry import box_iou, iou
from app.annotations.rows import annotation_row, insert_annotations, points_json
from app.annotators.template68 import fit_to_box, fit_to_five, five_from_68, mean_shape
from app.db import connect, immediate
from app.editor.edits import parse_json_body, parse_place, parse_save
from app.errors import InvalidInput
from app.export.files import select_rows
from app.export.writers import csv_chunks
from app.imports.csv import import_csv
from app.imports.demo import build_demo
from app.sets.queries import create_set

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
FIXTURE = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def boxes(draw):
    x0, x1 = sorted(draw(st.lists(unit, min_size=2, max_size=2, unique=True)))
    y0, y1 = sorted(draw(st.lists(unit, min_size=2, max_size=2, unique=True)))
    return [x0, y0, x1, y1]


def points(n):
    return st.lists(st.tuples(unit, unit, st.sampled_from([0, 1])).map(list), min_size=n, max_size=n)


# ---- coordinates ----------------------------------------------------------------------------------


@given(
    st.lists(
        st.tuples(
            st.floats(allow_nan=False, allow_infinity=False, width=32),
            st.floats(allow_nan=False, allow_infinity=False, width=32),
        ),
        max_size=80,
    )
)
def test_points_json_rounds_and_defaults_visible(pts):
    out = json.loads(points_json(pts))
    assert len(out) == len(pts)
    for (x, y), (ox, oy, v) in zip(pts, out, strict=True):
        assert v == 1 and ox == round(x, 6) and oy == round(y, 6)


@given(st.lists(boxes(), min_size=1, max_size=6), st.lists(boxes(), min_size=1, max_size=6))
def test_box_iou_is_bounded_and_symmetric(a, b):
    m = box_iou(np.array(a), np.array(b))
    assert m.shape == (len(a), len(b))
    assert np.all(m >= 0) and np.all(m <= 1 + 1e-12)
    np.testing.assert_allclose(m, box_iou(np.array(b), np.array(a)).T)
    for i, box in enumerate(a):
        assert abs(iou(box, b[0]) - m[i, 0]) < 1e-9
        if (box[2] - box[0]) * (box[3] - box[1]) > 1e-12:
            assert box_iou(np.array([box]), np.array([box]))[0, 0] == pytest.approx(1.0)


@given(
    boxes().filter(lambda b: b[2] - b[0] > 0.01 and b[3] - b[1] > 0.01),
    st.floats(-500, 500),
    st.floats(-500, 500),
    st.floats(0.1, 20),
)
def test_template_fit_to_box_moves_and_scales_with_the_box(box, dx, dy, s):
    px = [v * 1000 for v in box]
    base = fit_to_box(px)
    assert base.shape == (68, 2) and np.all(np.isfinite(base))
    moved = fit_to_box([px[0] + dx, px[1] + dy, px[2] + dx, px[3] + dy])
    np.testing.assert_allclose(moved, base + [dx, dy], atol=1e-6)
    scaled = fit_to_box([v * s for v in px])
    np.testing.assert_allclose(scaled, base * s, rtol=1e-6, atol=1e-6)


@given(st.floats(-3, 3), st.floats(0.2, 5), st.floats(-300, 300), st.floats(-300, 300))
def test_template_fit_to_five_recovers_a_similarity(angle, scale, tx, ty):
    shape = mean_shape() * 100
    r = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]) * scale
    target = shape @ r.T + [tx, ty]
    fitted = fit_to_five(five_from_68(target))
    np.testing.assert_allclose(fitted, target, atol=1e-6 * max(1.0, scale * 100))


# ---- the editor's validation ----------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)
save_like = st.fixed_dictionaries(
    {
        "image_id": st.text(max_size=20) | st.integers(),
        "kind": st.sampled_from(["face_box", "face_landmarks68", "x"]),
    },
    optional={
        "faces": st.lists(
            st.dictionaries(
                st.sampled_from(["key", "id", "origin_id", "version", "box", "points", "deleted", "z"]),
                json_values,
                max_size=7,
            ),
            max_size=4,
        )
        | json_values
    },
)


@given(save_like | st.dictionaries(st.text(max_size=10), json_values, max_size=5))
def test_parse_save_accepts_or_says_why(data):
    for parse in (parse_save, parse_place):
        try:
            out = parse(data)
        except InvalidInput as e:
            assert str(e)
            continue
        for f in out.get("faces", [out]):
            box = f.get("box")
            if box is not None:
                assert all(0 <= v <= 1 for v in box) and box[0] < box[2] and box[1] < box[3]


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_parse_json_body_gives_an_object_or_invalid_input(raw):
    try:
        assert isinstance(parse_json_body(raw), dict)
    except InvalidInput:
        pass


@given(boxes(), points(68), st.booleans())
def test_valid_faces_pass_validation_unchanged(box, pts, with_id):
    face = {"key": "k", "box": box, "points": pts}
    if with_id:
        face.update(id=3, version=2)
    out = parse_save({"image_id": "0123456789abcdef", "kind": "face_landmarks68", "faces": [face]})
    f = out["faces"][0]
    assert f["box"] == box and f["points"] == [[float(x), float(y), v] for x, y, v in pts]


# ---- CSV ------------------------------------------------------------------------------------------


@pytest.fixture
def demo_db(app):
    db = connect(app.config["DATABASE"])
    build_demo(db)
    yield db
    db.close()


def _export(db, kind, set_name):
    rows = select_rows(db, kind, ("train", "validation"), sets=[set_name])
    text = "".join(csv_chunks(rows, kind))
    # Coordinates only: ids, set names and sources differ between the two sets by design.
    return text, sorted(tuple([r.split(",")[0]] + r.split(",")[6:]) for r in text.splitlines()[1:])


@FIXTURE
@given(data=st.data())
def test_csv_round_trip_export_import_export(demo_db, tmp_path_factory, data):
    db = demo_db
    kind = data.draw(st.sampled_from(["face_box", "face_landmarks5"]))
    n = 5 if kind == "face_landmarks5" else 0
    images = [r[0] for r in db.execute("SELECT id FROM images WHERE split != 'test' ORDER BY id")]
    faces = data.draw(
        st.lists(
            st.tuples(
                st.sampled_from(images), boxes(), points(n).map(lambda p: [[x, y, 1] for x, y, _ in p])
            ),
            min_size=1,
            max_size=12,
            unique_by=lambda t: (t[0], tuple(t[1])),
        )
    )
    name = f"gen-{db.execute('SELECT count(*) FROM annotation_sets').fetchone()[0]}"
    with immediate(db):
        set_id = create_set(db, name, kind, "model")
        insert_annotations(
            db,
            [
                annotation_row(set_id, i, kind, b, p if n else None, score=0.5, rating="good")
                for i, b, p in faces
            ],
        )
    text, first = _export(db, kind, name)
    path = tmp_path_factory.mktemp("csv") / "out.csv"
    path.write_text(text, encoding="utf-8")
    report = import_csv(db, str(path), kind, name + "-back", source="model")
    # Faces drawn on one image that overlap (IoU >= 0.5) are one face: the export has one row for them.
    assert report["malformed"] == 0 and report["imported"] == len(first) <= len(faces)
    _, second = _export(db, kind, name + "-back")
    assert first == second


@FIXTURE
@given(lines=st.lists(st.text(max_size=200), min_size=1, max_size=8))
def test_csv_garbage_lines_never_crash_and_are_reported(demo_db, tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("csv") / "garbage.csv"
    path.write_text(
        "image_id,split,source,weight,annotation_id,set,x0,y0,x1,y1\n" + "\n".join(lines) + "\n",
        encoding="utf-8",
    )
    before = demo_db.execute("SELECT count(*) FROM annotations").fetchone()[0]
    try:
        report = import_csv(demo_db, str(path), "face_box", "garbage")
    except InvalidInput:
        return
    added = demo_db.execute("SELECT count(*) FROM annotations").fetchone()[0] - before
    assert added == report["imported"]
    # Every line that was not imported, empty or a duplicate is reported with its line number.
    assert report["malformed"] + report["unknown_images"] == len(report["errors"])
    assert all(e["line"] >= 2 and e["reason"] for e in report["errors"])
    assert all(0 <= v <= 1 for r in demo_db.execute("SELECT x0, y0, x1, y1 FROM annotations") for v in r)
