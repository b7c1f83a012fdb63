"""Export MediaPipe's face mesh (face_landmark.tflite, Apache-2.0) to ONNX through our torch rebuild.

Get the .tflite (only that file is used; it is not committed):
    pip download --no-deps mediapipe==0.10.21 --python-version 3.11 --only-binary=:all: \
        --platform manylinux_2_28_x86_64 -d /tmp/mp
    unzip -o /tmp/mp/mediapipe-*.whl mediapipe/modules/face_landmark/face_landmark.tflite -d /tmp/mp
    python scripts/export_facemesh.py --tflite /tmp/mp/mediapipe/modules/face_landmark/face_landmark.tflite

Checks: torch against ai-edge-litert's interpreter on the .tflite, and onnxruntime against torch
(np.testing.assert_allclose), on random input and on a real face crop.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def inputs() -> list[np.ndarray]:
    """NCHW [0, 1] test inputs: random batches and a face crop from a dev photo."""
    from app.annotators.facemesh68 import crop_faces
    from app.annotators.template68 import five_from_68
    from app.images.decode import load_rgb
    from app.imports.dlib_xml import load_faces
    from app.models.eval68 import DEMO_DATA

    rng = np.random.default_rng(0)
    all_faces = load_faces(DEMO_DATA / "training_with_face_landmarks.xml")
    faces = [f for f in all_faces if f.file == all_faces[0].file]
    img = load_rgb(DEMO_DATA / faces[0].file)
    crops, _ = crop_faces(img, [five_from_68(f.points) for f in faces])
    return [
        rng.random((1, 3, 192, 192), dtype=np.float32),
        rng.random((3, 3, 192, 192), dtype=np.float32),
        crops,
    ]


def litert_run(tflite_path: Path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run the original .tflite one image at a time with ai-edge-litert (NHWC)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(tflite_path))
    it.allocate_tensors()
    mesh, score = [], []
    for img in x:
        it.set_tensor(it.get_input_details()[0]["index"], img.transpose(1, 2, 0)[None])
        it.invoke()
        out = {d["name"]: it.get_tensor(d["index"]) for d in it.get_output_details()}
        mesh.append(out["conv2d_21"].reshape(-1))
        score.append(out["conv2d_31"].reshape(-1))
    return np.stack(mesh), np.stack(score)


def main(argv=None) -> int:
    """Build the torch net from the .tflite, check it against LiteRT, export ONNX, check it against torch."""
    import onnxruntime as ort
    import torch

    from app.annotators.facemesh68 import MODEL_PATH
    from app.training.facemesh import FaceMesh, load_tflite_weights
    from app.training.onnx_export import finish_export

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tflite", type=Path, required=True)
    p.add_argument("--out", type=Path, default=MODEL_PATH)
    p.add_argument("--opset", type=int, default=17)
    args = p.parse_args(argv)

    net = load_tflite_weights(FaceMesh(), str(args.tflite))
    xs = inputs()
    for x in xs:
        with torch.no_grad():
            mesh, score = (t.numpy() for t in net(torch.from_numpy(x)))
        ref_mesh, ref_score = litert_run(args.tflite, x)
        # Mesh values are crop pixels (0..192): 1e-3 px is far below a pixel.
        np.testing.assert_allclose(mesh, ref_mesh, rtol=1e-5, atol=1e-3, err_msg="torch vs litert mesh")
        np.testing.assert_allclose(score, ref_score, rtol=1e-5, atol=1e-4, err_msg="torch vs litert score")
    print(f"torch == litert on {len(xs)} inputs")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        net,
        (torch.from_numpy(xs[0]),),
        str(args.out),
        input_names=["image"],
        output_names=["mesh", "face_logit"],
        dynamic_axes={"image": {0: "batch"}, "mesh": {0: "batch"}, "face_logit": {0: "batch"}},
        opset_version=args.opset,
        # Folded: the PReLU slopes become (C, 1, 1) initializers (under generated names; the other
        # weights keep their torch names) and the channel pads' shape arithmetic becomes constants,
        # so fast_prelu can rewrite every PRelu (onnxruntime's per-channel PRelu is slow on batches).
        do_constant_folding=True,
        dynamo=False,
    )
    finish_export(args.out)
    sess = ort.InferenceSession(str(args.out), providers=["CPUExecutionProvider"])
    for x in xs:
        with torch.no_grad():
            ref = [t.numpy() for t in net(torch.from_numpy(x))]
        got = sess.run(["mesh", "face_logit"], {"image": x})
        for r, g in zip(ref, got, strict=True):
            np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-3, err_msg="onnxruntime vs torch")
    from app.models.registry import sha256_file

    print(f"{args.out}  {args.out.stat().st_size} bytes  sha256 {sha256_file(args.out)}  parity ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
