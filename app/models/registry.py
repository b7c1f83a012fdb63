"""The registry of models: rows in `models`, files checked by sha256 before use.

A model's `path` is absolute for files kept in the instance's models folder, or relative to the
repository for the builtin models committed with the code.
"""

import hashlib
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InvalidInput, NotFound
from ..kinds import get_kind
from ..paths import REPO_ROOT

if TYPE_CHECKING:
    from sqlite_utils import Database


SOURCES = ("builtin", "trained", "fetched", "added")


def sha256_file(path: str | Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def place_file(src: str | Path, models_dir: str | Path, sha256: str, suffix: str | None = None) -> Path:
    """Copy a file into the models folder as <sha256><suffix> (the source's suffix unless given),
    atomically: written as .part and renamed, so a reader never sees half a file. Returns the path."""
    src = Path(src)
    dest = Path(models_dir) / f"{sha256}{src.suffix if suffix is None else suffix}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists():
        part = dest.with_name(dest.name + ".part")
        shutil.copyfile(src, part)
        part.replace(dest)
    return dest.resolve()


def store_file(path: Path, models_dir: str | Path) -> dict:
    """Copy a file into the models folder as <sha256><suffix>; returns {path, sha256}."""
    digest = sha256_file(path)
    return {"path": str(place_file(path, models_dir, digest)), "sha256": digest}


def model_path(row: dict) -> Path:
    """The file of a model row, resolved."""
    p = Path(row["path"])
    return p if p.is_absolute() else REPO_ROOT / p


def register_model(
    db: "Database",
    path: str | Path,
    kind: str,
    *,
    name: str | None = None,
    source: str = "added",
    models_dir: str | Path | None = None,
    params: dict | None = None,
    metrics: dict | None = None,
    licence: str | None = None,
    origin: str | None = None,
    parent_id: int | None = None,
    version: str | None = None,
) -> int:
    """Register a model file and return its id; the same file (by hash and kind) is registered once.

    With models_dir the file is copied there as <sha256><suffix>, so the row never points at a
    file that its owner may later move or change.
    """
    # The store is imported where it is written, not above: bulk-annotate's worker processes read rows
    # (load_annotator, verified_path) and never import sqlite_utils, its pandas, or Flask (app.db).
    from ..db import immediate, now

    get_kind(kind)
    if source not in SOURCES:
        raise InvalidInput(f"unknown model source {source!r}; use one of {', '.join(SOURCES)}")
    src = Path(path)
    if not src.is_file():
        raise InvalidInput(f"model file {src} does not exist")
    digest = sha256_file(src)
    if models_dir is not None:
        stored = str(place_file(src, models_dir, digest))
    else:
        resolved = src.resolve()
        try:
            stored = str(resolved.relative_to(REPO_ROOT))
        except ValueError:
            stored = str(resolved)
    # Read then write in one write transaction (a savepoint inside a caller's), so two processes
    # registering the same file cannot both insert it, and the row is committed on return.
    with immediate(db):
        existing = list(
            db.query("SELECT id, source, params FROM models WHERE sha256 = ? AND kind = ?", [digest, kind])
        )
        if existing:
            row = existing[0]
            if source == "builtin" and row["source"] == "builtin" and params is not None:
                # A builtin row's settings are the code's (MTCNN's thresholds, say): an upgraded
                # store's row takes this version's, as a new store's would.
                if row["params"] != json.dumps(params):
                    db.execute("UPDATE models SET params = ? WHERE id = ?", [json.dumps(params), row["id"]])
            return row["id"]
        cur = db.execute(
            "INSERT INTO models (kind, name, version, sha256, path, params, metrics, status, parent_id, source,"
            " licence, origin, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'candidate', ?, ?, ?, ?, ?)",
            [
                kind,
                name or src.stem,
                version,
                digest,
                stored,
                json.dumps(params or {}),
                json.dumps(metrics or {}),
                parent_id,
                source,
                licence,
                origin,
                now(),
            ],
        )
        return cur.lastrowid


def _decode(row: dict) -> dict:
    row["params"] = json.loads(row["params"]) if row.get("params") else {}
    row["metrics"] = json.loads(row["metrics"]) if row.get("metrics") else {}
    return row


def get_model(db: "Database", model_id: int) -> dict:
    """One model row, JSON decoded; NotFound names it."""
    rows = list(db.query("SELECT * FROM models WHERE id = ?", [model_id]))
    if not rows:
        raise NotFound(f"no model {model_id}; `flask oiap models list` shows them")
    return _decode(rows[0])


def list_models(db: "Database", kind: str | None = None) -> list[dict]:
    """Every model (of a kind), newest first."""
    sql, params = "SELECT * FROM models", []
    if kind:
        sql, params = sql + " WHERE kind = ?", [kind]
    return [_decode(r) for r in db.query(sql + " ORDER BY id DESC", params)]


def active_model(db: "Database", kind: str) -> dict | None:
    """The active model of a kind, or None."""
    rows = list(db.query("SELECT * FROM models WHERE kind = ? AND status = 'active'", [kind]))
    return _decode(rows[0]) if rows else None


def activate_model(db: "Database", model_id: int, user_id: int | None = None) -> dict:
    """Make a model the active one of its kind; the previous active one is retired."""
    from ..audit.events import log_event
    from ..db import immediate

    with immediate(db):
        model = get_model(db, model_id)
        previous = active_model(db, model["kind"])
        if previous and previous["id"] == model_id:
            return model
        verified_path(model)
        if previous:
            db.execute("UPDATE models SET status = 'retired' WHERE id = ?", [previous["id"]])
        db.execute("UPDATE models SET status = 'active' WHERE id = ?", [model_id])
        log_event(
            db,
            "activate_model",
            user_id=user_id,
            target_type="model",
            target_id=model_id,
            before={"active": previous["id"] if previous else None},
            after={"active": model_id},
        )
    return get_model(db, model_id)


def verified_path(model: dict) -> Path:
    """The model's file, refused when missing or when its hash does not match the row."""
    path = model_path(model)
    if not path.is_file():
        raise InvalidInput(f"model {model['id']} ({model['name']}): file {path} is missing")
    digest = sha256_file(path)
    if digest != model["sha256"]:
        raise InvalidInput(
            f"model {model['id']} ({model['name']}): {path} has sha256 {digest[:12]}…, "
            f"the registry expects {model['sha256'][:12]}…; the file was changed or replaced. "
            "Register the new file with `flask oiap models add` instead."
        )
    return path
