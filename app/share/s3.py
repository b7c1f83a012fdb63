"""Share models and annotation sets through an S3 bucket (AWS, MinIO, Ceph: any S3 API).

Layout under s3://<S3_BUCKET>/<S3_PREFIX>/:
  manifest.json               every model and set pushed, with its hash and metadata
  models/<sha256><suffix>     model files, named by the sha256 of their bytes
  sets/<sha256>.jsonl.gz      annotation sets (app/sets/files.py), named by their content's sha256

Objects are content-addressed, so a push only uploads what the bucket lacks, and a fetch verifies
each object against its name before anything reaches the store.
"""

import json
import secrets
import socket
import tempfile
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)
from sqlite_utils import Database

from ..audit.events import log_event
from ..errors import OiapError, StorageError
from ..models.registry import list_models, place_file, register_model, sha256_file, verified_path
from ..sets import files as setfile

MANIFEST_FORMAT = "oiap-manifest/1"
CREDENTIALS_HELP = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (a profile in ~/.aws)"
BAD_KEY_CODES = (
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidClientTokenId",
    "InvalidToken",
    "ExpiredToken",
)


@dataclass
class Bucket:
    """Where the team's shared store lives: a client, a bucket and a key prefix."""

    client: object
    name: str
    prefix: str
    endpoint: str | None

    def key(self, *parts: str) -> str:
        """The object key for a path under the prefix."""
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p and p.strip("/"))

    def url(self, key: str) -> str:
        """s3://bucket/key, for messages and origins."""
        return f"s3://{self.name}/{key}"


def get_s3(config: Mapping, cache: MutableMapping | None = None):
    """An S3 client built from config on first use (never at import); kept in `cache` (the app's
    extensions) when one is given, so one app reuses one client."""
    if cache is not None and "oiap_s3" in cache:
        return cache["oiap_s3"]
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=config.get("S3_ENDPOINT_URL") or None,
        config=Config(
            retries={
                "max_attempts": int(config.get("S3_MAX_ATTEMPTS") or 5),
                "mode": "standard",
            }
        ),
    )
    if cache is not None:
        cache["oiap_s3"] = client
    return client


def instance_name(config: Mapping, instance_path: str | Path) -> str:
    """This instance's name in the manifest: S3_INSTANCE_NAME, or one made once and kept in the instance folder."""
    name = config.get("S3_INSTANCE_NAME")
    if name:
        return str(name)
    path = Path(instance_path) / "s3_instance_name"
    if not path.exists():
        path.write_text(f"{socket.gethostname()}-{secrets.token_hex(3)}\n")
    return path.read_text().strip()


def configured_bucket(config: Mapping, cache: MutableMapping | None = None) -> Bucket:
    """The configured bucket; StorageError names the setting when there is none."""
    name = config.get("S3_BUCKET")
    if not name:
        raise StorageError(
            "no S3 bucket configured: set OIAP_S3_BUCKET (or S3_BUCKET in instance/config.py); "
            "for MinIO, Ceph or another S3 API also set OIAP_S3_ENDPOINT_URL"
        )
    return Bucket(get_s3(config, cache), name, config.get("S3_PREFIX") or "", config.get("S3_ENDPOINT_URL"))


@contextmanager
def s3_errors(bucket: Bucket) -> Iterator[None]:
    """Turn boto's credential, permission and connection errors into messages that say what to set."""
    where = f"bucket {bucket.name!r}" + (f" at {bucket.endpoint}" if bucket.endpoint else "")
    try:
        yield
    except (NoCredentialsError, PartialCredentialsError) as e:
        raise StorageError(f"no usable AWS credentials for {where} ({e}): {CREDENTIALS_HELP}") from None
    except EndpointConnectionError as e:
        raise StorageError(
            f"cannot reach the S3 endpoint ({e}): check OIAP_S3_ENDPOINT_URL (unset means AWS itself)"
        ) from None
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        if code in BAD_KEY_CODES:
            raise StorageError(
                f"S3 refused the credentials for {where} ({code}): {CREDENTIALS_HELP}"
            ) from None
        if code in ("AccessDenied", "403", "AllAccessDisabled"):
            raise StorageError(
                f"access denied to {where} ({code}): the credentials lack permission for it; "
                f"{CREDENTIALS_HELP} to ones that may read and write it, or check OIAP_S3_BUCKET"
            ) from None
        if code == "NoSuchBucket":
            raise StorageError(
                f"{where} does not exist: check OIAP_S3_BUCKET (and OIAP_S3_ENDPOINT_URL), or create the bucket"
            ) from None
        raise StorageError(f"S3 error on {where}: {code}: {e}") from None


