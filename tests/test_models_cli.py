"""`flask oiap models list | add | activate` and the builtin rows."""

import json

from app.bulk.local import bulk_annotate
from app.errors import InvalidInput
from app.images.decode import load_rgb
from app.models.builtin import ensure_builtin_models, load_annotator, verified_files
from app.models.registry import active_model, get_model
from tests.conftest import DEMO_DATA
from tests.test_storage import _tiny_onnx


def test_builtin_rows_are_registered_once_and_activated(db):
    a = ensure_builtin_models(db)
    assert ensure_builtin_models(db) == a
    assert active_model(db, "face_box")["name"] == "mtcnn"
    assert active_model(db, "face_landmarks5")["name"] == "mtcnn"
    assert active_model(db, "face_landmarks68")["name"] == "attention68"
    assert active_model(db, "object_box")["name"] == "nanodet"
    rows = list(db.query("SELECT name, kind, source, licence FROM models ORDER BY id"))
    assert {(r["name"], r["kind"]) for r in rows} == {
        ("mtcnn", "face_box"),
        ("mtcnn", "face_landmarks5"),
        ("attention68", "face_landmarks68"),
        ("facemesh68", "face_landmarks68"),
        ("template68", "face_landmarks68"),
        ("nanodet", "object_box"),
        ("objectron", "object_box"),
    }
    assert all(r["source"] == "builtin" and r["licence"] for r in rows)
    mt = get_model(db, a["mtcnn:face_box"])
    assert mt["path"].endswith("onet.onnx") and set(mt["params"]["files"]) == {"pnet", "rnet"}


def test_list_add_activate(runner, tmp_path):
    r = runner.invoke(args=["oiap", "models", "list", "--json"])
    assert r.exit_code == 0, r.output
    assert {m["name"] for m in json.loads(r.output)} == {
        "mtcnn",
        "attention68",
        "facemesh68",
        "template68",
        "nanodet",
        "objectron",
    }
    f = tmp_path / "mine.onnx"
    _tiny_onnx(f)  # loads in onnxruntime (models add checks), but no runner knows it
    r = runner.invoke(args=["oiap", "models", "add", str(f), "--kind", "face_box", "--name", "mine"])
    assert r.exit_code == 0 and "mine" in r.output, r.output
    new = json.loads(runner.invoke(args=["oiap", "models", "list", "--json", "--kind", "face_box"]).output)[0]
    assert new["name"] == "mine" and new["status"] == "candidate" and new["source"] == "added"
    r = runner.invoke(args=["oiap", "models", "activate", str(new["id"])])
    assert r.exit_code == 0 and "active face_box" in r.output
    # A model nothing can run is refused by bulk-annotate with the reason, not a traceback.
    r = runner.invoke(args=["oiap", "bulk-annotate", "--kind", "face_box"])
    assert r.exit_code != 0 and "no runner" in r.output
    r = runner.invoke(args=["oiap", "models", "list"])
    assert "mine" in r.output and "active" in r.output


def test_a_changed_model_file_is_refused(app, db, tmp_path, runner):
    f = tmp_path / "m.onnx"
    _tiny_onnx(f)
    r = runner.invoke(args=["oiap", "models", "add", str(f), "--kind", "face_landmarks68"])
    model_id = int(r.output.split()[1].rstrip(":"))
    stored = get_model(db, model_id)["path"]
    with open(stored, "wb") as out:
        out.write(b"swapped")
    r = runner.invoke(args=["oiap", "models", "activate", str(model_id)])
    assert r.exit_code != 0 and "sha256" in r.output


def test_every_mtcnn_file_is_verified(db, tmp_path):
    ids = ensure_builtin_models(db)
    row = get_model(db, ids["mtcnn:face_box"])
    row["params"]["files"]["rnet"]["sha256"] = "0" * 64
    try:
        load_annotator(row)
    except InvalidInput as e:
        assert "rnet" in str(e) and "sha256" in str(e)
    else:
        raise AssertionError("a wrong RNet hash was accepted")


def test_a_row_naming_the_pnet_before_its_face_logit_still_runs(db):
    from app.annotators import mtcnn
    from app.models.builtin import SAME_FUNCTION
    from app.models.registry import sha256_file

    ids = ensure_builtin_models(db)
    row = get_model(db, ids["mtcnn:face_box"])
    # As a model fine-tuned before the re-export names its PNet (training copies the parent's entry).
    earlier = next(k for k, v in SAME_FUNCTION.items() if v == sha256_file(mtcnn.MODELS_DIR / "pnet.onnx"))
    row["params"]["files"]["pnet"]["sha256"] = earlier
    assert verified_files(row)["pnet"] == mtcnn.MODELS_DIR / "pnet.onnx"
    img = load_rgb(DEMO_DATA / "astronaut.png")
    assert len(load_annotator(row).detect(img)) == 1


def test_changed_builtin_files_take_over_from_their_old_rows(db):
    ids = ensure_builtin_models(db)
    # As left by an older version of the code whose MTCNN files had other hashes.
    db.execute("UPDATE models SET sha256 = ? WHERE id = ?", ["0" * 64, ids["mtcnn:face_box"]])
    db.conn.commit()
    new = ensure_builtin_models(db)
    assert new["mtcnn:face_box"] != ids["mtcnn:face_box"]
    assert active_model(db, "face_box")["id"] == new["mtcnn:face_box"]
    assert active_model(db, "face_landmarks5")["id"] == ids["mtcnn:face_landmarks5"]


def test_builtin_rows_take_the_codes_settings_on_upgrade(db):
    from app.annotators import mtcnn

    ids = ensure_builtin_models(db)
    # As left by the code before PNet's threshold went from facenet's 0.6 to 0.7.
    old = get_model(db, ids["mtcnn:face_box"])["params"] | {"thresholds": [0.6, 0.7, 0.7]}
    db.execute("UPDATE models SET params = ? WHERE id = ?", [json.dumps(old), ids["mtcnn:face_box"]])
    db.conn.commit()
    assert load_annotator(get_model(db, ids["mtcnn:face_box"])).thresholds == (0.6, 0.7, 0.7)
    assert ensure_builtin_models(db) == ids
    row = get_model(db, ids["mtcnn:face_box"])
    assert row["params"]["thresholds"] == list(mtcnn.THRESHOLDS) == [0.7, 0.7, 0.7]
    assert load_annotator(row).thresholds == mtcnn.THRESHOLDS


def test_re_exported_facemesh_takes_over_from_its_old_row(db):
    ids = ensure_builtin_models(db)
    # As left by the code before facemesh.onnx was re-exported (PRelu rewritten, new hash).
    db.execute("UPDATE models SET sha256 = ? WHERE id = ?", ["0" * 64, ids["attention68"]])
    db.conn.commit()
    new = ensure_builtin_models(db)
    assert new["attention68"] != ids["attention68"]
    assert active_model(db, "face_landmarks68")["id"] == new["attention68"]
    verified_files(active_model(db, "face_landmarks68"))


def test_bulk_uses_the_active_68_model(app, db):
    from app.imports.demo import build_demo

    build_demo(db)
    ids = ensure_builtin_models(db)
    from app.models.registry import activate_model

    activate_model(db, ids["template68"])
    s = bulk_annotate(db, app.config, "face_landmarks68", limit=1, progress=False)
    assert s["sets"]["points"]["name"].startswith("template68-face_landmarks68-")
