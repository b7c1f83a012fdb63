"""Download Open Images files from the public bucket CVDF hosts (anonymous), resumably.

A private mirror is read with signed requests (--signed, OPEN_IMAGES_SIGNED) and the same AWS
credentials as push/fetch; access denied is an error naming that, never "not in bucket".

Keys are <split>/<ImageID>.jpg in the bucket `open-images-dataset` (OPEN_IMAGES_BUCKET; another S3
API through OPEN_IMAGES_ENDPOINT_URL). A file lands as <dest>.part and is renamed when complete
and checked (size, and MD5 where the ETag is one), so an interrupted run leaves only .part files,
which the next run continues with a ranged GET.
"""

import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError
from sqlite_utils import Database

from ..errors import InvalidInput, NotFound, StorageError
from .layout import check_layout, image_path, validate_image_id, validate_split

DEFAULT_BUCKET = "open-images-dataset"
DEFAULT_REGION = "us-east-1"
CHUNK = 1 << 16


def open_images_client(config: Mapping, signed: bool = False):
    """An S3 client for the Open Images bucket: anonymous (unsigned) for CVDF's public one; signed
    (OPEN_IMAGES_SIGNED or signed=True) with the credentials push/fetch use, for a private mirror."""
    signed = signed or bool(config.get("OPEN_IMAGES_SIGNED"))
    return boto3.session.Session().client(
        "s3",
        endpoint_url=config.get("OPEN_IMAGES_ENDPOINT_URL") or None,
        region_name=config.get("OPEN_IMAGES_REGION") or DEFAULT_REGION,
        config=Config(
            **({} if signed else {"signature_version": UNSIGNED}),
            retries={"max_attempts": 3, "mode": "standard"},
            max_pool_connections=32,
        ),
    )


DENIED = ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch")


def _denied_message(bucket: str, key: str, code: str, signed: bool) -> str:
    if signed:
        return (
            f"access denied ({code}) to s3://{bucket}/{key}: check the credentials (AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY or AWS_PROFILE) and that they may read the bucket"
        )
    return (
        f"access denied ({code}) to s3://{bucket}/{key}: the bucket is not public; sign the requests "
        "with your AWS credentials (--signed or OIAP_OPEN_IMAGES_SIGNED=true, and AWS_ACCESS_KEY_ID/"
        "AWS_SECRET_ACCESS_KEY or AWS_PROFILE as for push/fetch)"
    )


def _check_prefix(prefix: str | None) -> str | None:
    if prefix is not None and not re.fullmatch(r"[0-9a-f]{1,16}", prefix):
        raise InvalidInput(f"bad --prefix {prefix!r}: one or more lowercase hex characters, 0..f")
    return prefix


