"""CPU time per face of the default 68-point annotator (facemesh68) and of a mesh head on it, on the
testing file's photos and true boxes (the head: a random K=16 head on 468 vertices, the shape of a
trained one; what it computes does not change its cost).

    python scripts/bench_meshhead.py --repeats 5
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="passes over the 25 faces; the minimum is printed")
    args = ap.parse_args()

    from app.annotators.facemesh68 import FaceMeshLandmarks68
    from app.annotators.meshhead68 import MeshHead68
    from app.imports.dlib_xml import load_faces
    from app.models.eval68 import DEMO_DATA, load_rgb
    from app.training import meshhead

    faces = load_faces(DEMO_DATA / "testing_with_face_landmarks.xml")
    by_file: dict[str, list] = {}
    for f in faces:
        by_file.setdefault(f.file, []).append(f.box)
    images = [(load_rgb(DEMO_DATA / name), boxes) for name, boxes in by_file.items()]
    base = FaceMeshLandmarks68()
    rng = np.random.default_rng(0)
    head = {
        "neighbours": np.argsort(rng.random((68, 468)), 1)[:, :16],
        "a": rng.normal(0, 0.01, (68, 16, 2, 2)),
        "b": np.zeros((68, 2)),
    }
    weight, bias = meshhead.matrices(head, 468)
    with tempfile.TemporaryDirectory() as tmp:
        meshhead.export_head(weight, bias, 468, Path(tmp) / "head.onnx")
        annotators = {
            "facemesh68 (default)": base,
            "meshhead68 on it": MeshHead68(Path(tmp) / "head.onnx", base),
        }
        for a in annotators.values():  # warm up: sessions built, caches filled
            for img, boxes in images:
                a.predict_many(img, boxes)
        best = {}
        for _ in range(args.repeats):
            for name, a in annotators.items():
                t0 = time.process_time()
                for img, boxes in images:
                    a.predict_many(img, boxes)
                ms = (time.process_time() - t0) / len(faces) * 1000
                best[name] = min(best.get(name, ms), ms)
    for name, ms in best.items():
        print(f"{name:<22} {ms:.3f} ms CPU per face (min of {args.repeats})")


if __name__ == "__main__":
    main()
