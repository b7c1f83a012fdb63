"""attention68, the default face_landmarks68 annotator: the exported attention mesh against TensorFlow's
reference, the derived 478 -> 68 table, the two-pass ROI, mirror symmetry and NME on the dev faces."""

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

from app.annotators import mesh478, mesh_ibug68
from app.annotators.attention68 import AttentionMesh68
from app.annotators.landmarks68 import DEFAULT_LANDMARKS68, get_landmarks68
from app.annotators.mesh_ibug68 import MIRROR68
from app.annotators.template68 import five_from_68
from app.models import eval68
from app.paths import REPO_ROOT as REPO
from tests.conftest import TEST_DATA

REFERENCE = TEST_DATA / "facemesh_attention_reference.npz"


def test_onnx_matches_tensorflow_reference():
    """The reference is TensorFlow's output on a real face crop, stored by the export script (TensorFlow
    is an export-only tool, not in the test venv)."""
    import onnxruntime as ort

    ref = np.load(REFERENCE)
    x = (ref["crop"].transpose(2, 0, 1)[None] / np.float32(255)).astype(np.float32)
    sess = ort.InferenceSession(str(mesh478.MODEL_PATH), providers=["CPUExecutionProvider"])
    got = dict(zip(mesh478.OUTPUTS, sess.run(list(mesh478.OUTPUTS), {"image": x}), strict=True))
    for k in mesh478.OUTPUTS:
        np.testing.assert_allclose(got[k].reshape(1, -1), ref[k], rtol=1e-4, atol=2e-3, err_msg=k)
    assert ref["face_flag"][0, 0] > 0.9  # a face to the net
    # PRelu (slow in onnxruntime on batches) is rewritten by fast_prelu.
    model = onnx.load(str(mesh478.MODEL_PATH))
    assert not [n for n in model.graph.node if n.op_type == "PRelu"]


def test_table_is_recomputed_from_geometry_without_reading_dev_labels():
    """The shipped table is what mesh_ibug68.derive() makes, and deriving it opens no dev file (every
    file opened, seen by an audit hook in a fresh interpreter)."""
    code = (
        "import json, sys\n"
        "opened = []\n"
        "sys.addaudithook(lambda ev, args: opened.append(str(args[0])) if ev == 'open' else None)\n"
        "from app.annotators import mesh_ibug68\n"
        "text = mesh_ibug68.to_json(mesh_ibug68.derive())\n"
        "print(json.dumps({'text': text, 'opened': opened}))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=REPO)
    out = json.loads(r.stdout)
    assert out["text"] == mesh_ibug68.TABLE_PATH.read_text()
    data = [f for f in out["opened"] if not f.endswith((".py", ".pyc", ".so")) and "site-packages" not in f]
    assert any(f.endswith("mediapipe_face_model_478.txt") for f in data)
    assert not [f for f in data if "demo_data" in f or f.endswith(".xml") or "faces-dev" in f], data


def test_table_shape_and_symmetry():
    w = mesh_ibug68.shipped_matrix()
    assert w.shape == (68, 478)
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-9)
    assert ((w > 0).sum(1) <= 2).all()
    # The mirror image of point i is point MIRROR68[i] made of the mirrored vertices.
    perm = mesh478.mirror478()
    np.testing.assert_allclose(w[MIRROR68][:, perm], w, atol=1e-9)
    # Landmark order, on the canonical model: jaw left to right, 8 at the chin, eyes and mouth corners.
    c = mesh_ibug68.canonical_2d()
    p = w @ c
    assert np.all(np.diff(p[0:17, 0]) > 0) and p[8, 1] == pytest.approx(c[152, 1])
    assert p[36, 0] < p[39, 0] < p[42, 0] < p[45, 0] and p[48, 0] < p[54, 0]
    assert p[19, 1] < p[37, 1] < p[30, 1] < p[33, 1] < p[51, 1] < p[57, 1] < p[8, 1]


def test_roi_from_landmarks_follows_the_eye_line():
    c = mesh_ibug68.canonical_2d() * 10 + 200
    cx, cy, size, angle = mesh478.roi_from_landmarks(c)
    assert angle == pytest.approx(0.0, abs=1e-9)
    assert size == pytest.approx(mesh478.ROI_SCALE * np.ptp(c, axis=0).max())
    rot = np.array([[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]])
    assert mesh478.roi_from_landmarks(c @ rot.T)[3] == pytest.approx(0.3)
    assert (cx, cy) == pytest.approx(tuple((c.min(0) + c.max(0)) / 2))


