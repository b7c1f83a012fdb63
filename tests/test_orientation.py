"""Rotated photos: Open Images' Rotation and a JPEG's EXIF orientation are applied before the models,
and what they find comes back on the file's pixel grid (stored coordinates keep their meaning).

Real photos: dlib's 2008_002506.jpg (three faces, boxes by hand in app/demo_data/testing.xml) and
2008_002470.jpg (six faces), written sideways or upside down (pixels turned) with the EXIF tag that
displays them upright, or with images.rotation saying how to turn them.
"""

import json

import numpy as np
import pytest
from PIL import Image, ImageOps

from app.bulk.local import bulk_annotate
from app.images.decode import decode
from app.images.orientation import EXIF_ORIENTATION_TAG, EXIF_UPRIGHT, Orientation, orientation_for
from app.imports.dlib_xml import load_faces
from app.models.eval_detector import dev_faces, match
from tests.conftest import DEMO_DATA
from tests.test_bulk import add_image, set_rows

PHOTOS = ("2008_002506.jpg", "2008_002470.jpg")
# How the file is made from the upright photo, and the EXIF tag / Open Images Rotation that undo it.
TURNED = {
    90: (Image.Transpose.ROTATE_90, 6, 270),  # file turned 90 CCW: EXIF 6 (turn 90 CW), Rotation 270
    180: (Image.Transpose.ROTATE_180, 3, 180),
    270: (Image.Transpose.ROTATE_270, 8, 90),
}


@pytest.mark.parametrize("tag", sorted(EXIF_UPRIGHT))
def test_orientation_matches_pillows_exif_transpose_and_maps_points_both_ways(tmp_path, tag):
    with Image.open(DEMO_DATA / PHOTOS[0]) as im:
        src = im.convert("RGB")
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = tag
    path = tmp_path / f"o{tag}.png"  # lossless, so pixels compare exactly
    src.save(path, exif=exif)
    with Image.open(path) as im:
        o = orientation_for(im)
        upright = ImageOps.exif_transpose(im).convert("RGB")
    file_px = np.asarray(src)
    got = o.apply(file_px)
    assert got.shape == np.asarray(upright).shape and np.array_equal(got, np.asarray(upright))
    w, h = src.size
    rng = np.random.default_rng(tag)
    xy = rng.uniform([0, 0], [w, h], size=(50, 2))
    up = o.to_upright(xy, w, h)
    np.testing.assert_allclose(o.to_file(up, w, h), xy, atol=1e-9)
    # A pixel's centre lands on the same colour in the upright image.
    cols, rows = np.floor(xy).astype(int).T
    centres = o.to_upright(np.floor(xy) + 0.5, w, h)
    uc, ur = np.floor(centres).astype(int).T
    assert np.array_equal(file_px[rows, cols], got[ur, uc])


def test_open_images_rotation_wins_over_exif(tmp_path):
    path, _ = _turned_file(tmp_path, PHOTOS[0], 90, True)  # EXIF 6
    with Image.open(path) as im:
        assert orientation_for(im) == Orientation(False, 3, "exif")
        assert orientation_for(im, 90.0) == Orientation(False, 1, "rotation")
        # 0 or unknown (NaN, NULL) says nothing: the EXIF tag counts.
        assert orientation_for(im, 0.0).source == orientation_for(im, float("nan")).source == "exif"
    with Image.open(DEMO_DATA / PHOTOS[0]) as plain:
        assert orientation_for(plain).identity and orientation_for(plain, 180.0).turns == 2


def _turned_file(tmp_path, name, degrees, with_exif):
    with Image.open(DEMO_DATA / name) as im:
        upright = im.convert("RGB")
    transpose, tag, _rotation = TURNED[degrees]
    turned = upright.transpose(transpose)
    path = tmp_path / f"{degrees}-{'exif' if with_exif else 'rot'}-{name}"
    exif = Image.Exif()
    if with_exif:
        exif[EXIF_ORIENTATION_TAG] = tag
    turned.save(path, quality=95, exif=exif)
    return path, upright.size