def _missing(e: ClientError) -> bool:
    return e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


def read_manifest(bucket: Bucket) -> dict:
    """The bucket's manifest, or an empty one when nothing was pushed yet."""
    try:
        body = bucket.client.get_object(Bucket=bucket.name, Key=bucket.key("manifest.json"))["Body"].read()
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") == "NoSuchKey":
            return {"format": MANIFEST_FORMAT, "models": {}, "sets": {}}
        raise
    manifest = json.loads(body)
    if manifest.get("format") != MANIFEST_FORMAT:
        raise StorageError(f"{bucket.url(bucket.key('manifest.json'))} is not an oiap manifest")
    return manifest


def write_manifest(bucket: Bucket, manifest: dict) -> None:
    """Store the manifest (sorted, so an unchanged manifest is byte-identical)."""
    bucket.client.put_object(
        Bucket=bucket.name,
        Key=bucket.key("manifest.json"),
        Body=json.dumps(manifest, indent=1, sort_keys=True).encode(),
        ContentType="application/json",
    )


def _head(bucket: Bucket, key: str) -> dict | None:
    try:
        return bucket.client.head_object(Bucket=bucket.name, Key=key)
    except ClientError as e:
        if _missing(e):
            return None
        raise


def _present(bucket: Bucket, key: str, size: int, sha256: str) -> bool:
    """True when the object exists with that size and recorded hash: nothing to upload."""
    head = _head(bucket, key)
    return bool(
        head and head["ContentLength"] == size and head.get("Metadata", {}).get("sha256") in (sha256, None)
    )


def _upload(bucket: Bucket, path: Path, key: str, sha256: str, callback: Callable | None = None) -> None:
    bucket.client.upload_file(
        str(path), bucket.name, key, ExtraArgs={"Metadata": {"sha256": sha256}}, Callback=callback
    )


# --- push ---------------------------------------------------------------------


def _model_entry(db: Database, m: dict, key: str, size: int) -> dict:
    parent = None
    if m.get("parent_id"):
        row = db.execute("SELECT sha256 FROM models WHERE id = ?", [m["parent_id"]]).fetchone()
        parent = row[0] if row else None
    return {
        "sha256": m["sha256"],
        "key": key,
        "size": size,
        "kind": m["kind"],
        "name": m["name"],
        "version": m["version"],
        "params": m["params"],
        "metrics": m["metrics"],
        "licence": m["licence"],
        "origin": m["origin"],
        "source": m["source"],
        "parent_sha256": parent,
        "created_at": m["created_at"],
    }


def _extra_files(params: dict) -> dict[str, dict]:
    """A model's files beyond the row's own, as {name: {path, sha256}}: MTCNN's other nets
    (params["files"]) and a trained model's torch checkpoint (params["checkpoint"])."""
    extra = dict(params.get("files") or {})
    if isinstance(params.get("checkpoint"), dict):
        extra["checkpoint"] = params["checkpoint"]
    return extra


def _set_extra_file(params: dict, name: str, value: dict) -> None:
    if name == "checkpoint":
        params["checkpoint"] = value
    else:
        params.setdefault("files", {})[name] = value


def _model_files(m: dict) -> dict[str, tuple[Path, str]]:
    """Every file of a model row, verified: {"main": (path, sha256), <name>: ...} (MTCNN has three)."""
    files = {"main": (verified_path(m), m["sha256"])}
    for name, f in _extra_files(m.get("params") or {}).items():
        row = {"id": m["id"], "name": f"{m['name']} ({name})", "path": f["path"], "sha256": f["sha256"]}
        files[name] = (verified_path(row), f["sha256"])
    return files


def _push_models(db: Database, bucket: Bucket, manifest: dict, report: dict, dry_run: bool, progress) -> None:
    for m in sorted(list_models(db), key=lambda m: m["id"]):
        if m["source"] == "builtin":
            report["skipped"].append(
                {
                    "what": "model",
                    "name": m["name"],
                    "sha256": m["sha256"],
                    "reason": "builtin: ships with the code",
                }
            )
            continue
        try:
            files = _model_files(m)
        except OiapError as e:
            report["skipped"].append(
                {"what": "model", "name": m["name"], "sha256": m["sha256"], "reason": str(e)}
            )
            continue
        keys = {}
        for name, (path, sha) in files.items():
            key = bucket.key("models", f"{sha}{path.suffix}")
            size = path.stat().st_size
            keys[name] = {"key": key, "sha256": sha, "size": size}
            label = m["name"] if name == "main" else f"{m['name']} ({name})"
            item = {"what": "model", "name": label, "sha256": sha, "key": key, "size": size}
            if _present(bucket, key, size, sha):
                report["skipped"].append({**item, "reason": "already in the bucket"})
            elif dry_run:
                report["uploaded"].append(item)
            else:
                _upload(bucket, path, key, sha, progress)
                report["uploaded"].append(item)
        ident = f"{m['kind']}:{m['sha256']}"
        if m["source"] != "fetched" or ident not in manifest["models"]:
            # A fetched copy never overwrites what its first pusher said about it.
            entry = _model_entry(db, m, keys["main"]["key"], keys["main"]["size"])
            entry["files"] = {k: v for k, v in keys.items() if k != "main"}
            manifest["models"][ident] = entry


