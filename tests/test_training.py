"""Train, evaluate, promote, loop: a whole round on the dev photos (their dlib landmarks as human labels)."""

import json

import numpy as np
import pytest
from PIL import Image

from app.annotations.rows import annotation_row, insert_annotation, rate
from app.annotators import crop68
from app.db import connect
from app.export.merge import iter_training_rows
from app.imports.dlib_xml import import_dlib_faces
from app.imports.folder import register_image_file
from app.kinds import FACE_LABEL
from app.models.builtin import ensure_builtin_models
from app.models.evaluation import PromotionRefused, compare, evaluate, promote
from app.models.registry import active_model, get_model
from app.sets.queries import create_set
from app.training.data import CONTEXT, RowHasher
from tests.conftest import DEMO_DATA
from tests.svg_paths import drawn_points, path_tags


def train(*args, **kw):
    """app.training.trainer.train, imported when a test trains: the file collects without torch."""
    from app.training.trainer import train as _train

    return _train(*args, **kw)


# Few, cheap steps of the small CNN (crop68, never better than the mesh here): the round checks the
# plumbing and the promotion rule, not the accuracy; test_meshhead.py trains the default head.
FAST = {"batch_size": 18, "progress": False, "arch": "crop68"}


@pytest.fixture
def round_db(app):
    """Dev photos: training file as human labels (train split), testing file (test split), the astronaut
    unlabelled, and on two training photos machine landmarks, one rated good, one rated bad."""
    db = connect(app.config["DATABASE"])
    for xml, split in (
        ("training_with_face_landmarks.xml", "train"),
        ("testing_with_face_landmarks.xml", "test"),
    ):
        import_dlib_faces(db, DEMO_DATA / xml, split)
    astronaut, _ = register_image_file(db, DEMO_DATA / "astronaut.png", "train")
    machine = create_set(db, "machine-lm68", "face_landmarks68", "model", label=FACE_LABEL)
    photos = [
        r["id"]
        for r in db.query("SELECT id FROM images WHERE split = 'train' AND id != ? ORDER BY id", [astronaut])
    ]
    pts = [[0.4 + 0.002 * i, 0.4 + 0.001 * i, 1] for i in range(68)]
    ids = [
        insert_annotation(
            db, annotation_row(machine, photos[k], "face_landmarks68", (0.01, 0.01, 0.05, 0.05), pts)
        )
        for k in (0, 1)
    ]
    db.conn.commit()
    admin = db.execute("SELECT id FROM users WHERE username = 'admin'").fetchone()[0]
    rate(db, ids[0], admin, "good")
    rate(db, ids[1], admin, "bad")
    ensure_builtin_models(db)
    db.conn.commit()
    db.meta = {"astronaut": astronaut, "bad_photo": photos[1], "good_photo": photos[0], "admin": admin}
    yield db
    db.close()


def test_crop_round_trip_puts_a_dot_where_it_was():
    img = np.zeros((300, 400, 3), np.uint8)
    img[118:123, 248:253] = 255  # a dot at (250.5, 120.5)
    box = (200, 80, 320, 200)
    cx, cy, side = crop68.crop_square(box)
    crop = crop68.sample_square(Image.fromarray(img), cx, cy, side, crop68.INPUT_SIZE)
    v, u = np.unravel_index(crop.sum(2).argmax(), crop.shape[:2])
    back = crop68.from_crop(
        np.array([[(u + 0.5) / crop68.INPUT_SIZE, (v + 0.5) / crop68.INPUT_SIZE]]), cx, cy, side
    )
    assert np.abs(back[0] - [250.5, 120.5]).max() < side / crop68.INPUT_SIZE * 1.5


