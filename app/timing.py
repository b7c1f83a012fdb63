"""Server time of every request, sent back as a Server-Timing header (read by scripts/bench_review.py)."""

import time

from flask import Flask, g


def init_timing(app: Flask) -> None:
    """Measure each request from the first before_request hook to after_request."""

    # Registered before the login hook, so the user lookup is part of the measured time.
    @app.before_request
    def start_timer():
        g.t0 = time.perf_counter()

    @app.after_request
    def server_timing(response):
        t0 = g.get("t0")
        if t0 is not None:
            response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - t0) * 1000:.3f}"
        return response
