"""gunicorn's threaded worker (gthread), noting when it hands each request to its thread pool, with a
shorter GIL switch interval.

`make run` and scripts/bench_review.py serve with `-k app.gunicorn_worker.TimedThreadWorker`. The
Server-Timing header then also says how long a request waited between gunicorn taking it off its
connection (the socket became readable) and the app starting on it: for a free thread, its turn for
the GIL, gunicorn's parsing and Flask's request setup (`queue`). Served otherwise (another worker
class, the test client) there is no `queue` figure.

One process serves every request with threads (DESIGN.md), so a request that arrives while another
thread runs Python waits for the GIL: up to the switch interval (CPython's default 5 ms) each time,
which was most of the rate + next p99. The worker sets it to OIAP_SWITCH_INTERVAL_MS (default 1 ms).
"""

import os
import sys
import time

from gunicorn.workers.gthread import ThreadWorker

from .timing import handed_over


def switch_interval() -> float:
    """The GIL switch interval in seconds, from OIAP_SWITCH_INTERVAL_MS (milliseconds, default 1)."""
    raw = os.environ.get("OIAP_SWITCH_INTERVAL_MS", "1")
    try:
        ms = float(raw)
    except ValueError:
        ms = -1.0
    if not 0 < ms <= 1000:
        raise SystemExit(
            f"OIAP_SWITCH_INTERVAL_MS is {raw!r}: give milliseconds between 0 and 1000, e.g. 1 (CPython's default is 5)"
        )
    return ms / 1000


class TimedThreadWorker(ThreadWorker):
    """ThreadWorker that records, per connection, when a request was handed to the thread pool."""

    def init_process(self):
        """Set the GIL switch interval in the worker process, then run as gthread does."""
        sys.setswitchinterval(switch_interval())
        super().init_process()

    def enqueue_req(self, conn):
        """Note the time, then queue the connection for a thread as gthread does."""
        conn.oiap_handed_at = time.perf_counter()
        super().enqueue_req(conn)

    def handle_request(self, req, conn):
        """Handle the request with its hand-over time visible to app.timing (this thread only)."""
        handed_over.at = getattr(conn, "oiap_handed_at", None)
        try:
            return super().handle_request(req, conn)
        finally:
            handed_over.at = None
