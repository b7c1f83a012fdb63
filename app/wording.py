"""Counts and times in words for pages, flash messages and JSON answers: "1 annotation", "2 annotations",
"3 Dec 2026 18:05 UTC"."""

from datetime import datetime


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """`n` and the noun, singular for exactly 1, else `nouns` (default: the noun with an s)."""
    return f"{n} {noun if n == 1 else (nouns or noun + 's')}"


def when(iso: str | None) -> str:
    """A stored ISO time as people read it: "3 Dec 2026 18:05 UTC" (empty for none; odd text as is)."""
    if not iso:
        return ""
    try:
        return datetime.fromisoformat(iso).strftime("%-d %b %Y %H:%M UTC")
    except ValueError:
        return iso
