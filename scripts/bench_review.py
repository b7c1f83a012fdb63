#!/usr/bin/env python
"""Benchmark "rate + next item" on the review page: a store with 1 M annotations served by gunicorn
(as `make run`: one process x 8 threads), concurrent reviewers, server time from the Server-Timing header.

Each reviewer logs in, opens the review page of a 68-point set, then repeats: rate the item on screen
(the htmx POST that answers with the next item), then fetch a static file (the baseline, measured in
the same run under the same load). Prints p50/p90/p99/max of the server time of both, and the client
round trip. Target: p99 of rate + next under 10 ms.

    python scripts/bench_review.py                       # 1 M annotations, 8 reviewers, 400 rates each
    python scripts/bench_review.py --reviewers 20 --think 0.5   # the team target: 20 reviewers rating twice a second
    python scripts/bench_review.py --annotations 100000 --rates 100   # a quick run
    python scripts/bench_review.py --think 0.2        # reviewers who look 0.2 s at each item
    python scripts/bench_review.py --store /tmp/bench-1m   # build once (kept), reuse on later runs
    python scripts/bench_review.py --pin              # reviewers on one CPU, the server on the others
"""

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PASSWORD = "bench password 123"
FACES_PER_IMAGE = 5
# What `make run` serves with: one process, eight threads.
WORKERS, THREADS = 1, 8
TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
ITEM = re.compile(r'id="review-item"[^>]*data-annotation-id="(\d+)"')
CURSOR = re.compile(r'name="cursor" value="([^"]+)"')
TIMING = re.compile(r"app;dur=([\d.]+)")
CPU = re.compile(r"cpu;dur=([\d.]+)")
LOCK = re.compile(r"lock;dur=([\d.]+)")
HELD = re.compile(r"held;dur=([\d.]+)")
QUEUE = re.compile(r"queue;dur=([\d.]+)")
CORE = re.compile(r"core;dur=([\d.]+)")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build_store(instance: Path, n_annotations: int, n_reviewers: int) -> int:
    """Create the store: images, one face_landmarks68 model set of n annotations, reviewers; returns the set id."""
    from app.auth.users import create_user
    from app.db import connect, migrate, now
    from app.sets.queries import create_set

    instance.mkdir(parents=True, exist_ok=True)
    db = connect(str(instance / "oiap.sqlite3"))
    migrate(db)
    for i in range(n_reviewers):
        create_user(db, f"bench{i}", PASSWORD, "reviewer")
    set_id = create_set(db, "bench-landmarks68", "face_landmarks68", "model")
    db.conn.commit()
    t0 = time.perf_counter()
    rng = random.Random(1)
    # A few point layouts, shifted per face: realistic row sizes without a model.
    templates = [[(rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9)) for _ in range(68)] for _ in range(16)]
    created = now()
    n_images = -(-n_annotations // FACES_PER_IMAGE)
    conn = db.conn
    # Bulk load: no fsync, no foreign-key checks (the rows are consistent by construction), one
    # transaction, plain tuples, and the counters' insert trigger replaced by one UPDATE at the end.
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("PRAGMA cache_size = -1000000")
    trigger_sql = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'annotations_count_insert'"
    ).fetchone()[0]
    conn.execute("BEGIN")
    conn.execute("DROP TRIGGER annotations_count_insert")
    conn.executemany(
        "INSERT INTO images (id, split, path, width, height, licence, author, created_at)"
        " VALUES (?, ?, ?, 1024, 768, 'https://creativecommons.org/licenses/by/2.0/', ?, ?)",
        (
            (
                f"{i:016x}",
                ("train", "validation", "test")[i % 10 % 3],
                "app/demo_data/2008_002470.jpg",
                f"author {i}",
                created,
            )
            for i in range(n_images)
        ),
    )

    # 5 slots x 5 rows x 16 layouts: the point strings are made once, not a million times.
    points = {
        (slot, row, t): json.dumps(
            [
                [round(0.05 + 0.18 * slot + px * 0.15, 5), round(0.2 + 0.1 * row + py * 0.2, 5), 1]
                for px, py in templates[t]
            ],
            separators=(",", ":"),
        )
        for slot in range(FACES_PER_IMAGE)
        for row in range(5)
        for t in range(16)
    }

    def rows():
        for k in range(n_annotations):
            img, slot = divmod(k, FACES_PER_IMAGE)
            x0, y0 = 0.05 + 0.18 * slot, 0.2 + 0.1 * (img % 5)
            pts = points[slot, img % 5, k % 16]
            yield (
                set_id,
                f"{img:016x}",
                "face_landmarks68",
                "/m/0dzct",
                x0,
                y0,
                x0 + 0.15,
                y0 + 0.2,
                pts,
                rng.random(),
                created,
            )
            if k and k % 200_000 == 0:
                log(f"  {k:,} annotations ({time.perf_counter() - t0:.0f} s)")

    conn.executemany(
        "INSERT INTO annotations (set_id, image_id, kind, label, x0, y0, x1, y1, points, score, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows(),
    )
    conn.execute(
        "UPDATE annotation_sets SET n_total = (SELECT count(*) FROM annotations WHERE set_id = ? AND deleted = 0)"
        " WHERE id = ?",
        [set_id, set_id],
    )
    conn.execute(trigger_sql)
    conn.execute("COMMIT")
    conn.execute("PRAGMA optimize")
    db.close()
    log(f"built {n_annotations:,} annotations on {n_images:,} images in {time.perf_counter() - t0:.1f} s")
    return set_id


