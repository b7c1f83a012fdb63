"""scripts/bench_review.py end to end on a small store: a real gunicorn worker, real reviewers, the
CPU split by the worker's threads, and --pin (reviewers and server on separate CPUs)."""

import os
import re
import subprocess
import sys

from app.paths import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "bench_review.py"


def test_bench_review_splits_the_workers_cpu_and_pins(tmp_path):
    args = ["--annotations", "300", "--reviewers", "2", "--rates", "5", "--warmup", "2", "--threads", "2"]
    args += ["--store", str(tmp_path / "store"), "--pin"]
    r = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)
    if len(os.sched_getaffinity(0)) < 2:
        assert r.returncode != 0 and "--pin needs at least two CPUs" in r.stderr + r.stdout
        return
    assert r.returncode == 0, r.stderr[-2000:]
    assert "10 rate+next requests" in r.stdout and "client and server pinned apart" in r.stdout
    m = re.search(
        r"of which the worker's main thread \(gunicorn's accept/poll loop\) ([\d.]+) ms \(user ([\d.]+), system"
        r" ([\d.]+)\), its request and background threads ([\d.]+) ms",
        r.stdout,
    )
    assert m, r.stdout
    main, user, system, rest = map(float, m.groups())
    assert abs(main - user - system) < 0.02 and rest > 0  # the request threads did the rating work


def test_bench_review_has_help():
    r = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--pin" in r.stdout and "usage" in r.stdout