def test_augment_keeps_points_on_their_pixels_and_flips_left_and_right():
    import torch

    from app.training.landmarks import augment

    size = round(crop68.INPUT_SIZE * CONTEXT)
    rng = np.random.default_rng(0)
    points = np.zeros((1, 68, 2), np.float32)
    points[0, :, 0] = rng.uniform(-0.4, 0.4, 68)
    points[0, :, 1] = rng.uniform(-0.4, 0.4, 68)
    points[0, 36], points[0, 45] = (-0.3, -0.1), (0.3, -0.1)  # outer eye corners, image-left first
    img = np.zeros((1, 3, size, size), np.float32)
    for x, y in points[0, [36, 45]]:
        u, v = int((x + 1) / 2 * size), int((y + 1) / 2 * size)
        img[0, :, v - 1 : v + 2, u - 1 : u + 2] = 255
    crops = torch.from_numpy(img).repeat(16, 1, 1, 1)
    pts = torch.from_numpy(points).repeat(16, 1, 1)
    gen = torch.Generator().manual_seed(1)
    x, y = augment(crops, pts, gen, train=True)
    assert x.shape == (16, 3, crop68.INPUT_SIZE, crop68.INPUT_SIZE)
    # Whatever the flip, point 36 stays image-left of 45 (the mirror map renumbers), and both sit on a dot.
    assert bool((y[:, 36, 0] < y[:, 45, 0]).all())
    for k in (36, 45):
        u = (y[:, k, 0] * crop68.INPUT_SIZE).long().clamp(1, crop68.INPUT_SIZE - 2)
        v = (y[:, k, 1] * crop68.INPUT_SIZE).long().clamp(1, crop68.INPUT_SIZE - 2)
        for i in range(16):
            assert x[i, :, v[i] - 1 : v[i] + 2, u[i] - 1 : u[i] + 2].max() > 0  # brighter than black
    # Without augmentation: the identity (the net's crop is the context's centre).
    x0, y0 = augment(crops[:1], pts[:1], gen, train=False)
    np.testing.assert_allclose(y0[0].numpy(), (points[0] * CONTEXT + 1) / 2, atol=1e-5)


def test_compare_by_main_metric():
    assert compare("face_landmarks68", {"nme": 0.05}, {"nme": 0.06}) == (True, pytest.approx(0.01))
    assert compare("face_landmarks68", {"nme": 0.06}, {"nme": 0.06})[0] is False
    assert compare("face_box", {"ap": 0.8}, {"ap": 0.9}) == (False, pytest.approx(-0.1))
    assert compare("face_landmarks68", {"nme": 0.5}, {"nme": float("nan")})[0] is True
    assert compare("face_landmarks68", {"nme": float("nan")}, {"nme": 0.5})[0] is False


