"""Repository and instance paths, in a module of their own so that any room can use them without
importing the Flask app factory (app/__init__.py)."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def instance_dir() -> Path:
    """The instance folder: OIAP_INSTANCE, or ./instance in the repository."""
    return Path(os.environ.get("OIAP_INSTANCE") or REPO_ROOT / "instance").resolve()
