"""Export MediaPipe's selfie segmentation (selfie_segmentation.tflite, Apache-2.0) to ONNX.

Get the .tflite (only that file is used; it is not committed):
    pip download --no-deps mediapipe==0.10.21 --python-version 3.11 --only-binary=:all: \\
        --platform manylinux_2_28_x86_64 -d /tmp/mp
    unzip -o /tmp/mp/mediapipe-*.whl mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite -d /tmp/mp
    python scripts/export_selfie_segmentation.py \\
        --tflite /tmp/mp/mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite \\
        --tf2onnx-python /work/venv-export/bin/python

Steps: tf2onnx --tflite (run by the export venv's python, requirements-export.txt) converts every op
but MediaPipe's custom Convolution2DTransposeBias (the last 2x upsampling); that node is replaced by
an ONNX ConvTranspose with the same weights, stride and padding read from the .tflite (its custom
options: padding SAME, stride 2 x 2; weights OHWI -> ONNX's IOHW). Then onnxruntime is checked
against ai-edge-litert's interpreter on the .tflite (np.testing.assert_allclose) on random input and
on real photos, and the file's sha256 is printed. tf2onnx 1.17 names its folded constants differently
from run to run (even with a fixed PYTHONHASHSEED), so a rerun gives the same numbers (the parity
check) but not the same bytes; the committed file's sha256 is in app/annotators/NOTICE.md. Run by this repository's venv (onnx, onnxruntime,
ai-edge-litert, tflite: requirements-dev.txt).
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CUSTOM = "TFL_Convolution2DTransposeBias"


def custom_options(tflite_path: Path) -> tuple[int, int, int]:
    """(padding, stride_w, stride_h) of the one Convolution2DTransposeBias op (TfLitePaddingParams)."""
    import tflite

    buf = tflite_path.read_bytes()
    model = tflite.Model.GetRootAsModel(buf, 0)
    graph = model.Subgraphs(0)
    found = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        if model.OperatorCodes(op.OpcodeIndex()).CustomCode() == b"Convolution2DTransposeBias":
            found.append(tuple(int(v) for v in op.CustomOptionsAsNumpy().view(np.int32)))
    if len(found) != 1:
        raise SystemExit(f"expected one Convolution2DTransposeBias op, found {len(found)}")
    return found[0]


def replace_custom_op(onnx_path: Path, tflite_path: Path, out: Path) -> None:
    """Swap tf2onnx's unconverted custom node for Transpose -> ConvTranspose -> Transpose."""
    import onnx
    from onnx import helper, numpy_helper

    padding, stride_w, stride_h = custom_options(tflite_path)
    m = onnx.load(str(onnx_path))
    inits = {i.name: i for i in m.graph.initializer}
    producers = {o: n for n in m.graph.node for o in n.output}
    nodes = [n for n in m.graph.node if n.op_type == CUSTOM]
    if len(nodes) != 1:
        raise SystemExit(f"expected one {CUSTOM} node after tf2onnx, found {len(nodes)}")
    node = nodes[0]
    x, w_name, b_name = node.input
    w = numpy_helper.to_array(inits[w_name])  # OHWI
    b = numpy_helper.to_array(inits[b_name])
    kh, kw = w.shape[1:3]
    if padding != 1 or (kh, kw) != (stride_h, stride_w):
        # SAME padding with kernel == stride adds no padding: the only case this script maps exactly.
        raise SystemExit(
            f"unexpected custom op: padding {padding}, kernel {kh}x{kw}, stride {stride_h}x{stride_w}"
        )
    # tf2onnx feeds the custom node NHWC through a Transpose of an NCHW tensor: take the NCHW one.
    src = producers[x]
    perm = next((list(a.ints) for a in src.attribute if a.name == "perm"), None)
    if src.op_type != "Transpose" or perm != [0, 2, 3, 1]:
        raise SystemExit(f"the custom node's input is {src.op_type} {perm}, not an NCHW -> NHWC Transpose")
    nchw = src.input[0]
    w_onnx = numpy_helper.from_array(np.ascontiguousarray(w.transpose(3, 0, 1, 2)), name=w_name + "_iohw")
    b_onnx = numpy_helper.from_array(b.astype(np.float32), name=b_name + "_bias")
    m.graph.initializer.extend([w_onnx, b_onnx])
    deconv = helper.make_node(
        "ConvTranspose",
        [nchw, w_onnx.name, b_onnx.name],
        [node.output[0] + "_nchw"],
        name="upsample_deconv",
        kernel_shape=[int(kh), int(kw)],
        strides=[stride_h, stride_w],
    )
    back = helper.make_node(
        "Transpose", [deconv.output[0]], [node.output[0]], name="upsample_nhwc", perm=[0, 2, 3, 1]
    )
    i = list(m.graph.node).index(node)
    m.graph.node.remove(node)
    m.graph.node.insert(i, back)
    m.graph.node.insert(i, deconv)
    # Drop the custom domain's opset import, and initializers nobody reads any more.
    keep = [o for o in m.opset_import if o.domain in ("", "ai.onnx")]
    del m.opset_import[:]
    m.opset_import.extend(keep)
    used = {i for n in m.graph.node for i in n.input}
    for init in [i for i in m.graph.initializer if i.name not in used]:
        m.graph.initializer.remove(init)
    m.producer_name = "oiap scripts/export_selfie_segmentation.py (tf2onnx --tflite + ConvTranspose)"
    onnx.checker.check_model(m)
    onnx.save(m, str(out))