@pytest.mark.slow
def test_a_whole_round(app, round_db, runner):
    db, meta = round_db, round_db.meta
    facemesh = active_model(db, "face_landmarks68")
    assert facemesh["name"] == "attention68"

    # Train: a candidate from the merged rows, ONNX parity checked, registered with its provenance.
    m1 = train(db, app.config, "face_landmarks68", epochs=2, lr=3e-3, **FAST)
    row = get_model(db, m1["model_id"])
    assert row["source"] == "trained" and row["status"] == "candidate" and row["parent_id"] == facemesh["id"]
    p = row["params"]
    hasher = RowHasher()
    for r in iter_training_rows(db, "face_landmarks68", ("train",)):
        hasher.add(r)
    # 18 human faces + the good machine face + nothing from the bad one.
    assert p["training"] == {
        "sha256": hasher.hexdigest(),
        "rows": 19,
        "samples": 19,
        "skipped": 0,
        "splits": ["train"],
    }
    assert len(p["loss_curve"]) == 2 and p["hyper"]["epochs"] == 2 and p["hyper"]["warm_start_from"] is None
    assert p["onnx_parity"]["max_abs_diff"] < 1e-4 and p["runner"] == "landmarks68:crop68"
    run = db.execute("SELECT command, status, model_id FROM runs WHERE id = ?", [m1["run_id"]]).fetchone()
    assert run == ("train", "done", m1["model_id"])

    # Evaluate: stored on the row, with the CED curve.
    result = runner.invoke(args=["oiap", "evaluate", str(m1["model_id"]), "--json"])
    assert result.exit_code == 0, result.output
    m = json.loads(result.output)
    assert (
        m["faces"] == 25
        and 0 < m["nme"] < 1
        and set(m["regions"]) == {"jaw", "brows", "nose", "eyes", "mouth"}
    )
    assert db.execute("SELECT status FROM runs WHERE command = 'evaluate'").fetchall() == [("done",)]
    stored = get_model(db, m1["model_id"])["metrics"]["test"]
    assert stored["nme"] == m["nme"] and len(stored["ced"]["thresholds"]) == len(stored["ced"]["fraction"])

    # Promotion refused: facemesh68 is far better on the same faces; non-zero exit, the margin said.
    result = runner.invoke(args=["oiap", "promote", str(m1["model_id"])])
    assert result.exit_code != 0 and "worse by" in result.output
    assert active_model(db, "face_landmarks68")["id"] == facemesh["id"]
    # With --json the refusal is JSON too (it printed nothing), with the same non-zero exit.
    result = runner.invoke(args=["oiap", "promote", str(m1["model_id"]), "--json"])
    assert result.exit_code == 1
    refused = json.loads(result.output)
    assert refused["promoted"] is False and refused["refused"] is True and "worse by" in refused["message"]
    assert refused["active_id"] == facemesh["id"] and refused["candidate"] > refused["active"]

    # A deliberately poor candidate (a huge learning rate), warm-started from m1 (ours); forced active.
    poor = train(db, app.config, "face_landmarks68", epochs=1, lr=0.05, from_model=m1["model_id"], **FAST)
    assert get_model(db, poor["model_id"])["params"]["hyper"]["warm_start_from"] == m1["model_id"]
    with pytest.raises(PromotionRefused):
        promote(db, app.config, poor["model_id"])
    result = runner.invoke(args=["oiap", "promote", str(poor["model_id"]), "--force"])
    assert result.exit_code == 0, result.output
    assert active_model(db, "face_landmarks68")["id"] == poor["model_id"]
    forced = db.execute("SELECT target_id FROM events WHERE action = 'promote_forced'").fetchall()
    assert forced == [(str(poor["model_id"]),)]

    # Accepted when better: m1 beats the poor one, both measured now.
    out = promote(db, app.config, m1["model_id"], user_id=meta["admin"])
    assert out["promoted"] and out["better"] and out["candidate"] < out["active"]
    assert active_model(db, "face_landmarks68")["id"] == m1["model_id"]
    assert get_model(db, poor["model_id"])["status"] == "retired"


