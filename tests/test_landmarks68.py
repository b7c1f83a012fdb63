"""face_landmarks68 annotators on the dev photos: template fit, face mesh, ONNX parity, registry."""

import json
import subprocess
import sys

import numpy as np
import pytest

from app.annotators.facemesh68 import MESH_TO_IBUG68, MODEL_PATH, FaceMeshLandmarks68, crop_faces
from app.annotators.landmarks68 import BUILTIN, DEFAULT_LANDMARKS68, NAMES, get_landmarks68
from app.annotators.template68 import (
    MEAN_FACE_PATH,
    TemplateLandmarks68,
    fit_to_box,
    fit_to_five,
    five_from_68,
    mean_shape,
)
from app.images.decode import load_rgb
from app.models import eval68


def test_mean_shape_is_68_points_in_ibug_order():
    pts = np.array(json.loads(MEAN_FACE_PATH.read_text())["points"])
    assert pts.shape == (68, 2)
    s = mean_shape()
    # Image-left to image-right: jaw 0 < 16, outer eye corners 36 < 45, mouth corners 48 < 54;
    # top to bottom (y down): brows above eyes above nose tip above mouth above chin.
    assert s[0, 0] < s[16, 0] and s[36, 0] < s[45, 0] and s[48, 0] < s[54, 0]
    assert s[19, 1] < s[37, 1] < s[30, 1] < s[51, 1] < s[8, 1]
    assert np.linalg.norm(s[45] - s[36]) == pytest.approx(1.0)


def test_fit_to_five_recovers_a_similarity_of_the_mean_shape():
    ang, scale, t = 0.3, 57.0, np.array([120.0, 80.0])
    m = scale * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    target = mean_shape() @ m.T + t
    np.testing.assert_allclose(fit_to_five(five_from_68(target)), target, atol=1e-9)


def test_fit_to_box_scales_with_the_box():
    a = fit_to_box((0, 0, 100, 100))
    b = fit_to_box((50, 20, 250, 220))
    np.testing.assert_allclose(b, a * 2 + [50, 20], atol=1e-9)


# Measured (scripts/eval_landmarks68.py): five points from the true 68: 0.120 training, 0.088 testing;
# true box only: 0.211 training, 0.159 testing. Bounds add a margin.
@pytest.mark.parametrize(
    "xml,cond,bound",
    [
        ("training_with_face_landmarks.xml", "five", 0.13),
        ("testing_with_face_landmarks.xml", "five", 0.10),
        ("training_with_face_landmarks.xml", "box", 0.23),
        ("testing_with_face_landmarks.xml", "box", 0.18),
    ],
)
def test_template_nme_on_dev_faces(xml, cond, bound):
    nmes = eval68.face_nmes(TemplateLandmarks68(), xml, cond)
    assert len(nmes) in (18, 25)
    assert np.mean(nmes) < bound


def test_registry_knows_the_default():
    assert DEFAULT_LANDMARKS68 in NAMES
    assert get_landmarks68() is get_landmarks68(DEFAULT_LANDMARKS68)
    assert get_landmarks68("facemesh68", MODEL_PATH).model_path == MODEL_PATH
    with pytest.raises(ValueError, match="unknown"):
        get_landmarks68("nope")


def test_predict_uses_five_points_when_given():
    ann = TemplateLandmarks68()
    five = np.array([[30.0, 40], [70, 40], [50, 60], [35, 75], [65, 75]])
    p = ann.predict(np.zeros((100, 100, 3), np.uint8), (10, 10, 90, 90), five)
    assert p.shape == (68, 2)
    np.testing.assert_allclose(five_from_68(p)[:2], five[:2], atol=6)
    many = ann.predict_many(None, [(10, 10, 90, 90)] * 2, None)
    np.testing.assert_allclose(many[0], fit_to_box((10, 10, 90, 90)))


# Measured (scripts/eval_landmarks68.py): five points from the true 68: 0.066 training, 0.052 testing;
# true box alone (two passes): 0.066 training, 0.053 testing. Bounds add a margin.
@pytest.mark.parametrize(
    "xml,cond,bound",
    [
        ("training_with_face_landmarks.xml", "five", 0.08),
        ("testing_with_face_landmarks.xml", "five", 0.065),
        ("training_with_face_landmarks.xml", "box", 0.08),
        ("testing_with_face_landmarks.xml", "box", 0.065),
    ],
)
def test_facemesh_nme_on_dev_faces(xml, cond, bound):
    nmes = eval68.face_nmes(FaceMeshLandmarks68(), xml, cond)
    assert np.mean(nmes) < bound
    assert max(nmes) < 0.15