def inputs() -> list[np.ndarray]:
    """NHWC [0, 1] inputs of 256 x 256: random, and two demo photos with people (stretched, as the annotator does)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    out = [rng.random((1, 256, 256, 3), dtype=np.float32)]
    for name in ("2009_004587.jpg", "2008_002470.jpg"):
        im = (
            Image.open(REPO / "app" / "demo_data" / name)
            .convert("RGB")
            .resize((256, 256), Image.Resampling.BILINEAR)
        )
        out.append((np.asarray(im, dtype=np.float32) / 255.0)[None])
    return out


def main(argv=None) -> int:
    """Convert, patch, check against LiteRT, print the sha256."""
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    from app.annotators.box_masks import SELFIE_PATH as MODEL_PATH
    from app.models.registry import sha256_file

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--tflite", type=Path, required=True, help="selfie_segmentation.tflite from mediapipe 0.10.21"
    )
    p.add_argument(
        "--tf2onnx-python",
        default="/work/venv-export/bin/python",
        help="A python with tf2onnx (requirements-export.txt).",
    )
    p.add_argument("--out", type=Path, default=MODEL_PATH)
    p.add_argument("--opset", type=int, default=17)
    args = p.parse_args(argv)
    if not args.tflite.is_file():
        p.error(f"--tflite {args.tflite} does not exist; see the steps above to get it")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        subprocess.run(
            [args.tf2onnx_python, "-m", "tf2onnx.convert", "--tflite", str(args.tflite)]
            + ["--output", str(raw), "--opset", str(args.opset)],
            check=True,
            capture_output=True,
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        replace_custom_op(raw, args.tflite, args.out)

    it = Interpreter(model_path=str(args.tflite))
    it.allocate_tensors()
    sess = ort.InferenceSession(str(args.out), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    worst = 0.0
    for x in inputs():
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        ref = it.get_tensor(it.get_output_details()[0]["index"])
        got = sess.run(None, {name: x})[0]
        # Probabilities in [0, 1]: 1e-4 is far below what a 0.5 threshold could notice.
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4, err_msg="onnxruntime vs litert")
        worst = max(worst, float(np.abs(got - ref).max()))
    print(f"onnxruntime == litert on {len(inputs())} inputs (max abs difference {worst:.2e})")
    print(f"{args.out}  {args.out.stat().st_size} bytes  sha256 {sha256_file(args.out)}  parity ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
