"""Counts in words for pages, flash messages and JSON answers: "1 annotation", "2 annotations"."""


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """`n` and the noun, singular for exactly 1, else `nouns` (default: the noun with an s)."""
    return f"{n} {noun if n == 1 else (nouns or noun + 's')}"
