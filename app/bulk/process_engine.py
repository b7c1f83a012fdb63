"""The process engine of `flask oiap bulk-annotate --engine process`: the local engine's work in worker
processes instead of threads, so the Python parts of the chain (decoding, MTCNN's boxes and crops,
the mesh's ROIs) run on every core instead of taking turns on the GIL.

- Workers are started with `spawn` (no fork of a process holding SQLite connections and onnxruntime
  threads), each loads the run's models once (files verified by sha256, onnxruntime sessions with one
  intra-op thread) and runs the same Chain as the local engine on whole batches.
- This process keeps the selection and the store: it sends batches ahead (two per worker) and
  writes each batch's results in selection order through bulk.write_batch, in one `db.immediate()`
  transaction per batch, so a run is resumable (by any engine) exactly as the local engine's.
- Ctrl-C reaches the whole process group: workers ignore SIGINT and the parent stops them; the
  workers of a killed parent (kill -9) notice within a second and exit, and the run is resumed from
  its cursor like any other.
"""

import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

from .chain import ChainSpec, Timer

_chain = None


def _plain_config(config) -> dict:
    """The config entries a worker can receive (what pickles: paths, strings, numbers)."""
    out = {}
    for k, v in dict(config).items():
        try:
            pickle.dumps(v)
        except Exception:  # anything unpicklable (a live object) stays behind
            continue
        out[k] = v
    return out


def _start(spec: ChainSpec, config: dict) -> None:
    """Worker initialiser: ignore Ctrl-C (the parent handles it), leave when the parent dies, and
    load the run's models."""
    global _chain
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_orphan_watch, args=(os.getppid(),), daemon=True).start()
    _chain = spec.chain(config, 1)


def _orphan_watch(parent: int) -> None:
    """Exit once the parent is gone (kill -9): a worker waiting for its next batch would not notice,
    as each worker holds both ends of the pool's queue pipe itself."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _run(rows: list[dict]) -> tuple[list, dict, dict]:
    """One batch in a worker: (results, CPU seconds per stage, per MTCNN stage) of this batch alone."""
    results = _chain.run(rows)
    timer = dict(_chain.timer)
    _chain.timer.clear()
    detector = _chain.detector
    stages = {}
    if detector is not None and hasattr(detector, "profile"):
        stages = dict(detector.profile)
        detector.profile.clear()
    return results, timer, stages


class ProcessEngine:
    """Batches annotated by `workers` spawned processes, yielded in selection order."""

    def __init__(self, spec: ChainSpec, config, workers: int):
        self.spec = spec
        self.config = _plain_config(config)
        self.workers = workers
        self.timer = Timer()
        self.stages = Timer()

    def pool(self) -> ProcessPoolExecutor:
        """The worker pool: spawned processes, each with the run's chain loaded by _start."""
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start,
            initargs=(self.spec, self.config),
        )

    def results(self, batches: Iterator[list]) -> Iterator[tuple[list, list]]:
        """(rows, results) per batch, in order; closing the generator stops the workers."""
        pool = self.pool()
        inflight: deque = deque()
        try:
            while True:
                while len(inflight) < self.workers * 2:
                    rows = next(batches, None)
                    if rows is None:
                        break
                    inflight.append((rows, pool.submit(_run, rows)))
                if not inflight:
                    return
                rows, fut = inflight.popleft()
                results, timer, stages = fut.result()
                for k, v in timer.items():
                    self.timer.add(k, v)
                for k, v in stages.items():
                    self.stages.add(k, v)
                yield rows, results
        finally:
            for _, fut in inflight:
                fut.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    def profile(self) -> dict:
        """CPU seconds per stage, summed over the workers (and per MTCNN stage)."""
        return {k: round(v, 3) for k, v in self.timer.items()} | {
            f"detect.{k}": round(v, 3) for k, v in self.stages.items()
        }
