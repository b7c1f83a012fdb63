#!/usr/bin/env python
"""Soak test: gunicorn (one process, 8 threads) serving a real instance, simulated reviewers rating,
undoing, skipping and editing for a bounded time, optionally a kill -9 of the server mid-run; then
checks that nothing acknowledged was lost.

The instance is built in a temporary folder with `flask oiap demo` (the demo photos, their dlib
landmarks and the builtin models' annotations) plus 68-point sets imported with import-csv, so
there are hundreds of items. Reviewers are threads with their own session (login form, CSRF); the
server listens on 127.0.0.1 only. Afterwards: no 5xx, no item on two reviewers' screens (claimed)
at once, every acknowledged rating, undo and edit in the store and in the audit log, counters equal
to the table, PRAGMA integrity_check ok. Exits 1 when any check fails.

    python scripts/soak.py --reviewers 20 --seconds 60 --kill-server-at 30
    python scripts/soak.py --reviewers 5 --seconds 10 --instance /tmp/soak   # keep the store to look at
"""

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.soak_harness import soak  # noqa: E402

MAX_REVIEWERS = 100
MAX_SECONDS = 3600


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    ap.add_argument(
        "--reviewers", type=int, default=20, help=f"simulated reviewers (default 20, at most {MAX_REVIEWERS})"
    )
    ap.add_argument(
        "--seconds", type=float, default=60, help=f"how long they work (default 60, at most {MAX_SECONDS})"
    )
    ap.add_argument(
        "--kill-server-at",
        type=float,
        default=None,
        help="kill -9 the server after this many seconds and restart it",
    )
    ap.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default: a free one)")
    ap.add_argument("--threads", type=int, default=8, help="gunicorn threads (default 8)")
    ap.add_argument(
        "--copies", type=int, default=4, help="extra 68-point sets imported with import-csv (default 4)"
    )
    ap.add_argument(
        "--instance",
        type=Path,
        default=None,
        help="instance folder to build and keep (must not exist); default a temporary one",
    )
    ap.add_argument(
        "--no-models", action="store_true", help="build the demo without the builtin models (faster)"
    )
    ap.add_argument("--seed", type=int, default=1, help="random seed of the reviewers (default 1)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    if not 1 <= args.reviewers <= MAX_REVIEWERS or not 0 < args.seconds <= MAX_SECONDS:
        ap.error(f"--reviewers is 1..{MAX_REVIEWERS} and --seconds 0..{MAX_SECONDS}")
    if args.kill_server_at is not None and not 0 < args.kill_server_at < args.seconds:
        ap.error("--kill-server-at must fall inside the run")
    if args.instance is not None and args.instance.exists():
        ap.error(f"{args.instance} exists; give a new folder")
    tmp = None
    instance = args.instance
    if instance is None:
        tmp = Path(tempfile.mkdtemp(prefix="oiap-soak-"))
        instance = tmp / "instance"
    try:
        result = soak(
            instance,
            args.reviewers,
            args.seconds,
            kill_at=args.kill_server_at,
            port=args.port,
            threads=args.threads,
            models=not args.no_models,
            copies=args.copies,
            seed=args.seed,
        )
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"requests served:   {result['requests']}  {result['statuses']}")
        print(
            f"ratings made:      {result['ratings']} acknowledged ({result['refused_ratings']} refused with a reason)"
        )
        print(f"undos:             {result['undos']}")
        print(f"edits:             {result['edits']} saved, {result['conflicts_409']} answered 409")
        print(
            f"faults injected:   {result['faults_injected']} ({result['server_kills']} kill -9 of the server, "
            f"{result['stale_saves_sent']} stale saves; {result['connection_errors']} client connection errors)"
        )
        print(f"items shown:       {result['items_shown']}")
        print(f"integrity_check:   {result['integrity']}")
        print(f"items lost:        {result['items_lost']}")
        for p in result["problems"]:
            print(f"PROBLEM: {p}")
        if "server_log_tail" in result:
            print(result["server_log_tail"], file=sys.stderr)
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
