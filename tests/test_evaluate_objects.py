"""`flask oiap evaluate` for object_box on real photos: a real detector (MTCNN, whose faces are Open
Images' Human face) over the five photos of dlib's testing file, hand-drawn face boxes as object
ground truth, human-verified image-level labels, a class the model never finds, an unverified image."""

import pytest

from app.annotations.rows import annotation_row, insert_annotations
from app.annotators import mtcnn
from app.db import immediate
from app.images.decode import load_rgb
from app.images.labels import upsert_labels
from app.imports.dlib_xml import load_faces
from app.kinds import FACE_LABEL
from app.models.builtin import load_annotator, mtcnn_params
from app.models.evaluation import compare, evaluate, promote
from app.models.registry import get_model, register_model
from app.sets.queries import create_set
from tests.conftest import DEMO_DATA
from tests.editor_seed import add_image

PERSON, TORTOISE = "/m/01g317", "/m/011k07"
XML = DEMO_DATA / "testing_with_face_landmarks.xml"


@pytest.fixture
def objects(db):
    """The testing file's photos on the test split: their faces as human object boxes (Human face), the
    last photo with a Person box only and no face label (its faces are unverified)."""
    faces = load_faces(XML)
    files = list(dict.fromkeys(f.file for f in faces))
    unverified = files[-1]
    with immediate(db):
        images = {f: add_image(db, DEMO_DATA / f, split="test") for f in files}
        set_id = create_set(db, "objects-by-hand", "object_box", "human")
        rows, labels = [], []
        for f in faces:
            if f.file == unverified:
                continue
            im = images[f.file]
            w, h = im["width"], im["height"]
            x0, y0, x1, y1 = f.box
            box = (max(x0, 0) / w, max(y0, 0) / h, min(x1 / w, 1), min(y1 / h, 1))
            rows.append(annotation_row(set_id, im["id"], "object_box", box, label=FACE_LABEL))
        last = images[unverified]
        rows.append(annotation_row(set_id, last["id"], "object_box", (0.1, 0.1, 0.9, 0.9), label=PERSON))
        insert_annotations(db, rows)
        for f in files[:-1]:
            labels.append((images[f]["id"], FACE_LABEL, 1, "verification"))
        labels.append((images[files[0]]["id"], TORTOISE, 0, "verification"))
        labels.append((last["id"], PERSON, 1, "verification"))
        upsert_labels(db, labels)
    model_id = register_model(
        db,
        mtcnn.MODELS_DIR / mtcnn.FILES["onet"],
        "object_box",
        name="mtcnn-human-face",
        source="added",
        params=mtcnn_params(),
    )
    n_faces = sum(1 for f in faces if f.file != unverified)
    return {"model_id": model_id, "files": files, "unverified": unverified, "faces": n_faces}


def test_evaluate_object_box_on_real_photos(app, db, objects):
    m = evaluate(db, app.config, objects["model_id"], "test")
    face, person = m["classes"][FACE_LABEL], m["classes"][PERSON]
    assert face["ground_truth"] == objects["faces"] and m["images"] == len(objects["files"])
    # MTCNN finds most hand-drawn faces at IoU 0.5 despite its taller boxes.
    assert 0.5 < face["ap"] <= 1.0 and face["true_positives"] >= objects["faces"] // 2
    # A class the model never detects scores 0 and pulls the mean down; Tortoise (verified absent,
    # never detected) has no ground truth, hence no AP.
    assert person == {
        "ap": 0.0,
        "ground_truth": 1.0,
        "true_positives": 0,
        "false_positives": 0,
        "recall": 0.0,
        "ignored_group_of": 0,
    }
    assert set(m["classes"]) == {FACE_LABEL, PERSON}
    assert m["map"] == pytest.approx((face["ap"] + 0.0) / 2)
    # Faces found on the photo where nobody verified faces are ignored, not false positives.
    on_unverified = load_annotator(get_model(db, objects["model_id"])).detect(
        load_rgb(DEMO_DATA / objects["unverified"])
    )
    assert len(on_unverified) > 0 and m["ignored_unverified"] == len(on_unverified)
    assert m["detections"] == face["true_positives"] + face["false_positives"] + len(on_unverified)
    stored = get_model(db, objects["model_id"])["metrics"]["test"]
    assert stored["map"] == m["map"] and stored["classes"][FACE_LABEL]["ap"] == face["ap"]


