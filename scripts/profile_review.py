#!/usr/bin/env python
"""Profile one "rate + next item" request end to end, in process, on a store built by bench_review.py.

One reviewer, no concurrency: what a single request costs, split into phases (before_request hooks:
session + user load; the write transaction: rate + claim next; the item queries and rendering;
after_request), then the cProfile top functions. Run it on a kept store:

    python scripts/bench_review.py --store /tmp/bench-1m --rates 10   # builds the store once
    python scripts/profile_review.py --store /tmp/bench-1m [--n 500] [--top 30]
"""

import argparse
import cProfile
import io
import os
import pstats
import re
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PASSWORD = "bench password 123"
TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
ITEM = re.compile(r'id="review-item"[^>]*data-annotation-id="(\d+)"')
CURSOR = re.compile(r'name="cursor" value="([^"]+)"')


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", type=Path, required=True, help="instance folder built by bench_review.py")
    ap.add_argument("--n", type=int, default=500, help="rate + next requests to time (default 500)")
    ap.add_argument("--top", type=int, default=35, help="cProfile rows to print (default 35)")
    ap.add_argument("--user", default="bench0", help="reviewer account (default bench0)")
    args = ap.parse_args()
    os.environ["OIAP_INSTANCE"] = str(args.store.resolve())
    # In the OS page cache first, as bench_review does: a cold page costs a disk read, not CPU.
    with open(args.store / "oiap.sqlite3", "rb") as f:
        while f.read(1 << 24):
            pass

    from flask import g

    from app import create_app
    from app import db as dbmod
    from app.review import queries, views

    app = create_app()
    phases: dict[str, list[float]] = {}

    def timed(name, fn):
        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                phases.setdefault(name, []).append((time.perf_counter() - t0) * 1000)

        return wrapper

    # Phases: wrap the functions the rate view calls, by name, without changing them.
    queries.rate_and_claim_next = timed("write txn: rate + claim next", queries.rate_and_claim_next)
    views.get_set_with_model = timed("get_set_with_model", views.get_set_with_model)
    views._context = timed("item queries + drawing (_context)", views._context)
    views._render = timed("template render (_render)", views._render)

    # Each before_request hook, timed apart (Flask calls them in this order).
    for bp_name, funcs in app.before_request_funcs.items():
        funcs[:] = [timed(f"  hook {bp_name or 'app'}.{f.__name__}", f) for f in funcs]
    app.session_interface.open_session = timed(
        "session open (before the span)", app.session_interface.open_session
    )
    app.session_interface.save_session = timed(
        "session save (after the span)", app.session_interface.save_session
    )

    @app.before_request
    def _t_after_hooks():  # registered last: runs after timing, login, csrf, limiter hooks
        g.t_hooks = time.perf_counter()

    @app.after_request
    def _t_after(resp):
        t_end = time.perf_counter()
        if "t0" in g and "t_hooks" in g:
            phases.setdefault("before_request hooks (session, user, csrf)", []).append(
                (g.t_hooks - g.t0) * 1000
            )
            phases.setdefault("total (Server-Timing span)", []).append((t_end - g.t0) * 1000)
        return resp

    # Every statement through sqlite_utils' Database.execute, timed by its SQL text.
    from sqlite_utils import Database

    sql_times: dict[str, list[float]] = {}
    orig_execute = Database.execute

    def execute(self, sql, parameters=None):
        t0 = time.perf_counter()
        try:
            return orig_execute(self, sql, parameters)
        finally:
            sql_times.setdefault(" ".join(sql.split())[:110], []).append((time.perf_counter() - t0) * 1000)

    Database.execute = execute
    client = app.test_client()
    html = client.get("/login").get_data(as_text=True)
    r = client.post(
        "/login",
        data={"username": args.user, "password": PASSWORD, "csrf_token": TOKEN.search(html).group(1)},
    )
    assert r.status_code == 302, r.status_code
    set_id = (
        dbmod.connect(app.config["DATABASE"])
        .execute("SELECT id FROM annotation_sets WHERE name = 'bench-landmarks68'")
        .fetchone()[0]
    )
    html = client.get(f"/review/{set_id}").get_data(as_text=True)
    token = TOKEN.search(html).group(1)
    hx = {"HX-Request": "true", "HX-Target": "review-item", "X-CSRFToken": token}

    def one(value="good"):
        nonlocal html
        body = {
            "annotation_id": ITEM.search(html).group(1),
            "cursor": CURSOR.search(html).group(1),
            "value": value,
        }
        resp = client.post(
            f"/review/{set_id}/rate",
            data=urlencode(body),
            headers=hx,
            content_type="application/x-www-form-urlencoded",
        )
        assert resp.status_code == 200, resp.status_code
        html = resp.get_data(as_text=True)
        return resp.headers.get("Server-Timing")

    for _ in range(30):
        one()
    phases.clear()
    sql_times.clear()
    walls = []
    for i in range(args.n):
        t0 = time.perf_counter()
        one("good" if i % 2 else "bad")
        walls.append((time.perf_counter() - t0) * 1000)
    print(f"{args.n} rate + next requests, one reviewer in process (test client, no gunicorn)")
    print(
        f"  {'test client round trip':<46} mean {statistics.fmean(walls):6.3f}  p50 {statistics.median(walls):6.3f} ms"
    )
    for name, v in phases.items():
        print(f"  {name:<46} mean {statistics.fmean(v):6.3f}  p50 {statistics.median(v):6.3f} ms")

    print("  statements (db.execute, per request):")
    for sql, v in sorted(sql_times.items(), key=lambda kv: -sum(kv[1])):
        print(f"    {sum(v) / args.n:6.3f} ms  x{len(v) / args.n:.1f}  {sql}")
    prof = cProfile.Profile()
    prof.enable()
    for i in range(args.n):
        one("good" if i % 2 else "bad")
    prof.disable()
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(args.top)
    print(s.getvalue())
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(args.top)
    print(s.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
