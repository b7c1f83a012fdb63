"""Trying a model on one image from the web: bounded, so one reviewer cannot starve the team.

A try runs onnxruntime inside the web process. Unbounded, three tries on an 8000x8000 photo took
82 s and about 1 GB each, and other users' logins timed out meanwhile. So:
- the photo is decoded reduced, at most TRY_DECODE_SIDE pixels on its long side (a JPEG through
  Pillow's draft mode, never fully), under the same per-request pixel cap as the image routes;
- a user runs one try at a time (a second answers 429 at once);
- the process runs at most TRY_POOL tries at once (others wait up to TRY_WAIT_SECONDS, then 429),
  leaving the server's other threads to everyone else.
"""

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import numpy as np
from flask import Flask
from PIL import Image
from sqlite_utils import Database
from werkzeug.exceptions import TooManyRequests

from ..images.allowed import checked_path
from ..images.reading import load_reduced

DEFAULT_DECODE_SIDE = 2048
DEFAULT_POOL = 2
DEFAULT_WAIT_SECONDS = 5.0


_checked: set[tuple[str, str]] = set()  # (sha256, runner) of model files that ran once here


def check_before_try(model: dict) -> None:
    """Run a landmarks68 model's file once on a blank face before its first try in this process;
    InvalidInput (400) when it cannot run. `models add` checks this since issue 19, but rows added
    before, or fetched from a bucket, were never run."""
    runner = (model.get("params") or {}).get("runner") or ""
    if not runner.startswith("landmarks68:") or (model["sha256"], runner) in _checked:
        return
    from ..annotators.checks import check_model_file
    from .registry import model_path

    check_model_file(model_path(model), model["kind"], runner)
    _checked.add((model["sha256"], runner))


def try_rgb(db: Database, config: Mapping, row: dict) -> np.ndarray:
    """The image as RGB, its long side at most TRY_DECODE_SIDE (same pixel grid, uniformly scaled)."""
    side = int(config.get("TRY_DECODE_SIDE") or DEFAULT_DECODE_SIDE)
    checked_path(db, config, row)  # only files the image routes would serve
    # Decoded with at least side / 2 pixels on the long side (load_reduced keeps twice what it is
    # asked for): an 8000x8000 JPEG decodes at 1/4, 4 million pixels instead of 64.
    im = load_reduced(config, row, max(1, side // 4))
    im.thumbnail((side, side), Image.Resampling.LANCZOS)
    return np.asarray(im if im.mode == "RGB" else im.convert("RGB"))


class TryGate:
    """At most one try per user and `pool` tries in all, in one process."""

    def __init__(self, pool: int, wait: float):
        self.pool = threading.BoundedSemaphore(pool)
        self.wait = wait
        self._lock = threading.Lock()
        self._running: set[int] = set()

    @contextmanager
    def slot(self, user_id: int) -> Iterator[None]:
        """Hold a try slot for the user; TooManyRequests (429) when none can be had."""
        with self._lock:
            if user_id in self._running:
                raise _busy("You already have a model try running; wait for it to finish, then try again.")
            self._running.add(user_id)
        try:
            if not self.pool.acquire(timeout=self.wait):
                raise _busy("Other model tries are running on the server now; try again in a few seconds.")
            try:
                yield
            finally:
                self.pool.release()
        finally:
            with self._lock:
                self._running.discard(user_id)


def _busy(message: str) -> TooManyRequests:
    return TooManyRequests(message)


def gate(app: Flask) -> TryGate:
    """The app's try gate (TRY_POOL tries at once, TRY_WAIT_SECONDS of waiting for one)."""
    g = app.extensions.get("oiap_try_gate")
    if g is None:
        g = app.extensions.setdefault(
            "oiap_try_gate",
            TryGate(
                int(app.config.get("TRY_POOL") or DEFAULT_POOL),
                float(app.config.get("TRY_WAIT_SECONDS", DEFAULT_WAIT_SECONDS)),
            ),
        )
    return g
