"""Several server processes on one store (gunicorn -w N): the write lock and the login limits hold
across processes, not only across the threads of one."""

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from app.auth.limit_storage import SQLiteLimitStorage
from app.db import connect, immediate
from tests.live import PASSWORD, instance_app

REPO = Path(__file__).resolve().parent.parent

HOLDER = """
import sys, time
sys.path.insert(0, {repo!r})
from app.db import connect, immediate
db = connect({db!r})
with immediate(db):
    db.execute("INSERT INTO events (at, action) VALUES ('t', 'holder')")
    print("holding", flush=True)
    time.sleep({hold})
print("released", flush=True)
"""


def test_the_write_lock_is_an_flock_that_other_processes_wait_for(tmp_path):
    app = instance_app(tmp_path / "instance")
    path = app.config["DATABASE"]
    code = HOLDER.format(repo=str(REPO), db=path, hold=0.6)
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout.readline() == "holding\n"
        # Held by the other process: the lock file cannot be taken here.
        fd = os.open(path + "-writelock", os.O_RDWR)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                raise AssertionError("the other process does not hold the write lock file")
            except BlockingIOError:
                pass
        finally:
            os.close(fd)
        db = connect(path)
        t0 = time.perf_counter()
        with immediate(db):  # waits for the holder, then gets in without SQLITE_BUSY
            waited = time.perf_counter() - t0
            db.execute("INSERT INTO events (at, action) VALUES ('t', 'waiter')")
        assert child.stdout.readline() == "released\n"
        assert child.wait(10) == 0
    assert waited > 0.3
    actions = [r[0] for r in db.execute("SELECT action FROM events WHERE at = 't' ORDER BY id")]
    assert actions == ["holder", "waiter"]
    db.close()


def test_a_killed_holder_releases_the_write_lock(tmp_path):
    app = instance_app(tmp_path / "instance")
    path = app.config["DATABASE"]
    code = HOLDER.format(repo=str(REPO), db=path, hold=60)
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout.readline() == "holding\n"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    db = connect(path)
    t0 = time.perf_counter()
    with immediate(db):
        db.execute("INSERT INTO events (at, action) VALUES ('t', 'after kill')")
    assert time.perf_counter() - t0 < 5
    # The killed holder's uncommitted row is gone.
    assert [r[0] for r in db.execute("SELECT action FROM events WHERE at = 't'")] == ["after kill"]
    db.close()


COUNTER = """
import sys
sys.path.insert(0, {repo!r})
from app.auth.limit_storage import SQLiteLimitStorage
s = SQLiteLimitStorage("oiap-sqlite://" + {path!r})
print(*[s.acquire_entry("user:rev", 5, 60) for _ in range({n})])
"""


def test_limit_entries_are_shared_by_processes(tmp_path):
    path = str(tmp_path / "limits.sqlite3")
    here = SQLiteLimitStorage("oiap-sqlite://" + path)
    assert all(here.acquire_entry("user:rev", 5, 60) for _ in range(3))
    out = subprocess.run(
        [sys.executable, "-c", COUNTER.format(repo=str(REPO), path=path, n=3)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["True", "True", "False"]  # 3 here + 2 there fill the window of 5
    assert not here.acquire_entry("user:rev", 5, 60)
    start, n = here.get_moving_window("user:rev", 5, 60)
    assert n == 5 and time.time() - 60 < start <= time.time()
    assert here.acquire_entry("user:other", 5, 60)  # other keys are counted apart
    here.clear("user:rev")
    assert here.get_moving_window("user:rev", 5, 60)[1] == 0
    # Entries older than the window no longer count.
    assert here.acquire_entry("k", 1, 1) and not here.acquire_entry("k", 1, 1)
    time.sleep(1.1)
    assert here.acquire_entry("k", 1, 1)


SECOND_PROCESS = """
import os, sys
sys.path.insert(0, {repo!r})
os.environ["OIAP_INSTANCE"] = {instance!r}
from app import create_app
client = create_app().test_client()
client.get("/login")
r = client.post("/login", data={{"username": "rev", "password": "wrong"}})
print(r.status_code)
"""


def test_login_limit_holds_across_server_processes(tmp_path):
    # Two processes on one instance, as two gunicorn workers: failures in one count in the other.
    instance = tmp_path / "instance"
    app = instance_app(instance, WTF_CSRF_ENABLED=False)  # migrated, users admin and rev
    client = app.test_client()
    for _ in range(4):
        assert client.post("/login", data={"username": "rev", "password": "wrong"}).status_code == 401
    code = SECOND_PROCESS.format(repo=str(REPO), instance=str(instance))
    env = dict(os.environ, OIAP_WTF_CSRF_ENABLED="false")

    def other_process() -> str:
        return subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        ).stdout

    assert other_process().split() == ["401"]  # the 5th failure of the minute, in the other process
    assert other_process().split() == ["429"]  # LOGIN_LIMIT_PER_USER: 5 per minute for the server
    assert client.post("/login", data={"username": "rev", "password": PASSWORD}).status_code == 429


def test_make_runs_worker_class_reports_the_wait_before_the_app(tmp_path):
    # As `make run` serves: TimedThreadWorker, several processes; Server-Timing then has `queue`.
    import re
    import socket

    import requests

    instance = tmp_path / "instance"
    instance_app(instance)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "gunicorn", "-k", "app.gunicorn_worker.TimedThreadWorker", "-w", "2"]
    cmd += ["--threads", "2", "-b", f"127.0.0.1:{port}", "--log-level", "warning", "app:create_app()"]
    env = dict(os.environ, OIAP_INSTANCE=str(instance))
    server = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = requests.get(f"http://127.0.0.1:{port}/static/css/app.css", timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and server.poll() is None, "gunicorn did not start"
                time.sleep(0.1)
        with requests.Session() as s:
            html = s.get(f"http://127.0.0.1:{port}/login", timeout=5).text
            token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
            data = {"username": "rev", "password": PASSWORD, "csrf_token": token}
            logged_in = s.post(f"http://127.0.0.1:{port}/login", data=data, allow_redirects=False, timeout=5)
            page = s.get(f"http://127.0.0.1:{port}/", timeout=5)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(15)
    m = re.fullmatch(
        r"app;dur=([\d.]+), cpu;dur=[\d.]+, lock;dur=[\d.]+, queue;dur=([\d.]+)", r.headers["Server-Timing"]
    )
    assert r.status_code == 200 and m and float(m.group(2)) >= 0
    assert logged_in.status_code == 302 and page.status_code == 200 and "Server-Timing" in page.headers