def test_warp_samples_where_the_transform_says():
    img = np.zeros((300, 300, 3), np.uint8)
    img[100, 150] = 255
    from PIL import Image

    out = mesh478.warp(Image.fromarray(img), np.eye(2), np.array([50.0, 20.0]))
    assert list(zip(*np.nonzero(out[..., 0]), strict=True)) == [(80, 100)]


def _dev_image():
    faces = eval68.load_faces(eval68.DEMO_DATA / "testing_with_face_landmarks.xml")
    file = max(sorted({f.file for f in faces}), key=lambda n: sum(f.file == n for f in faces))
    return eval68.load_rgb(eval68.DEMO_DATA / file), [f for f in faces if f.file == file]


def test_mirrored_photo_gives_the_mirrored_points():
    img, group = _dev_image()
    ann = AttentionMesh68()
    w = img.shape[1]
    # The mesh is not exactly mirror-symmetric: measured 0.016 to 0.035 apart (mean 0.021) on the 7
    # faces, against 0.041 to 0.078 from the true points.
    apart = []
    for f in group:
        five = five_from_68(f.points)
        p = ann.predict(img, f.box, five)
        x0, y0, x1, y1 = f.box
        # Pixel centres at integers: x -> w - 1 - x; the five points swap left for right too.
        mfive = five[[1, 0, 2, 4, 3]] * [-1, 1] + [w - 1, 0]
        q = ann.predict(img[:, ::-1], (w - 1 - x1, y0, w - 1 - x0, y1), mfive)
        back = q[MIRROR68] * [-1, 1] + [w - 1, 0]
        apart.append(eval68.nme(back, p))
        assert apart[-1] < 0.045
        assert eval68.nme(p, f.points) < 0.1
    assert np.mean(apart) < 0.03


def test_second_pass_and_predict_many():
    # From the box alone the first crop is not turned with the face; the second pass, on the region
    # of the first pass's landmarks, is. Measured on the training file: 0.0652 -> 0.0613.
    # (The default now takes its region from ONet's five points on the box instead: 0.0598.)
    xml = "training_with_face_landmarks.xml"
    one = np.mean(eval68.face_nmes(AttentionMesh68(passes=1), xml, "box"))
    two = np.mean(eval68.face_nmes(AttentionMesh68(), xml, "box"))
    assert two < one - 0.002
    img, group = _dev_image()
    boxes = [f.box for f in group]
    ann = AttentionMesh68()
    many = ann.predict_many(img, boxes)
    np.testing.assert_allclose(ann.predict(img, boxes[1]), many[1], atol=1e-3)
    assert ann.predict_many(img, []) == []


# Measured (scripts/eval_landmarks68.py --annotator attention68): from MTCNN's boxes and points,
# NME 0.0578 training, 0.0489 testing with the ROI from five points (two mesh passes: 0.0575, 0.0482;
# facemesh68: 0.064 and 0.053). Bounds add a margin.
@pytest.mark.parametrize(
    "xml,bound", [("training_with_face_landmarks.xml", 0.063), ("testing_with_face_landmarks.xml", 0.053)]
)
def test_nme_on_dev_faces_from_mtcnn(xml, bound):
    pytest.importorskip("app.annotators.mtcnn")
    nmes = eval68.face_nmes(get_landmarks68("attention68"), xml, "mtcnn")
    assert len(nmes) >= 17
    assert np.mean(nmes) < bound
    assert max(nmes) < 0.10


def test_is_the_default_and_needs_no_torch():
    assert DEFAULT_LANDMARKS68 == "attention68"
    assert isinstance(get_landmarks68(), AttentionMesh68)
    code = (
        "import sys, numpy as np\n"
        "import app.annotators.landmarks68 as l\n"
        "l.get_landmarks68().predict(np.zeros((64, 64, 3), np.uint8), (8, 8, 56, 56))\n"
        "assert 'torch' not in sys.modules and 'tensorflow' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=eval68.DEMO_DATA.parents[1])


def test_table_file_says_how_it_was_made():
    doc = json.loads(mesh_ibug68.TABLE_PATH.read_text())
    assert "mesh_ibug68" in doc["derivation"] and len(doc["points"]) == 68