def add_reviewers(db_file: Path, n_reviewers: int) -> None:
    """Create the accounts bench0..bench<n-1> that a kept store lacks (built for fewer reviewers)."""
    from app.auth.users import create_user, find_user
    from app.db import connect

    db = connect(str(db_file))
    try:
        for i in range(n_reviewers):
            if find_user(db, f"bench{i}") is None:
                create_user(db, f"bench{i}", PASSWORD, "reviewer")
    finally:
        db.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Reviewer:
    """One reviewer on a keep-alive connection, with the session cookie and CSRF token."""

    def __init__(self, port: int, username: str):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookie = ""
        self.username = username
        self.token = ""

    def request(self, method: str, path: str, body: str | None = None, headers: dict | None = None):
        h = {"Cookie": self.cookie} if self.cookie else {}
        if body is not None:
            h["Content-Type"] = "application/x-www-form-urlencoded"
        h.update(headers or {})
        t0 = time.perf_counter()
        self.conn.request(method, path, body=body, headers=h)
        resp = self.conn.getresponse()
        data = resp.read()
        wall = (time.perf_counter() - t0) * 1000
        for k, v in resp.getheaders():
            if k.lower() == "set-cookie" and v.startswith("session="):
                self.cookie = v.split(";", 1)[0]
        st = resp.getheader("Server-Timing") or ""
        m = TIMING.search(st)
        self.last_cpu = float(c.group(1)) if (c := CPU.search(st)) else None
        self.last_lock = float(c.group(1)) if (c := LOCK.search(st)) else None
        self.last_held = float(c.group(1)) if (c := HELD.search(st)) else 0.0
        self.last_queue = float(c.group(1)) if (c := QUEUE.search(st)) else None
        self.last_core = float(c.group(1)) if (c := CORE.search(st)) else 0.0
        return resp.status, data.decode("utf-8", "replace"), (float(m.group(1)) if m else None), wall

    def login(self) -> None:
        from urllib.parse import urlencode

        _, html, _, _ = self.request("GET", "/login")
        body = urlencode(
            {"username": self.username, "password": PASSWORD, "csrf_token": TOKEN.search(html).group(1)}
        )
        status, _, _, _ = self.request("POST", "/login", body)
        if status != 302:
            raise SystemExit(f"login as {self.username} failed with {status}")


