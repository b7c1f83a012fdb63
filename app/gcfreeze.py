"""Keep the objects that live for the whole process out of the cyclic garbage collector's full passes.

A page that decodes and draws sixty 68-point faces allocates enough that the collector runs a full
(generation 2) pass every few dozen requests, and a full pass over everything the app imported took
40-50 ms on the 2-CPU machine: the set page's p99. gc.freeze() moves what exists after start-up
(modules, routes, config) into a permanent generation that full passes skip.
"""

import gc

from flask import Flask


def freeze_startup(app: Flask) -> None:
    """Freeze the start-up heap, except under tests (which build many apps: frozen cycles are never freed)."""
    if not app.testing:
        gc.freeze()
