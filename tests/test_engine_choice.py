"""bulk-annotate's default engine (`--engine auto`, app/bulk/engine_choice.py): worker processes from
a number of images to do on more than one CPU, threads otherwise; a killed auto run resumes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from app.bulk.engine_choice import PROCESS_FROM_IMAGES, choose_engine, usable_cpus
from app.bulk.local import bulk_annotate
from app.db import connect
from app.errors import InvalidInput
from app.paths import REPO_ROOT
from tests.test_bulk import small_photos
from tests.test_process_engine import _rows, _workers_of

MANY = "process" if usable_cpus() > 1 else "local"


def test_auto_takes_processes_only_where_they_pay():
    n = PROCESS_FROM_IMAGES
    assert choose_engine("auto", n, 2, cpus=2) == "process"
    assert choose_engine("auto", n - 1, 2, cpus=2) == "local"
    assert choose_engine("auto", 10 * n, 2, cpus=1) == "local"  # one CPU: nothing to run beside
    assert choose_engine("auto", 10 * n, 1, cpus=16) == "local"  # one worker: no second core used
    assert choose_engine("auto", 3, 2, {"BULK_PROCESS_FROM_IMAGES": 3}, cpus=2) == "process"
    for named in ("local", "process", "ray"):
        assert choose_engine(named, 10 * n, 2, cpus=2) == named
    with pytest.raises(InvalidInput, match="'threads'"):
        choose_engine("threads", 1, 2)
    assert 1 <= usable_cpus() <= (os.cpu_count() or 1)


def test_a_small_run_stays_on_threads(app, db, tmp_path):
    small_photos(db, tmp_path, 3)
    s = bulk_annotate(db, app.config, "face_box", progress=False)
    assert (s["engine"], s["status"], s["images"]) == ("local", "done", 3)


def test_from_the_threshold_auto_runs_processes_and_writes_the_same_rows(app, db, tmp_path):
    small_photos(db, tmp_path, 4, side=320)
    app.config["BULK_PROCESS_FROM_IMAGES"] = 4
    auto = bulk_annotate(db, app.config, "face_landmarks68", batch=2, progress=False)
    assert (auto["engine"], auto["status"], auto["images"]) == (MANY, "done", 4)
    # --limit counts: 3 images to do stay on threads.
    limited = bulk_annotate(db, app.config, "face_landmarks68", batch=2, progress=False, limit=3)
    assert limited["engine"] == "local"
    local = bulk_annotate(db, app.config, "face_landmarks68", batch=2, progress=False, engine="local")
    for role in ("box", "points"):
        assert _rows(db, auto["sets"][role]["id"]) == _rows(db, local["sets"][role]["id"])


def test_cli_default_is_auto(app, db, tmp_path, runner):
    assert "[default: auto]" in runner.invoke(args=["oiap", "bulk-annotate", "--help"]).output
    small_photos(db, tmp_path, 2)
    app.config["BULK_PROCESS_FROM_IMAGES"] = 2
    r = runner.invoke(args=["oiap", "bulk-annotate", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["engine"] == MANY
    r = runner.invoke(args=["oiap", "bulk-annotate", "--engine", "threads"])
    assert r.exit_code == 2 and "'threads' is not one of 'auto', 'local', 'process', 'ray'" in r.output


@pytest.mark.slow
def test_a_killed_auto_run_resumes_to_the_same_set(app, db, tmp_path):
    small_photos(db, tmp_path, 14)
    database = app.config["DATABASE"]
    env = dict(
        os.environ,
        OIAP_INSTANCE=app.instance_path,
        OIAP_DATABASE=database,
        OIAP_SECRET_KEY="test",
        OIAP_BULK_PROCESS_FROM_IMAGES="5",
        FLASK_APP="app",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask", "oiap", "bulk-annotate", "--batch", "1", "--json"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    watch = connect(database)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            row = watch.execute("SELECT progress FROM runs WHERE command = 'bulk-annotate'").fetchone()
            if (row and row[0] >= 3) or proc.poll() is not None:
                break
            time.sleep(0.02)
        workers = [pid for pid in _workers_of(database) if pid != proc.pid]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        watch.close()
    if MANY == "process":
        assert len(workers) >= 2  # auto chose worker processes for 14 images
    deadline = time.time() + 60
    while _workers_of(database) and time.time() < deadline:
        time.sleep(0.2)
    assert _workers_of(database) == []
    run_id, progress, status = db.execute("SELECT id, progress, status FROM runs").fetchone()
    assert status == "running" and 3 <= progress < 14, "the kill must land mid-run"
    resumed = bulk_annotate(db, app.config, resume=run_id, progress=False)
    assert resumed["status"] == "done" and resumed["images"] == 14
    assert resumed["images_this_session"] == 14 - progress
    whole = bulk_annotate(db, app.config, "face_box", progress=False, engine="local")
    assert _rows(db, resumed["sets"]["box"]["id"]) == _rows(db, whole["sets"]["box"]["id"])