def run_reviewer(port, username, set_id, n_rates, warmup, out, errors, start, think=0.0):
    from urllib.parse import urlencode

    try:
        r = Reviewer(port, username)
        r.login()
        status, html, _, _ = r.request("GET", f"/review/{set_id}")
        token = TOKEN.search(html).group(1)
        hx = {"HX-Request": "true", "HX-Target": "review-item", "X-CSRFToken": token}
        start.wait()
        rng = random.Random(username)
        for i in range(warmup + n_rates):
            ann_id, cursor = ITEM.search(html).group(1), CURSOR.search(html).group(1)
            body = urlencode(
                {"annotation_id": ann_id, "cursor": cursor, "value": rng.choice(("good", "bad"))}
            )
            status, html, server, wall = r.request("POST", f"/review/{set_id}/rate", body, hx)
            cpu, lock, queue, core, held = r.last_cpu, r.last_lock, r.last_queue, r.last_core, r.last_held
            if status != 200 or not ITEM.search(html):
                raise RuntimeError(f"rate answered {status}: {html[:200]}")
            s_status, _, s_server, s_wall = r.request("GET", "/static/css/app.css")
            s_queue = r.last_queue
            if think:
                # A reviewer looks at the item before the next key; jittered so they do not march in step.
                time.sleep(rng.uniform(0.5, 1.5) * think)
            if i >= warmup:
                out["rate"].append(server)
                out["rate_cpu"].append(cpu)
                out["rate_lock"].append(lock)
                out["rate_held"].append(held)
                out["rate_core"].append(core)
                out["rate_in_server"].append(queue + server)
                out["static_in_server"].append(s_queue + s_server)
                out["rate_wall"].append(wall)
                out["static"].append(s_server)
                out["static_wall"].append(s_wall)
    except BaseException as e:
        errors.append(f"{username}: {e!r}")


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its children, from /proc (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError, IndexError):
            continue
    return total