def _size(path):
    with Image.open(path) as im:
        return im.size


def _dev_boxes_on_file(name, degrees, size):
    """The hand-labelled boxes of the upright photo, in pixels of the turned file."""
    w, h = size
    transpose, _tag, _ = TURNED[degrees]
    turns = {Image.Transpose.ROTATE_90: 1, Image.Transpose.ROTATE_180: 2, Image.Transpose.ROTATE_270: 3}
    o = Orientation(False, turns[transpose])  # upright -> file, as the file was made
    out = []
    for f in dev_faces()[name]:
        p = o.to_upright(np.asarray(f.box, dtype=np.float64).reshape(2, 2), w, h)
        lo, hi = p.min(axis=0), p.max(axis=0)
        out.append((lo[0], lo[1], hi[0], hi[1]))
    return out


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_turned_photos_get_their_faces_on_the_files_grid(app, db, tmp_path, degrees):
    cases = {}
    for name in PHOTOS:
        for with_exif in (True, False):
            path, size = _turned_file(tmp_path, name, degrees, with_exif)
            fw, fh = _size(path)
            image_id = add_image(db, path, size=(fw, fh))
            if not with_exif:
                db.execute("UPDATE images SET rotation = ? WHERE id = ?", [TURNED[degrees][2], image_id])
                db.conn.commit()
            cases[image_id] = (name, size, (fw, fh), "exif" if with_exif else "rotation")
    # The same turned file with neither tag nor rotation: what the models saw before (upside down or
    # sideways faces); it must find fewer of them, or this test would not show anything.
    bare, _ = _turned_file(tmp_path, PHOTOS[1], degrees, False)
    bare_id = add_image(db, bare, size=_size(bare), image_id="b" * 16)
    s = bulk_annotate(db, app.config, "face_landmarks68", progress=False)
    assert s["status"] == "done" and s["errors"] == 0
    boxes = set_rows(db, s["sets"]["box"]["id"])
    points = {r["parent_id"]: r for r in set_rows(db, s["sets"]["points"]["id"])}
    for image_id, (name, size, (fw, fh), how) in cases.items():
        truth = _dev_boxes_on_file(name, degrees, size)
        rows = [r for r in boxes if r["image_id"] == image_id]
        pred = [(r["x0"] * fw, r["y0"] * fh, r["x1"] * fw, r["y1"] * fh) for r in rows]
        m = match(truth, pred, 0.5)
        assert all(j is not None for j in m), (name, degrees, how, truth, pred)
        # The 68 points of each face lie in its box, on the same (file) grid.
        for r in rows:
            pts = np.array(json.loads(points[r["id"]]["points"]))
            cx, cy = pts[:, 0].mean(), pts[:, 1].mean()
            assert r["x0"] < cx < r["x1"] and r["y0"] < cy < r["y1"], (name, degrees, how)
    n_bare = sum(1 for r in boxes if r["image_id"] == bare_id)
    n_truth = len(dev_faces()[PHOTOS[1]])
    if degrees != 180:
        assert n_bare < n_truth, "a sideways photo should lose faces without its orientation"


def test_decode_maps_a_stored_box_onto_the_upright_pixels_and_back(tmp_path):
    path, size = _turned_file(tmp_path, PHOTOS[0], 90, True)
    d = decode(path, max_side=None)
    fw, fh = _size(path)
    assert (d.width, d.height) == (fw, fh) and d.rgb.shape[:2] == (size[1], size[0])
    box = (0.1, 0.2, 0.4, 0.3)
    px = d.box_to_decoded(box)
    np.testing.assert_allclose(d.normalise_box(px), box, atol=1e-12)
    # Reduced decoding (1/2) keeps the same map.
    half = decode(path, max_side=200)
    assert half.scale == 2.0
    np.testing.assert_allclose(half.normalise_box(half.box_to_decoded(box)), box, atol=1e-12)


