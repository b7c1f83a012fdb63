"""bulk-annotate --engine process on real photos: the same rows as the thread engine, the CLI, and a
run whose parent is killed (kill -9) leaves no workers behind and resumes to the same set."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.bulk.local import bulk_annotate
from app.db import connect
from app.paths import REPO_ROOT
from tests.test_bulk import set_rows, small_photos


def _rows(db, set_id):
    """(image, box, points) of a set, rounded: what two runs of the same models must agree on."""
    return sorted(
        (
            r["image_id"],
            tuple(round(r[k], 5) for k in ("x0", "y0", "x1", "y1")),
            tuple(round(v, 4) for p in json.loads(r["points"] or "[]") for v in p),
        )
        for r in set_rows(db, set_id)
    )


def test_process_engine_writes_what_the_thread_engine_writes(app, db, tmp_path):
    small_photos(db, tmp_path, 6, side=320)
    t = bulk_annotate(db, app.config, "face_landmarks68", batch=2, progress=False)
    p = bulk_annotate(db, app.config, "face_landmarks68", batch=2, progress=False, engine="process")
    assert p["engine"] == "process" and p["status"] == "done" and p["images"] == 6
    for role in ("box", "points"):
        a, b = _rows(db, t["sets"][role]["id"]), _rows(db, p["sets"][role]["id"])
        assert a == b and len(a) >= 8
    # The workers' stage times come back to the parent.
    assert p["profile_s"]["landmarks68"] > 0 and p["profile_s"]["detect.pnet"] > 0


@pytest.mark.parametrize("given_boxes", [True, False])
def test_a_worker_imports_neither_flask_nor_the_store_nor_torch(app, db, given_boxes):
    # A worker is started once per run and per core (spawn): what it imports is start-up paid in every
    # run. It loads the run's models and runs the chain; the web app, the store and training stay out.
    from app.bulk.chain import ChainSpec
    from app.bulk.process_engine import ProcessEngine
    from app.models.builtin import ensure_builtin_models
    from app.models.registry import active_model

    ensure_builtin_models(db)
    spec = ChainSpec(
        "face_landmarks68",
        None if given_boxes else active_model(db, "face_box"),
        active_model(db, "face_landmarks68"),
        1024,
        1 if given_boxes else None,
    )
    with ProcessEngine(spec, app.config, 1).pool() as pool:
        # eval is a builtin: unpickling it in the worker imports nothing of this test module.
        modules = set(pool.submit(eval, "list(__import__('sys').modules)").result())
    assert {"app.annotators.attention68", "app.annotators.mesh_mirror"} <= modules
    assert not {"flask", "werkzeug", "sqlite_utils", "pandas", "torch", "app.db"} & modules


def _workers_of(database: str) -> list[int]:
    """Live processes started with this test's store in their environment (the CLI and its workers)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            env = (d / "environ").read_bytes()
            state = (d / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if f"OIAP_DATABASE={database}".encode() in env.split(b"\0") and state != "Z":
            out.append(int(d.name))
    return out


@pytest.mark.slow
def test_kill_9_mid_run_leaves_no_workers_and_resumes(app, db, tmp_path):
    small_photos(db, tmp_path, 14)
    database = app.config["DATABASE"]
    env = dict(
        os.environ,
        OIAP_INSTANCE=app.instance_path,
        OIAP_DATABASE=database,
        OIAP_SECRET_KEY="test",
        FLASK_APP="app",
    )
    cmd = ["oiap", "bulk-annotate", "--batch", "1", "--workers", "2", "--engine", "process", "--json"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask", *cmd],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    watch = connect(database)
    try:
        deadline = time.time() + 120
        progress = 0
        while time.time() < deadline:
            row = watch.execute("SELECT id, progress FROM runs WHERE command = 'bulk-annotate'").fetchone()
            progress = row[1] if row else 0
            if progress >= 3 or proc.poll() is not None:
                break
            time.sleep(0.02)
        workers = [pid for pid in _workers_of(database) if pid != proc.pid]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        watch.close()
    # Two workers (and multiprocessing's resource tracker) while the run was going.
    assert len(workers) >= 2
    # Orphaned workers see their pipe close and exit.
    deadline = time.time() + 60
    while _workers_of(database) and time.time() < deadline:
        time.sleep(0.2)
    assert _workers_of(database) == []
    run_id, progress, status = db.execute("SELECT id, progress, status FROM runs").fetchone()
    assert status == "running" and 3 <= progress < 14, "the kill must land mid-run"
    resumed = bulk_annotate(db, app.config, resume=run_id, progress=False, engine="process")
    assert resumed["status"] == "done" and resumed["images"] == 14
    assert resumed["images_this_session"] == 14 - progress
    whole = bulk_annotate(db, app.config, "face_box", progress=False)
    assert _rows(db, resumed["sets"]["box"]["id"]) == _rows(db, whole["sets"]["box"]["id"])


def test_cli_process_engine(app, db, tmp_path, runner):
    small_photos(db, tmp_path, 3, side=240)
    r = runner.invoke(args=["oiap", "bulk-annotate", "--engine", "process", "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert (s["engine"], s["status"], s["images"]) == ("process", "done", 3)
    assert s["sets"]["box"]["annotations"] >= 2
