"""Where a `next=` parameter may send the browser: only to a path of this site.

Browsers read a backslash as a slash and drop tabs and newlines inside URLs, so `/\\evil.example`
and `/\t/evil.example` are other sites to them though they start with one slash; such values are
refused, as are absolute URLs and scheme-relative ones (`//evil.example`).
"""

from urllib.parse import urlsplit


def safe_next(target: str | None) -> str | None:
    """The target when it is a path on this site, else None."""
    if not target or not target.startswith("/") or "\\" in target:
        return None
    if any(ord(c) < 0x20 or c == "\x7f" for c in target):
        return None
    if target.startswith("//"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target