class _SetHashes:
    """Content hashes of sets, computed once, following links into other sets first."""

    def __init__(self, db: Database, workdir: Path):
        self.db, self.workdir = db, workdir
        self.done: dict[str, dict] = {}
        self.busy: set[str] = set()

    def get(self, name: str) -> dict | None:
        if name in self.done:
            return self.done[name]
        if name in self.busy:
            return None  # a cycle of links: the inner reference carries no hash
        self.busy.add(name)
        row = list(self.db.query("SELECT * FROM annotation_sets WHERE name = ?", [name]))[0]
        refs = {}
        for r in setfile.referenced_sets(self.db, row["id"]):
            info = self.get(r["name"])
            refs[r["name"]] = info["sha256"] if info else None
        path = self.workdir / f"set-{row['id']}.jsonl.gz"
        sha, head = setfile.write_set_file(self.db, row["id"], refs, path)
        self.done[name] = {
            "path": path,
            "sha256": sha,
            "entry": {
                "sha256": sha,
                "key": None,
                "size": path.stat().st_size,
                "kind": head["kind"],
                "source": head["source"],
                "label": head["label"],
                "model_sha256": (head["model"] or {}).get("sha256"),
                "counts": head["counts"],
                "n_lines": head["n_lines"],
                "refs": refs,
            },
        }
        self.busy.discard(name)
        return self.done[name]


def _not_ours(db: Database, name: str, sha: str, listed: dict, instance: str) -> str | None:
    """Why this set must not go into the manifest, or None when it may."""
    row = db.execute("SELECT params FROM annotation_sets WHERE name = ?", [name]).fetchone()
    params = json.loads(row[0]) if row and row[0] else {}
    if "s3_sha256" in params:
        owner = params.get("s3_owner") or "another instance"
        if sha == params["s3_sha256"]:
            if not listed or listed.get("sha256") == sha:
                return f"a copy fetched from {owner}, unchanged; only {owner} pushes it"
            return f"a copy fetched from {owner}, unchanged; the bucket has a newer version: fetch it"
        return f"fetched from {owner} and changed here; only {owner} pushes it (rename the set here to share yours)"
    owner = listed.get("owner")
    if owner and owner != instance:
        return f"the bucket's {name!r} belongs to {owner}; rename the set here to share yours"
    return None