def _evaluation_store(app, tmp_path, turned: bool) -> dict:
    """dlib's three testing photos as the test split with their hand labels as human sets (boxes and
    68 points), upright or stored turned 90 degrees with EXIF 6; returns {kind: metrics}."""
    from app.annotations.rows import annotation_row, insert_annotations
    from app.db import connect
    from app.models.builtin import ensure_builtin_models
    from app.models.evaluation import evaluate
    from app.models.registry import active_model
    from app.sets.queries import create_set

    db = connect(app.config["DATABASE"])
    try:
        boxes = create_set(db, "human-face_box", "face_box", "human")
        marks = create_set(db, "human-face_landmarks68", "face_landmarks68", "human")
        rows = []
        by_file = dev_faces()
        test_files = sorted({f.file for f in load_faces(DEMO_DATA / "testing_with_face_landmarks.xml")})
        for name in test_files:
            if turned:
                path, size = _turned_file(tmp_path, name, 90, True)
            else:
                path = DEMO_DATA / name
                size = _size(path)
            fw, fh = _size(path)
            image_id = add_image(db, path, split="test", size=(fw, fh))
            o = Orientation(False, 1) if turned else Orientation()  # upright -> the file's grid
            for f in by_file[name]:
                corners = o.to_upright(np.asarray(f.box, dtype=np.float64).reshape(2, 2), *size)
                lo, hi = corners.min(axis=0) / [fw, fh], corners.max(axis=0) / [fw, fh]
                box = (lo[0], lo[1], hi[0], hi[1])
                pts = o.to_upright(f.points, *size) / [fw, fh]
                rows.append(annotation_row(boxes, image_id, "face_box", box, created_by=1))
                rows.append(
                    annotation_row(
                        marks, image_id, "face_landmarks68", box, [[*p, 1] for p in pts], created_by=1
                    )
                )
        insert_annotations(db, rows)
        db.conn.commit()
        ensure_builtin_models(db)
        return {
            kind: evaluate(db, app.config, active_model(db, kind)["id"], "test")
            for kind in ("face_box", "face_landmarks68")
        }
    finally:
        db.close()


def test_evaluation_sees_turned_photos_upright(app, tmp_path):
    from tests.live import instance_app

    upright = _evaluation_store(app, tmp_path, turned=False)
    turned = _evaluation_store(instance_app(tmp_path / "turned"), tmp_path, turned=True)
    assert upright["face_box"]["ground_truth"] == turned["face_box"]["ground_truth"] == 25
    assert turned["face_box"]["true_positives"] == upright["face_box"]["true_positives"] >= 23
    assert turned["face_box"]["ap"] == pytest.approx(upright["face_box"]["ap"], abs=0.02)
    # The same faces seen the same way: the points come back onto the file's grid.
    assert turned["face_landmarks68"]["faces"] == upright["face_landmarks68"]["faces"] == 25
    assert turned["face_landmarks68"]["nme"] == pytest.approx(upright["face_landmarks68"]["nme"], rel=0.05)
    assert turned["face_landmarks68"]["nme"] < 0.1


def test_the_editor_turns_an_exif_photo_as_a_browser_would(app, db, tmp_path, admin_client):
    from tests.test_editor import page_config

    ids = {}
    for degrees in (90, 180, 270):
        path, _ = _turned_file(tmp_path, PHOTOS[0], degrees, True)
        ids[degrees] = add_image(db, path, size=_size(path))
    plain = add_image(db, DEMO_DATA / PHOTOS[0], size=_size(DEMO_DATA / PHOTOS[0]))
    db.execute("UPDATE images SET rotation = 90 WHERE id = ?", [ids[180]])  # Open Images' says 90: wins
    db.conn.commit()
    rotation = {
        k: page_config(admin_client.get(f"/edit/image/{i}?kind=face_box"))["image"]["rotation"]
        for k, i in ids.items()
    }
    # The page turns counterclockwise by this much: EXIF 6 (file turned 90 CCW) is shown turned 270 more.
    assert rotation == {90: 270, 180: 90, 270: 90}
    assert page_config(admin_client.get(f"/edit/image/{plain}?kind=face_box"))["image"]["rotation"] == 0
