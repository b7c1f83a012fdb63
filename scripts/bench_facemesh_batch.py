"""Per-face time of facemesh.onnx by batch size, as facemesh68 runs it (one intra-op thread).

python scripts/bench_facemesh_batch.py [--model a.onnx --model b.onnx] [--sizes 1 4 8 19]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def per_face_ms(sess, x: np.ndarray, budget_s: float) -> float:
    """Median over repeats of one run's wall time divided by the batch size, in ms."""
    name = sess.get_inputs()[0].name
    sess.run(["mesh"], {name: x})  # warm-up
    times, t_end = [], time.perf_counter() + budget_s
    while time.perf_counter() < t_end or len(times) < 5:
        t0 = time.perf_counter()
        sess.run(["mesh"], {name: x})
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times)) / len(x)


def main(argv=None) -> int:
    """Print ms per face for each model and batch size."""
    import onnxruntime as ort

    from app.annotators.facemesh68 import MODEL_PATH

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, action="append")
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 8, 19])
    p.add_argument("--seconds", type=float, default=1.5, help="timing budget per model and size")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    x_all = rng.random((max(args.sizes), 3, 192, 192), dtype=np.float32)
    for model in args.model or [MODEL_PATH]:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        row = [f"batch {n}: {per_face_ms(sess, x_all[:n], args.seconds):.2f}" for n in args.sizes]
        print(f"{model}  ms/face  " + "  ".join(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
