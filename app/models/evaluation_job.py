"""Evaluation as a background job of the web process: the models page's Evaluate button.

start_evaluation() records the job as a `runs` row (command "evaluate", as `flask oiap evaluate`
does) and measures the model in a thread with its own connection, so the POST answers at once; the
run's progress (images done of total) is written as it goes, and the page polls it. One evaluation
of a model runs at a time.
"""

import threading
import time
from collections.abc import Mapping

from sqlite_utils import Database

from ..db import connect
from ..errors import Conflict
from ..runs import finish_run, shown_status, start_run
from .evaluation import gather_ground_truth, measure, store_metrics
from .registry import get_model

# Progress is written at most this often (a write per image would contend with reviewers' writes).
PROGRESS_EVERY_S = 0.5


class RunProgress:
    """tqdm's update()/close() for measure(): images done, written to the run's row now and then."""

    def __init__(self, db: Database, run_id: int):
        self.db, self.run_id, self.done, self.written_at = db, run_id, 0, 0.0

    def update(self, n: int = 1) -> None:
        self.done += n
        if time.monotonic() - self.written_at >= PROGRESS_EVERY_S:
            self._write()

    def close(self) -> None:
        self._write()

    def _write(self) -> None:
        self.db.conn.execute("UPDATE runs SET progress = ? WHERE id = ?", [self.done, self.run_id])
        self.db.conn.commit()
        self.written_at = time.monotonic()


def _shown(run: dict) -> dict:
    # A run whose process is gone (the server restarted mid-run) shows as stopped, not running forever.
    return run | {"status": shown_status(run["status"], run["pid"], run["host"], run["pid_start"])}


def running_evaluation(db: Database, model_id: int) -> dict | None:
    """The model's evaluation run that is still going (its process alive), else None."""
    rows = db.query(
        "SELECT * FROM runs WHERE command = 'evaluate' AND model_id = ? AND status = 'running' ORDER BY id DESC",
        [model_id],
    )
    return next((r for r in map(_shown, rows) if r["status"] == "running"), None)


def latest_evaluation(db: Database, model_id: int) -> dict | None:
    """The model's newest evaluation run, whatever its state ('stopped' when its process is gone)."""
    rows = list(
        db.query(
            "SELECT * FROM runs WHERE command = 'evaluate' AND model_id = ? ORDER BY id DESC LIMIT 1",
            [model_id],
        )
    )
    return _shown(rows[0]) if rows else None


def start_evaluation(db: Database, config: Mapping, model_id: int, split: str = "test") -> int:
    """Start measuring the model on the split in a background thread; returns the run id.

    Conflict when the model is being evaluated already; InvalidInput (from gather_ground_truth) when
    the split has no ground truth, before any thread starts.
    """
    model = get_model(db, model_id)
    gt = gather_ground_truth(db, model["kind"], split)
    if running_evaluation(db, model_id):
        raise Conflict(f"model {model_id} is being evaluated already; wait for that run to finish")
    run_id = start_run(
        db,
        "evaluate",
        {"model_id": model_id, "split": split, "from": "web"},
        total=len(gt),
        model_id=model_id,
    )
    thread = threading.Thread(
        target=_run, args=(dict(config), model, gt, split, run_id), name=f"evaluate-{model_id}", daemon=True
    )
    thread.start()
    return run_id


def _run(config: dict, model: dict, gt: dict, split: str, run_id: int) -> None:
    # A thread of its own: its own connection (sqlite connections stay in their thread).
    db = connect(config["DATABASE"])
    try:
        result = measure(db, config, model, gt, bar=RunProgress(db, run_id))
        store_metrics(db, model["id"], split, result)
        db.execute("UPDATE runs SET progress = total WHERE id = ?", [run_id])
        finish_run(db, run_id, "done")
    except Exception as e:  # the page shows the run's error; nothing else would see it
        finish_run(db, run_id, "failed", f"{type(e).__name__}: {e}")
    finally:
        db.close()