@pytest.mark.slow
def test_loop_annotates_the_unlabelled_and_the_bad(app, round_db, runner):
    db, meta = round_db, round_db.meta
    m1 = train(db, app.config, "face_landmarks68", epochs=1, **FAST)
    poor = train(db, app.config, "face_landmarks68", epochs=1, lr=0.05, from_model=m1["model_id"], **FAST)
    assert runner.invoke(args=["oiap", "promote", str(poor["model_id"]), "--force"]).exit_code == 0
    result = runner.invoke(
        args=[
            "oiap",
            "loop",
            "--kind",
            "face_landmarks68",
            "--epochs",
            "1",
            "--from",
            str(m1["model_id"]),
            "--batch-size",
            "18",
            "--json",
        ]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["promotion"]["promoted"]
    new = out["train"]["model_id"]
    assert active_model(db, "face_landmarks68")["id"] == new
    run = out["annotate"]
    # Exactly the astronaut (no human label) and the photo whose machine landmarks were rated bad.
    assert run["images"] == 2
    points_set = run["sets"]["points"]["id"]
    images = {
        r[0] for r in db.execute("SELECT DISTINCT image_id FROM annotations WHERE set_id = ?", [points_set])
    }
    assert images == {meta["astronaut"], meta["bad_photo"]}
    s = db.execute("SELECT model_id FROM annotation_sets WHERE id = ?", [points_set]).fetchone()
    assert s == (new,)


@pytest.mark.slow
def test_face_box_fine_tune_round(app, round_db, runner):
    db = round_db
    machine = create_set(db, "machine-boxes", "face_box", "model", label=FACE_LABEL)
    photo = db.meta["good_photo"]
    bad = insert_annotation(db, annotation_row(machine, photo, "face_box", (0.0, 0.0, 0.2, 0.3)))
    db.conn.commit()
    rate(db, bad, db.meta["admin"], "bad")
    mtcnn_row = active_model(db, "face_box")
    result = runner.invoke(args=["oiap", "train", "--kind", "face_box", "--epochs", "1", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    row = get_model(db, out["model_id"])
    p = row["params"]
    assert row["parent_id"] == mtcnn_row["id"] and p["runner"] == "mtcnn" and row["source"] == "trained"
    assert p["training"]["counts"]["hard_neg"] == 1 and p["training"]["counts"]["pos"] > 0
    assert (
        set(p["onnx_parity"]) == {"rnet", "onet"}
        and p["files"]["pnet"] == mtcnn_row["params"]["files"]["pnet"]
    )
    # The three files verify and detect; AP on the test split, stored on the row.
    m = evaluate(db, app.config, out["model_id"], "test")
    assert 0 < m["ap"] <= 1 and m["ground_truth"] == 25 and m["images"] > 0
    assert get_model(db, out["model_id"])["metrics"]["test"]["ap"] == m["ap"]


@pytest.mark.slow
def test_models_page_promote_and_try(app, round_db, admin_client, reviewer_client):
    db, meta = round_db, round_db.meta
    m1 = train(db, app.config, "face_landmarks68", epochs=2, **FAST)["model_id"]
    evaluate(db, app.config, m1, "test")
    page = admin_client.get("/models/").get_data(as_text=True)
    assert f'href="/models/{m1}"' in page and "crop68-run" in page and "facemesh68" in page
    page = admin_client.get(f"/models/{m1}").get_data(as_text=True)
    # CED (this model) and loss curves as inline SVG; the promote form for admins only.
    assert page.count('<svg class="chart"') == 2 and 'aria-label="CED, test split"' in page
    assert "Promote if better" in page
    assert "Promote if better" not in reviewer_client.get(f"/models/{m1}").get_data(as_text=True)
    assert reviewer_client.post(f"/models/{m1}/promote").status_code == 403

    # Refused (attention68 is better): flashed with the margin, audited, nothing activated.
    r = admin_client.post(f"/models/{m1}/promote", follow_redirects=True)
    assert "worse by" in r.get_data(as_text=True)
    assert active_model(db, "face_landmarks68")["name"] == "attention68"
    events = db.execute("SELECT action, user_id FROM events WHERE target_id = ?", [str(m1)]).fetchall()
    assert ("promote_refused", meta["admin"]) in events
    # Forced: active, audited with the admin's id.
    r = admin_client.post(f"/models/{m1}/promote", data={"force": "1"}, follow_redirects=True)
    assert "forced active" in r.get_data(as_text=True)
    assert active_model(db, "face_landmarks68")["id"] == m1
    events = db.execute("SELECT action, user_id FROM events WHERE target_id = ?", [str(m1)]).fetchall()
    assert ("promote_forced", meta["admin"]) in events

    # Try: the trained model on a photo's stored boxes, the builtin detector on the astronaut.
    photo = meta["good_photo"]
    r = admin_client.get(f"/models/{m1}/try?image_id={photo}")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "stored face boxes" in html
    result_layer = html.split('class="result-layer"')[1].split("</g>")[0]
    n_faces = db.execute(
        "SELECT count(*) FROM annotations WHERE image_id = ? AND kind = 'face_box'", [photo]
    ).fetchone()[0]
    # One points path per face, 68 vertices each.
    assert len(path_tags(result_layer, "pts")) == n_faces and len(drawn_points(result_layer)) == 68 * n_faces
    detector = active_model(db, "face_box")["id"]
    html = admin_client.get(f"/models/{detector}/try?image_id={meta['astronaut']}").get_data(as_text=True)
    assert html.split('class="result-layer"')[1].split("</g>")[0].count("<rect") >= 1
    assert admin_client.get(f"/models/{m1}/try?image_id=zz").status_code == 400
