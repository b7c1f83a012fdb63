"""Which engine `bulk-annotate` runs on when none is named (`--engine auto`, the default): worker
processes where they pay for their start, threads where they do not.

Worker processes run the chain's Python (decoding, MTCNN's crops and NMS, the mesh's crops) on every
core instead of taking turns on the GIL, but they cost CPU to start (spawn, imports, onnxruntime
sessions: two workers about 1.5 CPU-seconds when this was chosen, about 0.6 since they import neither
Flask nor the store). With one usable CPU or one worker there is nothing to win; on 2 cores the
fastest chain (68 points on given boxes) is level on both engines from about 300 images, the 68-point
chain with detection much sooner (README, Bulk annotation). So: processes from PROCESS_FROM_IMAGES
images left to do, more than one
usable CPU and more than one worker; else threads. `BULK_PROCESS_FROM_IMAGES` in the config overrides
the count (OIAP_BULK_PROCESS_FROM_IMAGES=N in the environment).
"""

import os

from ..errors import InvalidInput

PROCESS_FROM_IMAGES = 500
CHOICES = ("auto", "local", "process", "ray")


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. under taskset or a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def choose_engine(engine: str, images: int, workers: int, config=None, cpus: int | None = None) -> str:
    """The engine to run: `engine` itself unless it is "auto", then "process" or "local" (see above)."""
    if engine not in CHOICES:
        raise InvalidInput(f"--engine is one of {', '.join(CHOICES)}, not {engine!r}")
    if engine != "auto":
        return engine
    threshold = int((config or {}).get("BULK_PROCESS_FROM_IMAGES", PROCESS_FROM_IMAGES))
    cpus = usable_cpus() if cpus is None else cpus
    return "process" if cpus > 1 and workers > 1 and images >= threshold else "local"
