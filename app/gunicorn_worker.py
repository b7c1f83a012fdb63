"""gunicorn's threaded worker (gthread), noting when it hands each request to its thread pool.

`make run` and scripts/bench_review.py serve with `-k app.gunicorn_worker.TimedThreadWorker`. The
Server-Timing header then also says how long a request waited between gunicorn taking it off its
connection (the socket became readable) and the app starting on it: for a free thread, its turn for
the GIL, gunicorn's parsing and Flask's request setup (`queue`). Served otherwise (another worker
class, the test client) there is no `queue` figure.
"""

import time

from gunicorn.workers.gthread import ThreadWorker

from .timing import handed_over


class TimedThreadWorker(ThreadWorker):
    """ThreadWorker that records, per connection, when a request was handed to the thread pool."""

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
