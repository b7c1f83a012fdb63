"""Named domain errors, with no Flask: domain, training and bulk code raise these; app/web.py turns them
into error pages."""

import errno
import sqlite3


class OiapError(Exception):
    """A domain error whose message is meant for the user."""


class InvalidInput(OiapError):
    """Bad input from a user or a file: the message names it and says how to fix it."""


class NotFound(OiapError):
    """A named thing (set, model, image) does not exist."""


class Conflict(OiapError):
    """A write against a stale version."""


class StorageError(OiapError):
    """S3 is not configured, not reachable, refuses us, or gave back something corrupt."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run: the run is recorded as interrupted and run_id resumes it."""

    def __init__(self, run_id: int):
        super().__init__(run_id)
        self.run_id = run_id


def storage_error_message(e: BaseException) -> str | None:
    """A message for a write that failed because of a full disk or a read-only store, else None."""
    if not isinstance(e, (sqlite3.OperationalError, OSError)):
        return None
    text = str(e).lower()
    code = getattr(e, "errno", None)
    if "disk is full" in text or code == errno.ENOSPC:
        return (
            "The disk that holds the instance folder is full, so nothing was saved. "
            "Free some space (or move OIAP_INSTANCE to a larger disk), then try again."
        )
    if "readonly" in text or "read-only" in text or code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (
            "The instance folder or its database is read-only, so nothing was saved. "
            "Give the server's user write access to the instance folder (OIAP_INSTANCE), then try again."
        )
    if "unable to open database" in text:
        return "The database file cannot be opened: check that the instance folder exists and is writable."
    return None