def read_ids_file(path: str | Path, split: str) -> list[str]:
    """ImageIDs from a file: one per line, `<id>` or `<split>/<id>` (as Open Images' downloader takes)."""
    ids = []
    for n, line in enumerate(Path(path).read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "/" in line:
            line_split, line = line.split("/", 1)
            if line_split != split:
                continue
        ids.append(validate_image_id(line.removesuffix(".jpg"), f"{path} line {n}"))
    return list(dict.fromkeys(ids))


def ids_to_download(
    db: Database,
    split: str,
    *,
    prefix: str | None = None,
    ids_file: str | Path | None = None,
    limit: int | None = None,
) -> list[str]:
    """The ImageIDs to fetch: from --ids-file, or the store's Open Images images of the split."""
    validate_split(split)
    _check_prefix(prefix)
    if ids_file:
        ids = read_ids_file(ids_file, split)
        if prefix:
            ids = [i for i in ids if i.startswith(prefix)]
    else:
        # Images with a path came from a folder or the demo: they have no Open Images file.
        sql = "SELECT id FROM images WHERE split = ? AND path IS NULL"
        params: list = [split]
        if prefix:
            sql += " AND id >= ? AND id < ?"
            params += [prefix, prefix + "g"]
        ids = [r[0] for r in db.execute(sql + " ORDER BY id", params)]
    return ids[:limit] if limit else ids


def target_path(config: Mapping, split: str, image_id: str) -> Path:
    """Where a downloaded image goes: OPEN_IMAGES_DIR/<split>/<id>.jpg, or its OPEN_IMAGES_DIR_MAP folder."""
    check_layout(config)
    mapping = config.get("OPEN_IMAGES_DIR_MAP")
    if mapping:
        key = image_id[0] if split == "train" else split
        folder = mapping.get(key) or (mapping.get("train") if split == "train" else None)
        if folder:
            return Path(folder) / f"{image_id}.jpg"
    root = config.get("OPEN_IMAGES_DIR")
    if not root:
        raise InvalidInput(
            "no image folder configured: set OIAP_OPEN_IMAGES_DIR (files go to <dir>/<split>/<id>.jpg) "
            "or OIAP_OPEN_IMAGES_DIR_MAP"
        )
    return Path(root) / split / f"{image_id}.jpg"


def existing_path(config: Mapping, split: str, image_id: str) -> Path | None:
    """The image's file where the app would read it (any layout app/images/layout.py knows), if any."""
    try:
        return image_path(config, {"id": image_id, "split": split, "path": None})
    except NotFound:
        return None


@dataclass
class Result:
    image_id: str
    status: str  # downloaded | present | missing | failed
    bytes: int = 0
    resumed_from: int = 0
    error: str | None = None


class _Retry(Exception):
    """A transient failure: try again after a pause."""


def _md5(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def _transient(e: Exception) -> bool:
    if isinstance(e, ClientError):
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return status >= 500 or e.response.get("Error", {}).get("Code") in ("SlowDown", "RequestTimeout")
    return isinstance(e, BotoCoreError | OSError | _Retry)


def download_one(
    client,
    bucket: str,
    split: str,
    image_id: str,
    dest: Path,
    *,
    existing: Path | None = None,
    on_bytes: Callable[[int], None] = lambda n: None,
    retries: int = 4,
    backoff: float = 0.5,
) -> Result:
    """Fetch one image to dest (via dest.part), resuming a partial file; retries with backoff."""
    key = f"{split}/{image_id}.jpg"
    part = dest.with_name(dest.name + ".part")
    moved = 0
    resumed_from = 0
    for attempt in range(retries + 1):
        try:
            try:
                head = client.head_object(Bucket=bucket, Key=key)
            except ClientError as e:
                code = e.response.get("Error", {}).get("Code")
                if code in ("404", "NoSuchKey"):
                    return Result(image_id, "missing", error=f"{key} not in bucket {bucket}")
                if code in DENIED:
                    # Not "missing": a private object is there but not ours to read; it fails the run.
                    return Result(image_id, "failed", error=f"{key}: access denied ({code})")
                raise
            size = head["ContentLength"]
            etag = head.get("ETag", "").strip('"')
            for present in (existing, dest):
                if present is not None and present.is_file() and present.stat().st_size == size:
                    return Result(image_id, "present")
            dest.parent.mkdir(parents=True, exist_ok=True)
            have = part.stat().st_size if part.exists() else 0
            if have > size:
                part.unlink()
                have = 0
            if have < size:
                kwargs = {"Range": f"bytes={have}-"} if have else {}
                resp = client.get_object(Bucket=bucket, Key=key, **kwargs)
                if have and resp["ResponseMetadata"]["HTTPStatusCode"] != 206:
                    have = 0  # the server ignored the range: start over
                resumed_from = resumed_from or have
                with open(part, "ab" if have else "wb") as f:
                    for chunk in resp["Body"].iter_chunks(CHUNK):
                        f.write(chunk)
                        moved += len(chunk)
                        on_bytes(len(chunk))
            got = part.stat().st_size
            if got != size:
                raise _Retry(f"{key}: got {got} of {size} bytes")
            # A single-part upload's ETag is the MD5 of the object; multipart ones have a dash.
            if re.fullmatch(r"[0-9a-f]{32}", etag) and _md5(part) != etag:
                part.unlink()
                resumed_from = 0
                raise _Retry(f"{key}: MD5 differs from the ETag; the partial file was discarded")
            part.replace(dest)
            return Result(image_id, "downloaded", bytes=moved, resumed_from=resumed_from)
        except Exception as e:  # sorted into transient and final below
            if not _transient(e) or attempt == retries:
                return Result(image_id, "failed", bytes=moved, error=f"{key}: {e}")
            time.sleep(backoff * 2**attempt)
    return Result(image_id, "failed", error=f"{key}: gave up")  # pragma: no cover - loop always returns


def _preflight(client, bucket: str, split: str, image_id: str, signed: bool = False) -> None:
    """One request before the many: a wrong endpoint, bucket or access fails at once, with what to set."""
    try:
        client.head_object(Bucket=bucket, Key=f"{split}/{image_id}.jpg")
    except EndpointConnectionError as e:
        raise StorageError(
            f"cannot reach the image bucket ({e}): check OIAP_OPEN_IMAGES_ENDPOINT_URL"
        ) from None
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code")
        if code == "NoSuchBucket" or (code == "404" and not _bucket_exists(client, bucket)):
            raise StorageError(
                f"bucket {bucket!r} does not exist there: check OIAP_OPEN_IMAGES_BUCKET "
                "(and OIAP_OPEN_IMAGES_ENDPOINT_URL)"
            ) from None
        if code in DENIED:
            raise StorageError(_denied_message(bucket, f"{split}/{image_id}.jpg", code, signed)) from None
        # Anything else (a missing image) is that image's business.


def _bucket_exists(client, bucket: str) -> bool:
    try:
        client.head_bucket(Bucket=bucket)
        return True
    except ClientError as e:
        return e.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket")


def download_images(
    config: Mapping,
    split: str,
    ids: Iterable[str],
    *,
    client=None,
    dry_run: bool = False,
    workers: int = 8,
    retries: int = 4,
    backoff: float = 0.5,
    progress=None,
    signed: bool = False,
) -> dict:
    """Download the images of a split into the configured layout; returns counts and per-image results.

    signed: sign requests with the AWS credentials (see open_images_client); a bucket that denies
    access is a StorageError before any download.
    """
    validate_split(split)
    ids = list(ids)
    bucket = config.get("OPEN_IMAGES_BUCKET") or DEFAULT_BUCKET
    plan = [(i, target_path(config, split, i), existing_path(config, split, i)) for i in ids]
    report: dict = {"bucket": bucket, "split": split, "dry_run": dry_run, "total": len(ids)}
    if dry_run:
        # Without HEADs: a file that exists counts as present; its size is checked on the real run.
        report["would_download"] = [
            {"id": i, "key": f"{split}/{i}.jpg", "dest": str(dest)}
            for i, dest, found in plan
            if found is None
        ]
        report["present"] = sum(1 for _, _, found in plan if found is not None)
        return report
    signed = signed or bool(config.get("OPEN_IMAGES_SIGNED"))
    client = client or open_images_client(config, signed)
    if plan:
        _preflight(client, bucket, split, plan[0][0], signed)
    lock = threading.Lock()

    def on_bytes(n: int) -> None:
        if progress is not None:
            with lock:
                progress.update(n)

    def job(item):
        image_id, dest, found = item
        return download_one(
            client,
            bucket,
            split,
            image_id,
            dest,
            existing=found,
            on_bytes=on_bytes,
            retries=retries,
            backoff=backoff,
        )

    results: list[Result] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for r in pool.map(job, plan):
            results.append(r)
            if progress is not None:
                with lock:
                    progress.set_postfix_str(f"{len(results)}/{len(plan)} files", refresh=False)
    for status in ("downloaded", "present", "missing", "failed"):
        report[status] = sum(1 for r in results if r.status == status)
    report["bytes"] = sum(r.bytes for r in results)
    report["resumed"] = sum(1 for r in results if r.resumed_from)
    report["errors"] = [r.error for r in results if r.error]
    report["failures"] = [{"image_id": r.image_id, "error": r.error} for r in results if r.status == "failed"]
    return report
