"""Backups with SQLite's online backup API: safe while the app serves, consistent under WAL."""

import sqlite3
from pathlib import Path

from .errors import InvalidInput
from .serving import exclusive


def integrity_problems(path: str | Path) -> list[str]:
    """PRAGMA integrity_check of a database file; an empty list means it is sound."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = [r[0] for r in conn.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as e:
        return [f"not a readable SQLite database: {e}"]
    finally:
        conn.close()
    return [] if rows == ["ok"] else rows


def _copy(src_path: str | Path, dest_path: str | Path, standalone: bool = False) -> None:
    src = sqlite3.connect(f"file:{src_path}?mode=ro", uri=True, timeout=30)
    dest = sqlite3.connect(str(dest_path), timeout=30)
    try:
        # One step: in WAL mode the copy reads one consistent snapshot without blocking
        # writers, whereas a stepped copy restarts every time the app writes in between.
        src.backup(dest)
        if standalone:
            # A backup is one file: out of WAL mode, nobody who opens it (the integrity check)
            # leaves FILE-wal and FILE-shm beside it. Restoring it into the WAL store keeps WAL.
            dest.execute("PRAGMA journal_mode = DELETE")
    finally:
        dest.close()
        src.close()


def _sidecars(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal")]


def backup(database: str | Path, target: str | Path) -> Path:
    """Copy the live database to target (written beside it first, renamed when whole and checked)."""
    target = Path(target)
    if target.is_dir():
        raise InvalidInput(f"{target} is a folder; give a file name such as {target}/oiap-backup.sqlite3")
    if not Path(database).exists():
        raise InvalidInput(f"no database at {database}; run `flask oiap init-db` first")
    part = target.with_name(target.name + ".part")
    part.unlink(missing_ok=True)
    try:
        _copy(database, part, standalone=True)
        problems = integrity_problems(part)
        if problems:
            raise InvalidInput(f"the backup failed its integrity check: {problems[0]}")
        part.replace(target)
    finally:
        for p in (part, *_sidecars(part)):
            p.unlink(missing_ok=True)
    return target


def restore(database: str | Path, source: str | Path, force: bool = False) -> None:
    """Replace the database with a backup, after checking the backup's integrity and schema."""
    source = Path(source)
    if not source.is_file():
        raise InvalidInput(f"no backup file at {source}")
    problems = integrity_problems(source)
    if problems:
        raise InvalidInput(f"{source} failed its integrity check, nothing restored: {problems[0]}")
    conn = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()
    if not {"_sqlite_migrations", "annotations", "images"} <= tables:
        raise InvalidInput(f"{source} is not an oiap database (no oiap tables in it); nothing restored")
    database = Path(database)
    if database.exists() and database.stat().st_size > 0 and not force:
        raise InvalidInput(
            f"{database} exists; restoring would overwrite it. Stop the server, then run again with --force"
        )
    # Refused, even with --force, while a server holds the store (app/serving.py); held meanwhile,
    # so a server starting now waits for the restore to finish.
    with exclusive(database):
        # The backup API writes the whole copy in one transaction of the destination,
        # so a crash mid-restore leaves the old database, never a mix.
        _copy(source, database)
