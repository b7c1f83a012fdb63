"""MTCNN's PNet and RNet graphs against rewrites of them that compute the same function: which one
onnxruntime runs fastest (one intra-op thread, as bulk-annotate's workers), and how far apart the
outputs are.

PNet on a 615x461 level (a 1024x768 photo's first level at 20 px), RNet on 32 crops (its chunk):

- shipped: the committed file (PNet with its face logit, scripts/export_mtcnn.py);
- softmax: PNet's two-way softmax rebuilt from the face logit (conv (0, z1 - z0) and Softmax: the same
  probabilities), i.e. the graph before the face logit;
- pad16: PNet's first conv padded with zero channels from 10 to 16 (so its output could stay in
  onnxruntime's blocked 8-channel layout);
- relu: the first PReLU (some slopes above 1) as a*y + (1-a)*Relu(y) instead of y + (a-1)*Min(y, 0);
- split: the first PReLU split around the max pool that follows it: Max(y, a*y) before it with the
  slopes above 1 set to 1, Min(z, b*z) after it with b the slopes above 1 (else 1); exact, because a
  PReLU whose slope is positive is increasing and so commutes with a max.

    python scripts/bench_mtcnn_graphs.py [--rounds 3]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.annotators import mtcnn as M  # noqa: E402


def _arrays(model) -> dict:
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def _set(model, name: str, value: np.ndarray) -> None:
    from onnx import numpy_helper

    for init in model.graph.initializer:
        if init.name == name:
            init.CopyFrom(numpy_helper.from_array(value.astype(np.float32), name))
            return
    model.graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), name))


def _replace(
    model, prefix: str, new_nodes: list, after: str | None = None, extra: list | None = None
) -> None:
    """Drop the nodes named prefix*, put new_nodes where the first of them was (and extra after the
    node named after), and drop initializers nothing reads any more."""
    nodes, placed = [], False
    for n in model.graph.node:
        if n.name.startswith(prefix):
            if not placed:
                nodes += new_nodes
                placed = True
            continue
        nodes.append(n)
        if after and n.name == after:
            nodes += extra or []
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {i for n in model.graph.node for i in n.input}
    for init in [i for i in model.graph.initializer if i.name not in used]:
        model.graph.initializer.remove(init)


def _prelu1(model) -> tuple[str, str, np.ndarray]:
    """The first PReLU's input, output and slopes (from fast_prelu's y + (a-1)*Min(y, 0) form)."""
    nodes = {n.name: n for n in model.graph.node}
    add = nodes["/prelu1/PRelu/add"]
    mul = nodes["/prelu1/PRelu/mul_slope"]
    return add.input[0], add.output[0], _arrays(model)[mul.input[1]].reshape(-1) + 1


def softmax(model) -> None:
    from onnx import TensorProto, helper

    a = _arrays(model)
    w, b = a["face.weight"], a["face.bias"]
    _set(model, "two.weight", np.concatenate([np.zeros_like(w), w]))
    _set(model, "two.bias", np.concatenate([np.zeros_like(b), b]))
    src = next(n for n in model.graph.node if n.name == "/face/Conv").input[0]
    _replace(
        model,
        "/face/Conv",
        [
            helper.make_node(
                "Conv", [src, "two.weight", "two.bias"], ["two"], name="/two/Conv", kernel_shape=[1, 1]
            ),
            helper.make_node("Softmax", ["two"], ["prob"], name="/Softmax", axis=1),
        ],
    )
    g = model.graph
    g.output.remove(next(o for o in g.output if o.name == "face_logit"))
    g.output.append(helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["batch", 2, "h", "w"]))


def pad16(model) -> None:
    a = _arrays(model)
    w, b, w2 = a["conv1.weight"], a["conv1.bias"], a["conv2.weight"]
    n = 16 - len(w)
    _set(model, "conv1.weight", np.concatenate([w, np.zeros((n, *w.shape[1:]))]))
    _set(model, "conv1.bias", np.concatenate([b, np.zeros(n)]))
    _set(model, "conv2.weight", np.concatenate([w2, np.zeros((w2.shape[0], n, *w2.shape[2:]))], axis=1))
    for init in model.graph.initializer:
        if init.name.endswith("/minus_one"):  # the first PReLU's a-1: padded channels are zeros anyway
            _set(model, init.name, np.concatenate([a[init.name], np.zeros((n, 1, 1))]))
            break


def relu(model) -> None:
    from onnx import helper

    y, out, a = _prelu1(model)
    _set(model, "p1/a", a.reshape(-1, 1, 1))
    _set(model, "p1/one_minus_a", (1 - a).reshape(-1, 1, 1))
    _replace(
        model,
        "/prelu1/",
        [
            helper.make_node("Relu", [y], ["p1/relu"], name="/prelu1/relu"),
            helper.make_node("Mul", [y, "p1/a"], ["p1/ay"], name="/prelu1/ay"),
            helper.make_node("Mul", ["p1/relu", "p1/one_minus_a"], ["p1/r"], name="/prelu1/r"),
            helper.make_node("Add", ["p1/ay", "p1/r"], [out], name="/prelu1/add"),
        ],
    )


def split(model) -> None:
    from onnx import helper

    y, out, a = _prelu1(model)
    _set(model, "p1/a_pre", np.where(a > 1, 1.0, a).reshape(-1, 1, 1))
    _set(model, "p1/b_post", np.where(a > 1, a, 1.0).reshape(-1, 1, 1))
    pool = next(n for n in model.graph.node if n.op_type == "MaxPool" and n.input[0] == out)
    pooled = pool.output[0]
    pool.output[0] = "p1/pooled"
    _replace(
        model,
        "/prelu1/",
        [
            helper.make_node("Mul", [y, "p1/a_pre"], ["p1/ay"], name="/prelu1/ay"),
            helper.make_node("Max", [y, "p1/ay"], [out], name="/prelu1/max"),
        ],
        after=pool.name,
        extra=[
            helper.make_node("Mul", ["p1/pooled", "p1/b_post"], ["p1/bz"], name="/p1post/mul"),
            helper.make_node("Min", ["p1/pooled", "p1/bz"], [pooled], name="/p1post/min"),
        ],
    )


VARIANTS = {"pnet": [softmax, pad16, relu, split], "rnet": [relu, split]}


def _session(path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _scores(name: str, out: list) -> list:
    # Compare like with like: PNet's face probability whichever head gives it.
    if name == "pnet":
        reg, head = out
        prob = head[:, 1] if head.shape[1] == 2 else 1 / (1 + np.exp(-head[:, 0]))
        return [reg, prob]
    return out


def main(argv=None) -> int:
    """Build the variants in a temporary folder, time each and print one line a variant and round."""
    import onnx

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    inputs = {
        "pnet": rng.uniform(-1, 1, (1, 3, 461, 615)).astype(np.float32),
        "rnet": rng.uniform(-1, 1, (32, 3, 24, 24)).astype(np.float32),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for net, variants in VARIANTS.items():
            shipped = M.MODELS_DIR / M.FILES[net]
            sessions = {"shipped": _session(shipped)}
            for v in variants:
                model = onnx.load(str(shipped))
                v(model)
                onnx.checker.check_model(model)
                path = Path(tmp) / f"{net}_{v.__name__}.onnx"
                onnx.save(model, str(path))
                sessions[v.__name__] = _session(path)
            x = inputs[net]
            ref = _scores(net, sessions["shipped"].run(None, {"image": x}))
            for r in range(args.rounds):
                for name, sess in sessions.items():
                    sess.run(None, {"image": x})
                    times = []
                    for _ in range(15):
                        t0 = time.thread_time()
                        out = sess.run(None, {"image": x})
                        times.append(time.thread_time() - t0)
                    diff = max(
                        float(np.abs(a - b).max()) for a, b in zip(_scores(net, out), ref, strict=True)
                    )
                    print(
                        f"{net} {tuple(x.shape)} round {r + 1} {name:8} {1000 * np.median(times):7.2f} CPU ms "
                        f"(median of 15)  max |diff| {diff:.1e}"
                    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
