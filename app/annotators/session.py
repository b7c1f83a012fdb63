"""The annotators' one onnxruntime session cache: a CPU session per (model file, intra-op threads),
built on first use and shared by every thread of the process (onnxruntime's run() is thread-safe)."""

import threading
from pathlib import Path

_sessions: dict = {}
_lock = threading.Lock()


def default_threads() -> int:
    """intra-op threads for onnxruntime: 1. Parallelism comes from bulk-annotate's workers; on a busy
    2-core server, spinning intra-op threads measured twice the CPU per image."""
    return 1


def session(path: str | Path, threads: int | None = None):
    """An onnxruntime CPU session for a file, built once per process (and thread count)."""
    import onnxruntime as ort

    key = (str(path), threads or default_threads())
    with _lock:
        if key not in _sessions:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = key[1]
            opts.inter_op_num_threads = 1
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            _sessions[key] = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return _sessions[key]
