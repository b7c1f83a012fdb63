"""Runs record their process (pid, host, start time): a list tells a live run from one whose process is
gone (kill -9: tests/test_bulk.py) or whose pid now belongs to another process."""

import os
import socket
import subprocess
import sys

from app.runs import _proc_stat, finish_run, shown_status, start_run


def test_a_run_records_this_process(db):
    run_id = start_run(db, "bulk-annotate", {"kind": "face_box"})
    pid, host, pid_start = db.execute(
        "SELECT pid, host, pid_start FROM runs WHERE id = ?", [run_id]
    ).fetchone()
    assert (pid, host) == (os.getpid(), socket.gethostname())
    assert pid_start == _proc_stat(os.getpid())[1]
    assert shown_status("running", pid, host, pid_start) == "running"
    finish_run(db, run_id)
    assert shown_status("done", pid, host, pid_start) == "done"


def test_a_gone_or_reused_pid_is_stopped_and_another_host_is_left_alone():
    me, host = os.getpid(), socket.gethostname()
    started = _proc_stat(me)[1]
    # This pid, but a process that started at another time: the run's own process is gone.
    assert shown_status("running", me, host, started + 1) == "stopped"
    # A process that has exited and been waited for.
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    gone = int(child.stdout)
    assert shown_status("running", gone, host, None) == "stopped"
    # Another machine's run: nothing to look at from here.
    assert shown_status("running", gone, host + "-elsewhere", None) == "running"
    # Stored before pids were recorded.
    assert shown_status("running", None, None, None) == "running"
