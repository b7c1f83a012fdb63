"""Where the 68-point stage's time goes on given boxes (bulk-annotate --boxes-from), lever by lever in
one run: CPU ms per face (this thread's time, one onnxruntime thread) on the bench images of
scripts/bench_annotate.py (--tiles 1: one dev photo upscaled to 1024x768, about 4.8 faces an image),
each face's box the reference box carried into the image.

Rows: ONet's five points on the boxes (one call an image); the mesh's crop by PIL's affine transform
(the earlier code) and by OpenCV's warp (mesh478.warp); the attention mesh one face a call and all of
an image's faces in one call; the whole stage (AttentionMesh68.predict_many) with RUN_BATCH 1 and the
default, and with 3, 8 and the default (mesh_mirror.FACES_PER_CALL) faces a mirror-averaged call; and the
mesh under onnxruntime's graph optimisation levels.

    python scripts/bench_mesh_stage.py [-n 40] [--repeats 3]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from app.annotators import mesh478, mesh_mirror  # noqa: E402
from app.annotators.attention68 import AttentionMesh68  # noqa: E402
from app.annotators.five_roi import onet_points5, roi_from_five  # noqa: E402


def pil_warp(pil: Image.Image, m: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The crop as mesh478 made it before OpenCV: PIL's bilinear affine transform on the whole photo,
    reduced first by int(scale // 2) from 4 image pixels a crop pixel."""
    scale = np.sqrt(abs(np.linalg.det(m)))
    factor = int(scale // 2) if scale >= 4 else 1
    if factor > 1:
        pil = pil.reduce(factor)
        m, t = m / factor, (t + 0.5) / factor - 0.5
    c = t + 0.5 - m @ np.array([0.5, 0.5])
    data = (m[0, 0], m[0, 1], c[0], m[1, 0], m[1, 1], c[1])
    out = pil.transform((192, 192), Image.Transform.AFFINE, data, Image.Resampling.BILINEAR)
    return np.asarray(out)


def timed(fn, images, repeats: int) -> float:
    """CPU seconds of fn(img, boxes) over the images, best of the repeats."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.thread_time()
        for img, boxes in images:
            fn(img, boxes)
        best = min(best, time.thread_time() - t0)
    return best


def main(argv=None) -> int:
    """Print CPU ms per face for each row."""
    import onnxruntime as ort
    from bench_annotate import make_images

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=40, help="images (default 40)")
    p.add_argument("--repeats", type=int, default=3, help="best of this many passes (default 3)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="oiap-mesh-") as tmp:
        paths, refs = make_images(Path(tmp), args.n, 1024, 1)
        images = [(np.asarray(Image.open(q).convert("RGB")), b) for q, b in zip(paths, refs, strict=True)]
    faces = sum(len(b) for _, b in images)
    fives = {id(img): onet_points5(img, boxes) for img, boxes in images}
    rois = {id(img): [roi_from_five(f) for f in fives[id(img)]] for img, _ in images}
    sess = mesh478.session(mesh478.MODEL_PATH)
    crops = {id(img): mesh478.crop_rois(img, rois[id(img)])[0] for img, _ in images}
    outs = list(mesh478.OUTPUTS)

    def per_face(x):
        for i in range(len(x)):
            sess.run(outs, {"image": x[i : i + 1]})

    def stage(batch):
        def run(img, boxes):
            mesh478.RUN_BATCH = batch
            AttentionMesh68().predict_many(img, boxes)

        return run

    def mirrored(faces_per_call):
        def run(img, boxes):
            mesh_mirror.FACES_PER_CALL = faces_per_call
            AttentionMesh68().predict_many(img, boxes)

        return run

    keep = mesh478.RUN_BATCH
    keep_mirror = mesh_mirror.FACES_PER_CALL
    rows = {
        "ONet five points (one call an image)": lambda img, b: onet_points5(img, b),
        "crop: PIL affine (before)": lambda img, b: [
            pil_warp(Image.fromarray(img), *mesh478.roi_transform(r)) for r in rois[id(img)]
        ],
        "crop: OpenCV warp (now, with the float NCHW)": lambda img, b: mesh478.crop_rois(img, rois[id(img)]),
        "attention mesh, one face a call": lambda img, b: per_face(crops[id(img)]),
        "attention mesh, an image's faces a call": lambda img, b: sess.run(outs, {"image": crops[id(img)]}),
        "whole stage, RUN_BATCH 1": stage(1),
        f"whole stage, RUN_BATCH {keep}": stage(keep),
    }
    # The default's last pass is mirror-averaged (mesh_mirror): its faces a call, the shipped one last.
    for k in sorted({3, 8} - {keep_mirror}) + [keep_mirror]:
        rows[f"whole stage, mirror, FACES_PER_CALL {k}"] = mirrored(k)
    for level in ("ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_ALL"):
        o = ort.SessionOptions()
        o.intra_op_num_threads, o.inter_op_num_threads = 1, 1
        o.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        s = ort.InferenceSession(str(mesh478.MODEL_PATH), o, providers=["CPUExecutionProvider"])
        rows[f"attention mesh, an image's faces a call, {level}"] = lambda img, b, s=s: s.run(
            outs, {"image": crops[id(img)]}
        )
    print(
        f"{len(images)} images, {faces} faces ({faces / len(images):.2f} an image); CPU ms per face, best of {args.repeats}"
    )
    try:
        for name, fn in rows.items():
            fn(*images[0])  # warm
            print(f"{name:<62} {1000 * timed(fn, images, args.repeats) / faces:7.2f}", flush=True)
    finally:
        mesh478.RUN_BATCH = keep
        mesh_mirror.FACES_PER_CALL = keep_mirror
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
