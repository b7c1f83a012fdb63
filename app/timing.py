"""Server time of every request, sent back as a Server-Timing header (read by scripts/bench_review.py).

`app` is the wall time from the first before_request hook to after_request; `cpu` is the CPU time
the request's thread used in that span; `lock` is the time it waited for the write lock (app.db);
`held` is the time it held that lock (its write transactions, BEGIN to COMMIT), which the writers
queued behind it wait for.
On Linux `core` is the time the thread was ready to run but had no core (the kernel's run-queue
wait, /proc/thread-self/schedstat), which other processes on the machine cause, not this one.
What is left, app - cpu - lock - core, is time waiting for the GIL (or for the disk).
Served by app.gunicorn_worker.TimedThreadWorker, `queue` is the time before the app started on the
request: from gunicorn handing the readable connection to its thread pool, through the wait for a
free thread and the GIL, to the first before_request hook.
"""

import os
import threading
import time

from flask import Flask, g

from . import db

# Set by app.gunicorn_worker for the request its thread is handling: perf_counter() at hand-over.
handed_over = threading.local()
_sched = threading.local()


def run_queue_wait() -> float | None:
    """Seconds this thread has spent ready to run without a core (Linux; None elsewhere)."""
    fd = getattr(_sched, "fd", None)
    if fd is None:
        try:
            # Opened per thread: thread-self names the thread that opens it; pread then costs ~3 us.
            fd = _sched.fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
        except OSError:
            fd = _sched.fd = -1
    if fd < 0:
        return None
    try:
        return int(os.pread(fd, 64, 0).split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def init_timing(app: Flask) -> None:
    """Measure each request from the first before_request hook to after_request."""

    # Registered before the login hook, so the user lookup is part of the measured time.
    @app.before_request
    def start_timer():
        g.t0 = time.perf_counter()
        g.cpu0 = time.thread_time()
        g.rq0 = run_queue_wait()
        db.reset_lock_wait()

    @app.after_request
    def server_timing(response):
        t0 = g.get("t0")
        if t0 is not None:
            dur = (time.perf_counter() - t0) * 1000
            cpu = (time.thread_time() - g.cpu0) * 1000
            timing = f"app;dur={dur:.3f}, cpu;dur={cpu:.3f}, lock;dur={db.lock_wait() * 1000:.3f}"
            timing += f", held;dur={db.lock_held() * 1000:.3f}"
            rq0 = g.get("rq0")
            rq1 = run_queue_wait() if rq0 is not None else None
            if rq1 is not None:
                timing += f", core;dur={(rq1 - rq0) * 1000:.3f}"
            at = getattr(handed_over, "at", None)
            if at is not None:
                timing += f", queue;dur={(t0 - at) * 1000:.3f}"
            response.headers["Server-Timing"] = timing
        return response
