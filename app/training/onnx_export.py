"""Export a torch net to ONNX and check that onnxruntime gives what torch gives (assert_allclose)."""

import warnings
from pathlib import Path

import numpy as np
import torch

OPSET = 17


def fast_prelu(model) -> None:
    """Rewrite each PRelu node in place as the same function in ops onnxruntime runs fast.

    onnxruntime 1.32 runs PRelu with a per-channel slope on a batch through a slow broadcast (44% of
    RNet's time at batch 64, 36% of ONet's at 16; at batch 1 it is fast, so only batched runs suffered).
    With every slope a <= 1, PRelu(y) = Max(y, a*y) exactly; otherwise y + (a-1)*Min(y, 0) (equal up
    to rounding; of the forms tried, Relu(y) + a*Min(y, 0) and a*y + (1-a)*Relu(y), the fastest).
    The slope Mul reads the slope initializer (or a-1, stored as "<slope>/minus_one" in its place) and
    is named "<prelu>/mul_slope", so prelu_slopes reads the slopes back.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    nodes = []
    zero = None
    for n in graph.node:
        if n.op_type != "PRelu":
            nodes.append(n)
            continue
        (y, a), out, p = n.input, n.output[0], n.name
        if inits[a].max() <= 1:
            nodes += [
                helper.make_node("Mul", [y, a], [f"{p}/ay"], name=f"{p}/mul_slope"),
                helper.make_node("Max", [y, f"{p}/ay"], [out], name=f"{p}/max"),
            ]
            continue
        if zero is None:
            zero = "prelu/zero"
            graph.initializer.append(numpy_helper.from_array(np.zeros((), np.float32), zero))
        am1 = f"{a}/minus_one"
        graph.initializer.append(numpy_helper.from_array((inits[a] - 1).astype(np.float32), am1))
        nodes += [
            helper.make_node("Min", [y, zero], [f"{p}/neg"], name=f"{p}/min"),
            helper.make_node("Mul", [f"{p}/neg", am1], [f"{p}/corr"], name=f"{p}/mul_slope"),
            helper.make_node("Add", [y, f"{p}/corr"], [out], name=f"{p}/add"),
        ]
    del graph.node[:]
    graph.node.extend(nodes)
    # The slopes replaced by their a-1 would be unused initializers (onnxruntime warns of them).
    used = {i for n in graph.node for i in n.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)


def prelu_slopes(model) -> dict[str, np.ndarray]:
    """The PReLU slopes of an exported model by initializer name, in graph order, from PRelu nodes or
    fast_prelu's Muls."""
    from onnx import numpy_helper

    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    out = {}
    for n in model.graph.node:
        if n.op_type == "PRelu" or n.name.endswith("/mul_slope"):
            name = n.input[1]
            if name.endswith("/minus_one"):
                out[name.removesuffix("/minus_one")] = inits[name] + np.float32(1)
            else:
                out[name] = inits[name]
    return out


def onnx_state_dict(model, state: dict, where: str) -> dict[str, torch.Tensor]:
    """A state dict shaped like `state` from an exported ONNX model, to rebuild the torch net from the file.

    Weights are the initializers under their torch names, also through the Identity nodes by which the
    exporter names merged copies; the PReLU slopes, which the exporter stores reshaped under generated
    names, are matched to the names left over in graph order (prelu_slopes). InvalidInput naming
    `where` when the counts differ.
    """
    from onnx import numpy_helper

    from ..errors import InvalidInput

    arrays = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in arrays:
            arrays[node.output[0]] = arrays[node.input[0]]
    rest = [k for k in state if k not in arrays]
    # Slopes the exporter kept under their state dict name (dense layers' (C,)) are matched already.
    slopes = [v for k, v in prelu_slopes(model).items() if k not in state]
    if len(rest) != len(slopes):
        raise InvalidInput(f"{where}: {len(rest)} weights not found, {len(slopes)} PReLU slopes to match")
    arrays |= dict(zip(rest, slopes, strict=True))
    return {k: torch.from_numpy(arrays[k].copy()).reshape(v.shape) for k, v in state.items()}


def finish_export(path: str | Path) -> None:
    """Rewrite a freshly exported file's PRelu nodes (fast_prelu), save it, and run onnx.checker on it."""
    import onnx

    model = onnx.load(str(path))
    fast_prelu(model)
    onnx.save(model, str(path))
    onnx.checker.check_model(model, full_check=True)


def export_checked(
    net: torch.nn.Module,
    example_shape: tuple[int, ...],
    out: str | Path,
    output_names: list[str],
    *,
    rtol: float = 1e-4,
    atol: float = 1e-5,
    seed: int = 0,
) -> dict:
    """Export net (eval mode, on CPU) with a dynamic batch and PRelu rewritten by fast_prelu; onnx.checker,
    then parity on random input of two batch sizes; raises AssertionError on a mismatch. Returns the
    largest difference seen."""
    import onnxruntime as ort

    net = net.to("cpu").eval()
    dummy = torch.zeros(*example_shape)
    axes = {"image": {0: "batch"}} | {o: {0: "batch"} for o in output_names}
    # The TorchScript exporter (dynamo=False), as scripts/export_mtcnn.py uses: plain conv nets export
    # exactly and quickly with it, and initializers keep the state dict's names. torch 2.9+ warns that it
    # is legacy (and its internals warn of their own deprecations); the parity check below is what
    # vouches for the file.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            net,
            (dummy,),
            str(out),
            input_names=["image"],
            output_names=output_names,
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    finish_export(out)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    worst = 0.0
    for batch in (1, 5):
        x = rng.normal(size=(batch, *example_shape[1:])).astype(np.float32)
        with torch.no_grad():
            ref = net(torch.from_numpy(x))
        ref = [ref] if isinstance(ref, torch.Tensor) else list(ref)
        got = sess.run(output_names, {"image": x})
        for r, g in zip(ref, got, strict=True):
            np.testing.assert_allclose(g, r.numpy(), rtol=rtol, atol=atol)
            worst = max(worst, float(np.abs(g - r.numpy()).max()))
    return {"max_abs_diff": worst, "opset": OPSET}
