"""`make run` serves one gunicorn process with threads (DESIGN.md), as the command line it prints says."""

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from tests.live import PASSWORD, csrf_token, instance_app
from tests.soak_harness import free_port

REPO = Path(__file__).resolve().parent.parent


def _make_run_gunicorn() -> list[str]:
    """The gunicorn command `make run` would start (make -n prints without running anything)."""
    out = subprocess.run(
        ["make", "-n", "run"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.replace("\\\n", " ")
    [line] = [ln for ln in out.splitlines() if "gunicorn" in ln]
    return shlex.split(line)


def _first_response(url: str, server: subprocess.Popen) -> requests.Response:
    """GET url once the server answers (60 s at most; fails at once if the server exits)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return requests.get(url, timeout=5)
        except requests.ConnectionError:
            assert time.monotonic() < deadline and server.poll() is None, "gunicorn did not start"
            time.sleep(0.1)


def _children(pid: int) -> list[int]:
    return [
        int(c)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for c in (task / "children").read_text().split()
    ]


def test_make_run_serves_one_process_with_threads(tmp_path):
    cmd = _make_run_gunicorn()
    assert cmd[cmd.index("-w") + 1] == "1" and int(cmd[cmd.index("--threads") + 1]) >= 4
    assert cmd[cmd.index("-k") + 1] == "app.gunicorn_worker.TimedThreadWorker"
    # Served as `make run` serves, on a free localhost port, with this test's interpreter.
    port = free_port()
    cmd[cmd.index("-b") + 1] = f"127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "gunicorn", *cmd[1:], "--log-level", "warning"]
    instance = tmp_path / "instance"
    instance_app(instance, {f"rev{i}": "reviewer" for i in range(8)})
    server = subprocess.Popen(
        cmd, cwd=REPO, env=dict(os.environ, OIAP_INSTANCE=str(instance)), start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        static = _first_response(f"{base}/static/css/app.css", server)
        assert len(_children(server.pid)) == 1  # the master and one worker process

        # Eight reviewers log in and open a page at once: the threads of the one process serve them.
        results: list[tuple[int, int, str]] = []

        def reviewer(name: str) -> None:
            with requests.Session() as s:
                page = s.get(f"{base}/login", timeout=30).text
                data = {"username": name, "password": PASSWORD, "csrf_token": csrf_token(page)}
                r = s.post(f"{base}/login", data=data, allow_redirects=False, timeout=30)
                home = s.get(f"{base}/", timeout=30)
                results.append((r.status_code, home.status_code, home.headers.get("Server-Timing", "")))

        threads = [threading.Thread(target=reviewer, args=(f"rev{i}",)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(_children(server.pid)) == 1
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(15)
    # The worker class says how long a request waited before the app started on it (`queue`).
    m = re.fullmatch(
        r"app;dur=([\d.]+), cpu;dur=[\d.]+, lock;dur=[\d.]+, held;dur=[\d.]+, core;dur=[\d.]+, queue;dur=([\d.]+)",
        static.headers["Server-Timing"],
    )
    assert static.status_code == 200 and m and float(m.group(2)) >= 0
    assert sorted(r[:2] for r in results) == [(302, 200)] * 8
    assert all("queue;dur=" in r[2] for r in results)


def test_the_worker_class_shortens_the_gil_switch_interval():
    """Served by app.gunicorn_worker.TimedThreadWorker (as `make run` serves), the process switches
    threads every 1 ms, not Python's default 5 ms: a write transaction wins the GIL back sooner."""
    from app.gunicorn_worker import SWITCH_INTERVAL_S

    assert SWITCH_INTERVAL_S == 0.001  # Python's default is 0.005
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-k",
            "app.gunicorn_worker.TimedThreadWorker",
            "-w",
            "1",
            "--threads",
            "2",
            "--no-control-socket",
            "--log-level",
            "warning",
            "-b",
            f"127.0.0.1:{port}",
            "tests.switch_interval_app:app",
        ],
        cwd=REPO,
        start_new_session=True,
    )
    try:
        r = _first_response(f"http://127.0.0.1:{port}/", server)
        assert r.status_code == 200 and float(r.text) == SWITCH_INTERVAL_S
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(15)
