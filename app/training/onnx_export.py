"""Export a torch net to ONNX and check that onnxruntime gives what torch gives (assert_allclose)."""

import warnings
from pathlib import Path

import numpy as np
import torch

OPSET = 17


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
    """Export net (eval mode, on CPU) with a dynamic batch; onnx.checker, then parity on random input
    of two batch sizes; raises AssertionError on a mismatch. Returns the largest difference seen."""
    import onnx
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
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
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
