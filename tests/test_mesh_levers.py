"""Issue 22's last levers on the given-box 68-point path: the attention mesh's export made
byte-reproducible (tf2onnx's unk__N dims named), what its unused outputs cost
(scripts/bench_mesh_outputs.py), and mirror averaging gated by yaw (scripts/eval_mirror_gate.py)."""

import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper

from app.paths import REPO_ROOT
from tests.conftest import load_script


def _graph(first_unk: int) -> onnx.ModelProto:
    """A one-node graph whose dims tf2onnx-style are numbered from first_unk."""
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [f"unk__{first_unk}", 3])
    y = helper.make_tensor_value_info("mesh", TensorProto.FLOAT, [f"unk__{first_unk + 1}", "batch"])
    g = helper.make_graph([helper.make_node("Identity", ["image"], ["mesh"])], "g", [x], [y])
    return helper.make_model(g, producer_name="t")


def test_unknown_dims_get_the_same_names_whatever_tf2onnx_numbered_them():
    npm_tfjs = load_script("npm_tfjs")
    a, b = _graph(4723), _graph(4725)
    assert a.SerializeToString() != b.SerializeToString()
    for m in (a, b):
        npm_tfjs.name_unknown_dims(m)
    assert a.SerializeToString(deterministic=True) == b.SerializeToString(deterministic=True)
    dims = [
        [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in (*a.graph.input, *a.graph.output)
    ]
    # A name tf2onnx did not generate stays; nothing is called equal that tf2onnx did not call equal.
    assert dims == [["image_0", 3], ["mesh_0", "batch"]]


def test_the_shipped_mesh_has_no_generated_dim_names():
    from app.annotators.mesh478 import MODEL_PATH

    m = onnx.load(str(MODEL_PATH), load_external_data=False)
    names = [d.dim_param for v in (*m.graph.input, *m.graph.output) for d in v.type.tensor_type.shape.dim]
    assert "image_0" in names and not [n for n in names if n.startswith("unk__")]


def test_pruning_the_outputs_the_68_points_do_not_read_changes_no_point():
    out = subprocess.run(
        [sys.executable, "scripts/bench_mesh_outputs.py", "--rounds", "2", "--batch", "2"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if "max |points - shipped|" in line]
    assert len(rows) == 4 and all(line.endswith("0.0e+00 px") for line in rows), out.stdout


def test_mirror_gate_mirrors_only_faces_at_or_over_the_threshold():
    gate = load_script("eval_mirror_gate")
    # yaw proxy, NME with the mirror, NME without
    r = np.array([[0.01, 0.05, 0.04], [0.30, 0.05, 0.07]])
    assert gate.gated(r, 0.0) == 0.05 and gate.gated(r, float("inf")) == np.mean([0.04, 0.07])
    assert gate.gated(r, 0.1) == np.mean([0.04, 0.05])
    assert gate.yaw_proxy([[0, 0], [10, 0], [5, 5], [2, 9], [8, 9]]) == 0.0
    help_ = subprocess.run(
        [sys.executable, "scripts/eval_mirror_gate.py", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert help_.returncode == 0 and "usage" in help_.stdout
