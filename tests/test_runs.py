"""Runs record their process (pid, host, start time): a list tells a live run from one whose process is
gone (kill -9: tests/test_bulk.py) or whose pid now belongs to another process."""

import os
import socket
import subprocess
import sys

import pytest

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


def _stop(line: str) -> None:
    """An importer's echo that stops the import as Ctrl-C would."""
    raise KeyboardInterrupt


def _ended(db) -> tuple:
    return db.execute("SELECT command, status, error FROM runs ORDER BY id DESC LIMIT 1").fetchone()


def test_imports_ended_by_ctrl_c_or_an_error_are_recorded_so(db, tmp_path):
    """import-openimages, import-openimages-masks and import-dir record a run that Ctrl-C stopped as
    interrupted, and one that an error ended as failed with its message (runs.finish_failed)."""
    from app.errors import InvalidInput
    from app.imports.folder import import_dir
    from app.imports.openimages import import_openimages
    from app.imports.openimages_masks import import_openimages_masks
    from tests.test_openimages_headers import MASK_HEADER, _masks, _meta

    meta = _meta(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        import_openimages(db, meta, splits=["validation"], echo=_stop)
    assert _ended(db) == ("import-openimages", "interrupted", None)
    (meta / "validation-annotations-bbox.csv").write_text("ImageID,Source\n")
    with pytest.raises(InvalidInput, match="missing column"):
        import_openimages(db, meta, splits=["validation"])
    command, status, error = _ended(db)
    assert (command, status) == ("import-openimages", "failed") and "missing column(s)" in error

    (tmp_path / "m").mkdir()
    masks = _masks(tmp_path / "m", f"{MASK_HEADER}\n".encode())
    with pytest.raises(KeyboardInterrupt):
        import_openimages_masks(db, {}, masks, echo=_stop)
    assert _ended(db) == ("import-openimages-masks", "interrupted", None)

    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"not a JPEG")  # skipped with a line to echo
    with pytest.raises(KeyboardInterrupt):
        import_dir(db, folder, echo=_stop)
    assert _ended(db) == ("import-dir", "interrupted", None)
