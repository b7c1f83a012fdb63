"""Export MTCNN's PNet, RNet and ONet to ONNX from facenet-pytorch 2.6.0's weight files, checked against torch.

PNet's two-way softmax is replaced by its one number that matters, the face logit z1 - z0 (prob =
sigmoid(logit)): one 1x1 conv instead of a 2-channel conv and a Softmax over the biggest maps of the
detector (a 615x461 level: 29 -> 25 CPU ms), and the threshold is a compare on the logit.

Get the weights (MIT, only the three .pt files are used; never committed):
    pip download --no-deps facenet-pytorch==2.6.0 -d /tmp/fp && unzip -o /tmp/fp/*.whl 'facenet_pytorch/data/*' -d /tmp/fp
    python scripts/export_mtcnn.py --weights /tmp/fp/facenet_pytorch/data
"""

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# name: (input shape for tracing, output names, dynamic axes of the input)
SPECS = {
    "pnet": ((1, 3, 64, 80), ["reg", "prob"], {0: "batch", 2: "height", 3: "width"}),
    "rnet": ((2, 3, 24, 24), ["reg", "prob"], {0: "batch"}),
    "onet": ((2, 3, 48, 48), ["reg", "landmarks", "prob"], {0: "batch"}),
}


def pnet_face_logit(model) -> None:
    """Replace PNet's conv4_1 (2 channels) and Softmax in place by one 1x1 conv whose single channel is
    z1 - z0 (weights and bias differenced): output "face_logit", prob of a face = sigmoid(face_logit)."""
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    inits = {i.name: i for i in g.initializer}
    softmax = next(n for n in g.node if n.op_type == "Softmax")
    conv = next(n for n in g.node if n.output[0] == softmax.input[0])
    w, b = (numpy_helper.to_array(inits[n]) for n in conv.input[1:])
    for name in conv.input[1:]:
        g.initializer.remove(inits[name])
    g.initializer.extend(
        [
            numpy_helper.from_array((w[1:2] - w[0:1]).astype(np.float32), "face.weight"),
            numpy_helper.from_array((b[1:2] - b[0:1]).astype(np.float32), "face.bias"),
        ]
    )
    head = helper.make_node(
        "Conv",
        [conv.input[0], "face.weight", "face.bias"],
        ["face_logit"],
        name="/face/Conv",
        kernel_shape=[1, 1],
    )
    nodes = [n for n in g.node if n is not conv and n is not softmax] + [head]
    del g.node[:]
    g.node.extend(nodes)
    prob = next(o for o in g.output if o.name == "prob")
    g.output.remove(prob)
    g.output.append(
        helper.make_tensor_value_info(
            "face_logit", TensorProto.FLOAT, ["batch", 1, "out_height", "out_width"]
        )
    )


def export_one(name: str, weights: Path, out_dir: Path, opset: int) -> Path:
    """Export one net (PRelu rewritten by fast_prelu), run onnx.checker and compare onnxruntime with torch on random and odd-sized input."""
    import onnxruntime as ort
    import torch

    from app.training.mtcnn_nets import load_net
    from app.training.onnx_export import finish_export

    net = load_net(name, weights / f"{name}.pt")
    shape, outputs, dyn = SPECS[name]
    dummy = torch.randn(*shape)
    out = out_dir / f"{name}.onnx"
    dynamic_axes = {"image": dyn} | {o: {0: "batch"} for o in outputs}
    if name == "pnet":
        dynamic_axes |= {o: {0: "batch", 2: "out_height", 3: "out_width"} for o in outputs}
    torch.onnx.export(
        net,
        (dummy,),
        str(out),
        input_names=["image"],
        output_names=outputs,
        dynamic_axes=dynamic_axes,
        opset_version=opset,
        dynamo=False,
    )
    finish_export(out)
    if name == "pnet":
        import onnx

        model = onnx.load(str(out))
        pnet_face_logit(model)
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, str(out))
        outputs = ["reg", "face_logit"]
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    tests = [shape, (5,) + shape[1:]]
    if name == "pnet":
        tests += [(1, 3, 12, 12), (3, 3, 101, 77), (1, 3, 615, 410)]
    for s in tests:
        x = rng.uniform(-1, 1, size=s).astype(np.float32)
        with torch.no_grad():
            ref = [t.numpy() for t in net(torch.from_numpy(x))]
        got = sess.run(outputs, {"image": x})
        if name == "pnet":  # the face logit against torch's softmax: sigmoid(z1 - z0) = its channel 1
            got[1] = 1 / (1 + np.exp(-got[1][:, 0]))
            ref[1] = ref[1][:, 1]
        for o, r, g in zip(outputs, ref, got, strict=True):
            np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5, err_msg=f"{name}.{o} at {s}")
    return out


def main(argv=None) -> int:
    """Parse options and export the three nets."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, required=True, help="folder with pnet.pt, rnet.pt, onet.pt")
    p.add_argument("--out", type=Path, default=REPO / "app" / "annotators" / "models", help="output folder")
    p.add_argument("--opset", type=int, default=17)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    from app.models.registry import sha256_file

    for name in SPECS:
        path = export_one(name, args.weights, args.out, args.opset)
        print(
            f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}  {path.stat().st_size} bytes  sha256 {sha256_file(path)}  parity ok"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