def test_a_verified_absent_class_turns_detections_into_false_positives(app, db, objects):
    before = evaluate(db, app.config, objects["model_id"], "test")
    # A reviewer says the unverified photo has no face: its detections now count against the model.
    last = db.execute("SELECT id FROM images WHERE path LIKE ?", [f"%{objects['unverified']}"]).fetchone()[0]
    with immediate(db):
        upsert_labels(db, [(last, FACE_LABEL, 0, "verification")])
    after = evaluate(db, app.config, objects["model_id"], "test")
    added = before["ignored_unverified"]
    assert after["ignored_unverified"] == 0
    assert (
        after["classes"][FACE_LABEL]["false_positives"]
        == before["classes"][FACE_LABEL]["false_positives"] + added
    )
    assert after["classes"][FACE_LABEL]["ap"] < before["classes"][FACE_LABEL]["ap"]


def test_cli_and_page(app, db, objects, runner, admin_client):
    out = runner.invoke(args=["oiap", "evaluate", str(objects["model_id"])])
    assert out.exit_code == 0, out.output
    assert "mAP@0.5" in out.output and "Human face (/m/0dzct)" in out.output and "(/m/01g317)" in out.output
    page = admin_client.get(f"/models/{objects['model_id']}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "mAP@0.5" in html and "Human face" in html and "/m/01g317" in html
    # Scoring some classes only: printed, the stored (all-class) figures stay.
    stored = get_model(db, objects["model_id"])["metrics"]["test"]
    out = runner.invoke(args=["oiap", "evaluate", str(objects["model_id"]), "--classes", FACE_LABEL])
    assert out.exit_code == 0, out.output
    assert "over 1 classes with ground truth" in out.output and "not stored on the model" in out.output
    assert "/m/01g317" not in out.output
    assert get_model(db, objects["model_id"])["metrics"]["test"] == stored
    out = runner.invoke(args=["oiap", "evaluate", str(objects["model_id"]), "--classes", "person"])
    assert out.exit_code != 0 and "bad class 'person'" in out.output


def test_promotion_gate_by_map(app, db, objects):
    # The store's first object model becomes active through the same gate as faces (a store without
    # the builtin rows: nothing has registered them here).
    r = promote(db, app.config, objects["model_id"])
    assert r["promoted"] and r["metric"] == "map" and r["active_id"] is None
    assert r["candidate"] == pytest.approx(get_model(db, objects["model_id"])["metrics"]["test"]["map"])
    assert compare("object_box", {"map": 0.6}, {"map": 0.5}) == (True, pytest.approx(0.1))
    assert compare("object_box", {"map": 0.5}, {"map": 0.5})[0] is False
    assert compare("object_box", {"map": None}, {"map": 0.1})[0] is False


def test_no_object_ground_truth_is_refused(app, db):
    model_id = register_model(
        db,
        mtcnn.MODELS_DIR / mtcnn.FILES["onet"],
        "object_box",
        name="m",
        source="added",
        params=mtcnn_params(),
    )
    with pytest.raises(Exception, match="no object_box ground truth on the test split"):
        evaluate(db, app.config, model_id, "test")


def test_the_stored_class_hierarchy_expands_the_ground_truth(app, db, objects):
    from app.images.labels import store_hierarchy

    before = evaluate(db, app.config, objects["model_id"], "test")
    head = "/m/04hgtk"  # a parent class for the test: every Human face box is also a Human head box
    with immediate(db):
        store_hierarchy(db, [(FACE_LABEL, head), (head, "/m/0bl9f"), (PERSON, "/m/0bl9f")])
    after = evaluate(db, app.config, objects["model_id"], "test")
    assert after["classes"][head]["ground_truth"] == objects["faces"]
    assert after["classes"][head]["ap"] == 0.0  # the model says Human face, never Human head
    assert after["classes"][FACE_LABEL] == before["classes"][FACE_LABEL]
    assert "/m/0bl9f" not in after["classes"]  # the root is no class
    assert after["map"] == pytest.approx((before["classes"][FACE_LABEL]["ap"] + 0 + 0) / 3)