def thread_cpu(pid: int) -> dict[int, tuple[float, float]]:
    """CPU seconds (user, system) of each thread of a process, by thread id, from /proc (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            out[int(task.name)] = (int(fields[11]) / tick, int(fields[12]) / tick)
        except (OSError, ValueError, IndexError):
            continue
    return out


def worker_pid(master: int) -> int | None:
    """The one worker process of a gunicorn master (None with several, or none yet)."""
    try:
        kids = [
            int(c)
            for t in Path(f"/proc/{master}/task").iterdir()
            for c in (t / "children").read_text().split()
        ]
    except OSError:
        return None
    return kids[0] if len(kids) == 1 else None


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def summary(name: str, values: list[float]) -> str:
    return (
        f"{name:<28} n={len(values):>5}  p50={pct(values, 50):6.2f}  p90={pct(values, 90):6.2f}"
        f"  p95={pct(values, 95):6.2f}"
        f"  p99={pct(values, 99):6.2f}  max={max(values):7.2f}  mean={statistics.fmean(values):6.2f}  ms"
    )


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--annotations", type=int, default=1_000_000, help="annotations in the store (default 1 000 000)"
    )
    ap.add_argument("--reviewers", type=int, default=8, help="concurrent reviewers (default 8)")
    ap.add_argument(
        "--workers",
        type=int,
        default=WORKERS,
        help=f"gunicorn worker processes (default {WORKERS}, as make run)",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=THREADS,
        help=f"gunicorn threads per worker (default {THREADS}, as make run)",
    )
    ap.add_argument(
        "--rates", type=int, default=400, help="measured rate+next requests per reviewer (default 400)"
    )
    ap.add_argument(
        "--warmup", type=int, default=20, help="unmeasured requests per reviewer first (default 20)"
    )
    ap.add_argument(
        "--store", type=Path, help="instance folder to build the store in and keep (reused if it exists)"
    )
    ap.add_argument(
        "--think",
        type=float,
        default=0.0,
        help="seconds a reviewer looks at an item before rating (default 0: back-to-back, the worst case)",
    )
    ap.add_argument(
        "--pin",
        action="store_true",
        help="run this script's reviewers on the first CPU and the server on the others (Linux), so the load"
        " generator does not take the server's cores; off by default (the target is measured unpinned)",
    )
    ap.add_argument("--cold", action="store_true", help="do not read the store into the page cache first")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args()

    tmp = None
    if args.store is None:
        tmp = Path(tempfile.mkdtemp(prefix="oiap-bench-"))
        instance = tmp / "instance"
    else:
        instance = args.store.resolve()
    try:
        db_file = instance / "oiap.sqlite3"
        if db_file.exists():
            import sqlite3

            c = sqlite3.connect(db_file)
            set_id = c.execute("SELECT id FROM annotation_sets WHERE name = 'bench-landmarks68'").fetchone()[
                0
            ]
            n = c.execute("SELECT n_total FROM annotation_sets WHERE id = ?", [set_id]).fetchone()[0]
            c.close()
            log(f"reusing {db_file} ({n:,} annotations)")
            from app.db import connect, migrate

            kept = connect(str(db_file))
            migrate(kept)  # a store kept from an older version gets the newer migrations, as init-db does
            kept.conn.close()
            add_reviewers(db_file, args.reviewers)
        else:
            log(f"building a store of {args.annotations:,} annotations in {instance}")
            set_id = build_store(instance, args.annotations, args.reviewers)
        if not args.cold:
            # Read the store once so it sits in the OS page cache, as on a server that has been up a
            # while; a cold cache measures the disk (--cold).
            with open(db_file, "rb") as f:
                while f.read(1 << 24):
                    pass
        port = free_port()
        if args.pin:
            cpus = sorted(os.sched_getaffinity(0))
            if len(cpus) < 2:
                raise SystemExit("--pin needs at least two CPUs: run without it")
            # This process's threads (the reviewers, started below) on the first CPU only.
            os.sched_setaffinity(0, cpus[:1])
        env = dict(os.environ, OIAP_INSTANCE=str(instance))
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-k",
                "app.gunicorn_worker.TimedThreadWorker",
                "-w",
                str(args.workers),
                "--threads",
                str(args.threads),
                "-b",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
                "--no-control-socket",
                "app:create_app()",
            ],
            cwd=REPO,
            env=env,
            start_new_session=True,
            # The server's process (and the worker it forks) on every CPU but the client's.
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus[1:])) if args.pin else None,
        )
        try:
            deadline = time.time() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline or server.poll() is not None:
                        raise SystemExit("gunicorn did not start") from None
                    time.sleep(0.1)
            out = {
                "rate": [],
                "rate_wall": [],
                "static": [],
                "static_wall": [],
                "rate_cpu": [],
                "rate_lock": [],
                "rate_held": [],
                "rate_core": [],
                "rate_in_server": [],
                "static_in_server": [],
            }
            errors: list[str] = []
            start = threading.Barrier(args.reviewers + 1)
            threads = [
                threading.Thread(
                    target=run_reviewer,
                    args=(port, f"bench{i}", set_id, args.rates, args.warmup, out, errors, start, args.think),
                )
                for i in range(args.reviewers)
            ]
            for t in threads:
                t.start()
            start.wait(60)
            t0 = time.perf_counter()
            server_cpu0, client_cpu0 = tree_cpu(server.pid), time.process_time()
            # One worker: its main thread (gunicorn's accept and poll loop, keep-alive hand-offs) apart
            # from the request and background threads.
            worker = worker_pid(server.pid) if args.workers == 1 else None
            threads0 = thread_cpu(worker) if worker else {}
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - t0
            server_cpu, client_cpu = tree_cpu(server.pid) - server_cpu0, time.process_time() - client_cpu0
            threads1 = thread_cpu(worker) if worker else {}
            if errors:
                raise SystemExit("reviewer errors:\n" + "\n".join(errors))
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(10)
        n = len(out["rate"])
        print(
            f"bench_review: {args.reviewers} reviewers, gunicorn {args.workers} process(es) x {args.threads} threads, "
            f"{n} rate+next requests in {elapsed:.1f} s ({n / elapsed:.0f}/s, each followed by a static request)"
            f", think time {args.think * 1000:.0f} ms{', client and server pinned apart' if args.pin else ''}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        # app: Server-Timing's app span (first before_request hook to after_request), the figure the
        # target was set on. in server: the same plus `queue`, from gunicorn handing the request to its
        # thread pool (waiting for a thread and the GIL, parsing). client: the round trip seen here.
        print(summary("app: rate + next", out["rate"]))
        print(summary("app: static file", out["static"]))
        # The app span's tail split: the request thread's own CPU and its wait for the write lock.
        print(summary("app: rate + next, its CPU", out["rate_cpu"]))
        print(summary("app: rate + next, lock wait", out["rate_lock"]))
        print(summary("app: rate + next, no core", out["rate_core"]))
        # How long each rating held the write lock: what the writers queued behind it waited for.
        print(summary("app: rate + next, lock held", out["rate_held"]))
        # What this process made the request wait: the span less the time other processes held the cores.
        print(
            summary(
                "app: rate + next less no core",
                [a - c for a, c in zip(out["rate"], out["rate_core"], strict=True)],
            )
        )
        print(summary("in server: rate + next", out["rate_in_server"]))
        print(summary("in server: static file", out["static_in_server"]))
        print(summary("client: rate + next", out["rate_wall"]))
        print(summary("client: static file", out["static_wall"]))
        app, cpu, lock, core = (
            statistics.fmean(out[k]) for k in ("rate", "rate_cpu", "rate_lock", "rate_core")
        )
        print(
            f"rate + next server time, mean {app:.2f} ms = CPU of the request's thread {cpu:.2f}"
            f" + waiting for the write lock {lock:.2f} + ready without a core (other processes) {core:.2f}"
            f" + waiting for the GIL (or the disk) {app - cpu - lock - core:.2f}"
        )
        # The slowest 1 %: what they spent their time on, on average.
        slow = sorted(range(n), key=lambda i: out["rate"][i])[-max(1, n // 100) :]
        parts = {
            k: statistics.fmean(out[k][i] for i in slow)
            for k in ("rate", "rate_cpu", "rate_lock", "rate_core")
        }
        print(
            f"slowest 1 % of rate + next, mean {parts['rate']:.2f} ms = CPU {parts['rate_cpu']:.2f}"
            f" + write lock {parts['rate_lock']:.2f} + no core {parts['rate_core']:.2f}"
            f" + GIL or disk {parts['rate'] - parts['rate_cpu'] - parts['rate_lock'] - parts['rate_core']:.2f}"
        )
        # All of it, per rate + next and static pair, whoever spends it (gunicorn's own threads too).
        print(
            f"CPU per rate + next and static pair: server {server_cpu / n * 1000:.2f} ms (all gunicorn"
            f" processes), client {client_cpu / n * 1000:.2f} ms (this script's {args.reviewers} threads)"
        )
        if threads1:
            # user and system (the kernel's: socket writes, loopback TCP, wake-ups) per pair, in ms.
            main = [
                (a - b) / n * 1000
                for a, b in zip(threads1.get(worker, (0, 0)), threads0.get(worker, (0, 0)), strict=True)
            ]
            rest = [
                sum(t[i] for t in threads1.values()) / n * 1000
                - sum(t[i] for t in threads0.values()) / n * 1000
                - main[i]
                for i in (0, 1)
            ]
            print(
                f"  of which the worker's main thread (gunicorn's accept/poll loop) {sum(main):.2f} ms"
                f" (user {main[0]:.2f}, system {main[1]:.2f}), its request and background threads {sum(rest):.2f} ms"
                f" (user {rest[0]:.2f}, system {rest[1]:.2f})"
            )
        p99, p99_in = pct(out["rate"], 99), pct(out["rate_in_server"], 99)
        print(
            f"target p99 < 10 ms for rate + next: app span {'met' if p99 < 10 else 'NOT met'} ({p99:.2f} ms);"
            f" in server, from hand-over {'met' if p99_in < 10 else 'NOT met'} ({p99_in:.2f} ms)"
        )
        if args.json:
            print(
                json.dumps({k: {"p50": pct(v, 50), "p99": pct(v, 99), "n": len(v)} for k, v in out.items()})
            )
        return 0
    finally:
        # A --store folder is kept for the next run; a temporary one goes.
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
