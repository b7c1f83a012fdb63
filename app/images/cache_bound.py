"""The bound of the resized-image and crop cache (app/images/cache.py) under CACHE_DIR, in bytes, least recently used out first.

Every crop box a page (or a script) asks for is a new file, so without a bound the cache grows as
fast as requests come. Each file's mtime is its last use: a hit touches it, a new file adds its
size to a running total, and when the total passes IMAGE_CACHE_BYTES the oldest files are deleted
until it is back under 90 % of the bound. The total is counted once per process from the folder
and then kept up to date; other processes (a second server) are caught up at the next trim, which
counts the folder again.
"""

import os
import threading
from collections.abc import Mapping
from pathlib import Path

DEFAULT_BYTES = 2 * 1024**3
SUBDIRS = ("images", "crops")
LOW_WATER = 0.9

_lock = threading.Lock()
_totals: dict[str, int] = {}  # cache folder -> bytes, as this process counts them


def limit_bytes(config: Mapping) -> int:
    """The cache bound in bytes (IMAGE_CACHE_BYTES)."""
    return int(config.get("IMAGE_CACHE_BYTES") or DEFAULT_BYTES)


def _files(root: Path) -> list[tuple[float, int, Path]]:
    out = []
    for sub in SUBDIRS:
        for dirpath, _dirs, names in os.walk(root / sub):
            for name in names:
                if not name.endswith((".jpg", ".bin")):
                    continue  # temp files of a render in progress (.bin: the mask editor's superpixel maps)
                p = Path(dirpath) / name
                try:
                    st = p.stat()
                except FileNotFoundError:
                    continue  # evicted by another thread meanwhile
                out.append((st.st_mtime, st.st_size, p))
    return out


def cache_bytes(config: Mapping) -> int:
    """Bytes the cache holds now (counted from the folder)."""
    return sum(size for _m, size, _p in _files(Path(config["CACHE_DIR"])))


def used(path: Path) -> None:
    """Mark a cached file as just used (a hit), so it is evicted last."""
    try:
        os.utime(path)
    except FileNotFoundError:
        pass  # evicted between the check and now: the caller has already opened or sent it


def added(config: Mapping, path: Path) -> None:
    """Count a file just written into the cache, trimming the cache when it passes its bound."""
    root = Path(config["CACHE_DIR"])
    key = str(root)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    limit = limit_bytes(config)
    with _lock:
        if key not in _totals:
            _totals[key] = cache_bytes(config)
        else:
            _totals[key] += size
        if _totals[key] <= limit:
            return
        _totals[key] = _trim(root, int(limit * LOW_WATER), keep=path)


def _trim(root: Path, target: int, keep: Path) -> int:
    files = sorted(_files(root))  # oldest use first
    total = sum(size for _m, size, _p in files)
    for _mtime, size, p in files:
        if total <= target:
            break
        if p == keep:
            continue  # the file this request is about to send
        try:
            p.unlink()
        except FileNotFoundError:
            pass
        total -= size
    return total