def test_facemesh_is_builtin_and_beats_the_template():
    assert "facemesh68" in NAMES and DEFAULT_LANDMARKS68 != "facemesh68"
    xml = "testing_with_face_landmarks.xml"
    mesh = np.mean(eval68.face_nmes(get_landmarks68("facemesh68"), xml, "five"))
    tmpl = np.mean(eval68.face_nmes(get_landmarks68("template68"), xml, "five"))
    assert mesh < tmpl
    assert all(BUILTIN[n]["path"].is_file() for n in NAMES)


def test_mesh_to_ibug68_table():
    table = np.array(MESH_TO_IBUG68)
    assert table.shape == (68,)
    assert len(set(MESH_TO_IBUG68)) == 68
    assert table.min() >= 0 and table.max() < 468


def _dev_image_with_faces():
    faces = eval68.load_faces(eval68.DEMO_DATA / "testing_with_face_landmarks.xml")
    file = max({f.file for f in faces}, key=lambda n: sum(f.file == n for f in faces))
    group = [f for f in faces if f.file == file]
    return load_rgb(eval68.DEMO_DATA / file), group


def test_predict_many_is_one_batch_matching_predict():
    img, group = _dev_image_with_faces()
    assert len(group) >= 3
    ann = FaceMeshLandmarks68()
    boxes = [f.box for f in group]
    fives = [five_from_68(f.points) for f in group]
    many = ann.predict_many(img, boxes, fives)
    for f, b, p, m in zip(group, boxes, fives, many, strict=True):
        np.testing.assert_allclose(ann.predict(img, b, p), m, atol=1e-3)
        assert eval68.nme(m, f.points) < 0.15
    assert ann.predict_many(img, [], None) == []
    # A box-only face among five-point faces.
    mixed = ann.predict_many(img, boxes[:2], [fives[0], None])
    np.testing.assert_allclose(mixed[0], many[0], atol=1e-3)
    np.testing.assert_allclose(mixed[1], ann.predict(img, boxes[1]), atol=1e-3)


@pytest.mark.slow
def test_onnx_matches_torch_rebuild():
    torch = pytest.importorskip("torch")
    from app.training.facemesh import FaceMesh, load_onnx_weights

    net = load_onnx_weights(FaceMesh(), str(MODEL_PATH))
    img, group = _dev_image_with_faces()
    x, _ = crop_faces(img, [five_from_68(f.points) for f in group])
    x = np.concatenate([x, np.random.default_rng(0).random((1, 3, 192, 192), dtype=np.float32)])
    import onnxruntime as ort

    sess = ort.InferenceSession(str(MODEL_PATH), providers=["CPUExecutionProvider"])
    got = sess.run(["mesh", "face_logit"], {"image": x})
    with torch.no_grad():
        ref = [t.numpy() for t in net(torch.from_numpy(x))]
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-5, atol=1e-4)
    # The real face crops are faces to the net: a high face logit.
    assert (got[1][: len(group), 0] > 0).all()
    # PRelu, slow in onnxruntime on batches, is rewritten by fast_prelu: all 23 slopes still there.
    import onnx

    from app.training.onnx_export import prelu_slopes

    model = onnx.load(str(MODEL_PATH))
    assert not [n for n in model.graph.node if n.op_type == "PRelu"]
    assert len(prelu_slopes(model)) == 23


def test_annotators_do_not_import_torch():
    code = (
        "import sys, numpy as np\n"
        "import app.annotators.facemesh68, app.annotators.landmarks68 as l\n"
        "l.get_landmarks68().predict(np.zeros((64, 64, 3), np.uint8), (8, 8, 56, 56))\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=eval68.DEMO_DATA.parents[1])


def test_facemesh_on_mtcnn_points():
    pytest.importorskip("app.annotators.mtcnn")
    # Measured: MTCNN finds 25 of 25 testing faces; NME 0.053 with its five points, 0.052 with its box.
    ann = FaceMeshLandmarks68()
    for cond in ("mtcnn", "mtcnn_box"):
        nmes = eval68.face_nmes(ann, "testing_with_face_landmarks.xml", cond)
        assert len(nmes) >= 24
        assert np.mean(nmes) < 0.065
