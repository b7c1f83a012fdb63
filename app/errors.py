"""Named domain errors, with no Flask: domain, training and bulk code raise these; app/web.py turns them
into error pages."""


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