def push(
    db: Database,
    bucket: Bucket,
    *,
    models: bool = True,
    annotations: bool = True,
    sets: list[str] | None = None,
    dry_run: bool = False,
    cache_dir: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
    instance: str = "",
) -> dict:
    """Upload models and annotation sets the bucket lacks, then the manifest; returns what moved.

    Each set in the manifest has one owner, the instance that made it: others fetch copies and
    get its updates, and never push over it.
    """
    report: dict = {"bucket": bucket.url(bucket.key()), "dry_run": dry_run, "uploaded": [], "skipped": []}
    with s3_errors(bucket):
        manifest = read_manifest(bucket)
        before = json.dumps(manifest, sort_keys=True)
        if models:
            _push_models(db, bucket, manifest, report, dry_run, progress)
        if annotations:
            names = [r["name"] for r in db.query("SELECT name FROM annotation_sets ORDER BY id")]
            if sets:
                unknown = sorted(set(sets) - set(names))
                if unknown:
                    raise StorageError(
                        f"no annotation set named {', '.join(unknown)}; `flask oiap sets list` shows them"
                    )
                names = [n for n in names if n in sets]
            Path(cache_dir or tempfile.gettempdir()).mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=cache_dir, prefix="push-") as work:
                hashes = _SetHashes(db, Path(work))
                for name in names:
                    info = hashes.get(name)
                    entry = dict(info["entry"], key=bucket.key("sets", f"{info['sha256']}.jsonl.gz"))
                    item = {
                        "what": "set",
                        "name": name,
                        "sha256": info["sha256"],
                        "key": entry["key"],
                        "size": entry["size"],
                    }
                    listed = manifest["sets"].get(name, {})
                    refusal = _not_ours(db, name, info["sha256"], listed, instance)
                    if refusal:
                        report["skipped"].append({**item, "reason": refusal})
                        continue
                    entry["owner"] = instance or None
                    previous = listed.get("sha256")
                    if previous and previous != info["sha256"]:
                        # Another version of this set was pushed before (from here or elsewhere).
                        item["replaces"] = previous
                    head = _head(bucket, entry["key"])
                    if head and head.get("Metadata", {}).get("sha256") in (info["sha256"], None):
                        # Same content (perhaps compressed by another zlib): keep the stored object.
                        entry["size"] = head["ContentLength"]
                        report["skipped"].append({**item, "reason": "already in the bucket"})
                    elif dry_run:
                        report["uploaded"].append(item)
                    else:
                        _upload(bucket, info["path"], entry["key"], info["sha256"], progress)
                        report["uploaded"].append(item)
                    manifest["sets"][name] = entry
        changed = json.dumps(manifest, sort_keys=True) != before
        report["manifest"] = "unchanged" if not changed else ("would update" if dry_run else "updated")
        if changed and not dry_run:
            # Re-read just before writing and keep others' entries: two pushes rarely race on a LAN
            # team, and when they do, neither loses what it uploaded.
            latest = read_manifest(bucket)
            latest["models"].update(manifest["models"])
            latest["sets"].update(manifest["sets"])
            write_manifest(bucket, latest)
    if not dry_run and (report["uploaded"] or changed):
        log_event(
            db,
            "push",
            target_type="bucket",
            target_id=report["bucket"],
            after={"uploaded": len(report["uploaded"])},
        )
    return report


# --- fetch --------------------------------------------------------------------


def _download_verified(
    bucket: Bucket, key: str, dest: Path, expect: str, hasher: Callable[[Path], str], progress
) -> None:
    """Download key to dest and check its hash; a mismatch deletes dest and raises StorageError."""
    try:
        bucket.client.download_file(bucket.name, key, str(dest), Callback=progress)
    except ClientError as e:
        if _missing(e):
            dest.unlink(missing_ok=True)
            raise StorageError(
                f"{bucket.url(key)} is in the manifest but not in the bucket; push it again"
            ) from None
        raise
    try:
        got = hasher(dest)
    except (OSError, EOFError, ValueError) as e:
        got = f"unreadable ({e})"
    if got != expect:
        dest.unlink(missing_ok=True)
        raise StorageError(
            f"{bucket.url(key)} is corrupt: its content hashes to {got[:16]}…, its name and the manifest say "
            f"{expect[:16]}…; refused, nothing was imported. Push it again from an instance that has it."
        )


def _fetch_models(
    db: Database,
    bucket: Bucket,
    manifest: dict,
    report: dict,
    dry_run: bool,
    work: Path,
    models_dir: Path,
    progress,
) -> None:
    if not dry_run and manifest["models"]:
        from ..models.builtin import ensure_builtin_models

        # A fetched model's parent may be a builtin one this store has not registered yet.
        ensure_builtin_models(db)
    pending = dict(manifest["models"])
    shas = {e["sha256"] for e in pending.values()}
    # Parents first, so parent_id can point at a local row.
    while pending:
        ready = [i for i, e in pending.items() if e.get("parent_sha256") not in shas] or list(pending)
        for ident in sorted(ready):
            entry = pending.pop(ident)
            sha = entry["sha256"]
            item = {
                "what": "model",
                "name": entry["name"],
                "sha256": sha,
                "key": entry["key"],
                "size": entry["size"],
            }
            if db.execute(
                "SELECT 1 FROM models WHERE sha256 = ? AND kind = ?", [sha, entry["kind"]]
            ).fetchone():
                report["skipped"].append({**item, "reason": "already registered"})
                continue
            if dry_run:
                report["fetched"].append(item)
                continue
            # Everything downloaded and verified before anything is placed or registered.
            extra = entry.get("files") or {}
            got: dict[str, Path] = {}
            try:
                for name, f in {"main": {"key": entry["key"], "sha256": sha}, **extra}.items():
                    got[name] = work / Path(f["key"]).name
                    _download_verified(bucket, f["key"], got[name], f["sha256"], sha256_file, progress)
            except StorageError as e:
                report["refused"].append({**item, "reason": str(e)})
                for p in got.values():
                    p.unlink(missing_ok=True)
                continue
            params = json.loads(json.dumps(entry.get("params") or {}))
            for name, f in extra.items():
                local = place_file(got[name], models_dir, f["sha256"])
                _set_extra_file(params, name, {"path": str(local), "sha256": f["sha256"]})
            parent = None
            if entry.get("parent_sha256"):
                row = db.execute(
                    "SELECT id FROM models WHERE sha256 = ? ORDER BY kind != ?, id",
                    [entry["parent_sha256"], entry["kind"]],
                ).fetchone()
                parent = row[0] if row else None
            model_id = register_model(
                db,
                got["main"],
                entry["kind"],
                name=entry["name"],
                source="fetched",
                models_dir=models_dir,
                params=params,
                metrics=entry.get("metrics"),
                licence=entry.get("licence"),
                origin=entry.get("origin") or bucket.url(entry["key"]),
                parent_id=parent,
                version=entry.get("version"),
            )
            for p in got.values():
                p.unlink(missing_ok=True)
            log_event(db, "fetch_model", target_type="model", target_id=model_id, after={"sha256": sha})
            report["fetched"].append({**item, "id": model_id})


