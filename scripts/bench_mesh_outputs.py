"""What the attention mesh's outputs cost: CPU ms a crop of the shipped facemesh_attention.onnx against
the same graph pruned to fewer outputs (onnx.utils.extract_model into a temporary folder), one
onnxruntime thread, as attention68 runs it (ORT_ENABLE_ALL, a batch of 3 faces and their mirrors).

Rows: the shipped file asked for every output; the shipped file asked for the four the 68 points read
(mesh, lips and the two eyes: the irises and face_flag feed neither the 478 -> 68 table nor the jaw);
the graph without face_flag; the graph without face_flag and the irises. Each round runs every row
once, in turn, so that load from outside falls on all of them alike; the median and the best of the
rounds are printed, with the largest difference of the pruned graphs' points from the shipped one's.

    python scripts/bench_mesh_outputs.py [--rounds 100] [--batch 6]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ALL = ["mesh", "lips", "left_eye", "right_eye", "left_iris", "right_iris", "face_flag"]
FOR_68 = ["mesh", "lips", "left_eye", "right_eye"]


def session(path: Path):
    """A session as app/annotators/session.py builds it (one thread, every graph optimisation)."""
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.intra_op_num_threads, o.inter_op_num_threads = 1, 1
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])


def main(argv=None) -> int:
    """Print CPU ms a crop per row (median and best of the rounds) and the pruned graphs' point differences."""
    from onnx.utils import extract_model

    from app.annotators.mesh478 import MODEL_PATH

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=100, help="timed rounds (default 100)")
    p.add_argument("--batch", type=int, default=6, help="crops a call (default 6: 3 faces and their mirrors)")
    args = p.parse_args(argv)
    x = np.random.default_rng(0).random((args.batch, 3, 192, 192), dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="oiap-mesh-outputs-") as tmp:
        pruned = {}
        for name, outs in (("without face_flag", ALL[:-1]), ("without face_flag and the irises", FOR_68)):
            path = Path(tmp) / f"{len(outs)}.onnx"
            extract_model(str(MODEL_PATH), str(path), ["image"], outs)
            pruned[name] = (session(path), outs)
        full = session(MODEL_PATH)
        rows = {"shipped, every output": (full, ALL), "shipped, the four the 68 points read": (full, FOR_68)}
        rows |= pruned
        ref = dict(zip(ALL, full.run(ALL, {"image": x}), strict=True))
        times: dict[str, list[float]] = {k: [] for k in rows}
        for _ in range(args.rounds):
            for k, (sess, outs) in rows.items():
                t0 = time.process_time()
                sess.run(outs, {"image": x})
                times[k].append(1000 * (time.process_time() - t0) / args.batch)
        print(f"CPU ms a crop, batch {args.batch}, {args.rounds} rounds: median, best")
        for k, v in times.items():
            sess, outs = rows[k]
            got = dict(zip(outs, sess.run(outs, {"image": x}), strict=True))
            diff = max(float(np.abs(got[o] - ref[o]).max()) for o in FOR_68)
            print(f"{k:<40} {np.median(v):6.3f} {min(v):6.3f}   max |points - shipped| {diff:.1e} px")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
