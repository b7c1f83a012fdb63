"""gunicorn's threaded worker (gthread), noting when it hands each request to its thread pool.

`make run` and scripts/bench_review.py serve with `-k app.gunicorn_worker.TimedThreadWorker`. The
Server-Timing header then also says how long a request waited between gunicorn taking it off its
connection (the socket became readable) and the app starting on it: for a free thread, its turn for
the GIL, gunicorn's parsing and Flask's request setup (`queue`). Served otherwise (another worker
class, the test client) there is no `queue` figure.

It also shortens the GIL's switch interval in the serving process from Python's 5 ms to 1 ms
(SWITCH_INTERVAL_S). A rating's write transaction gives the GIL up at each of its dozen SQLite
statements and has to win it back each time; while another thread renders a page, each win can take
up to the interval, and every writer queued on the write lock waits that long too. Measured
(`scripts/bench_review.py --reviewers 20 --think 0.5 --rates 150`, 1 M annotations, four runs
alternated, load 0.5-1.0): p99 of rate + next 17.2 and 23.3 ms at 1 ms against 21.1 and 26.7 ms at 5 ms, max 30
and 43 against 69 and 87 ms.
"""

import sys
import time

from gunicorn.workers.gthread import ThreadWorker

from .timing import handed_over

SWITCH_INTERVAL_S = 0.001


class TimedThreadWorker(ThreadWorker):
    """ThreadWorker that records, per connection, when a request was handed to the thread pool."""

    def init_process(self):
        """Set the serving process's GIL switch interval, then run the worker as gthread does."""
        sys.setswitchinterval(SWITCH_INTERVAL_S)
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