def _update_or_skip(
    db: Database, hashes: "_SetHashes", name: str, entry: dict
) -> tuple[dict | None, str | None]:
    """For a set the manifest lists: (the local copy to replace, None), or (None, why it is skipped).

    A local copy is replaced only when it was fetched from the same owner and is unchanged since.
    """
    rows = list(db.query("SELECT id, params FROM annotation_sets WHERE name = ?", [name]))
    if not rows:
        return None, None
    params = json.loads(rows[0]["params"]) if rows[0]["params"] else {}
    if "s3_sha256" not in params:
        return None, "a local set has this name (not overwritten)"
    if params["s3_sha256"] == entry["sha256"]:
        return None, "already fetched"
    if (params.get("s3_owner") or None) != (entry.get("owner") or None):
        return None, "the local copy came from another owner (not overwritten)"
    if hashes.get(name)["sha256"] != params["s3_sha256"]:
        return None, "changed here since it was fetched (not overwritten)"
    return {"id": rows[0]["id"], "sha256": params["s3_sha256"]}, None


def _import_order(entries: dict[str, dict]) -> list[str]:
    """Set names with the sets they link into first, so links can resolve."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str, stack: set[str]) -> None:
        if name in seen or name in stack or name not in entries:
            return
        stack.add(name)
        for ref in sorted(entries[name].get("refs") or {}):
            visit(ref, stack)
        stack.discard(name)
        seen.add(name)
        order.append(name)

    for name in sorted(entries):
        visit(name, set())
    return order


def fetch(
    db: Database,
    bucket: Bucket,
    *,
    models: bool = True,
    annotations: bool = True,
    dry_run: bool = False,
    models_dir: str | Path,
    cache_dir: str | Path,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Download what the store lacks, verify each hash, register models and import sets."""
    report: dict = {
        "bucket": bucket.url(bucket.key()),
        "dry_run": dry_run,
        "fetched": [],
        "skipped": [],
        "refused": [],
    }
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    with s3_errors(bucket), tempfile.TemporaryDirectory(dir=cache_dir, prefix="fetch-") as work:
        manifest = read_manifest(bucket)
        if models:
            _fetch_models(db, bucket, manifest, report, dry_run, Path(work), Path(models_dir), progress)
        if annotations:
            entries = manifest["sets"]
            hashes = _SetHashes(db, Path(work))
            for name in _import_order(entries):
                entry = entries[name]
                item = {
                    "what": "set",
                    "name": name,
                    "sha256": entry["sha256"],
                    "key": entry["key"],
                    "size": entry["size"],
                }
                replace, reason = _update_or_skip(db, hashes, name, entry)
                if reason:
                    report["skipped"].append({**item, "reason": reason})
                    continue
                if replace:
                    item["replaces"] = replace["sha256"]
                if dry_run:
                    report["fetched"].append(item)
                    continue
                tmp = Path(work) / Path(entry["key"]).name
                try:
                    _download_verified(
                        bucket, entry["key"], tmp, entry["sha256"], setfile.content_sha256, progress
                    )
                    result = setfile.import_set_file(
                        db,
                        tmp,
                        entry["sha256"],
                        origin=bucket.url(entry["key"]),
                        owner=entry.get("owner"),
                        replace_set_id=replace["id"] if replace else None,
                    )
                except (StorageError, OiapError, ValueError, KeyError) as e:
                    report["refused"].append({**item, "reason": str(e)})
                    continue
                finally:
                    tmp.unlink(missing_ok=True)
                report["fetched"].append({**item, **result})
    return report
