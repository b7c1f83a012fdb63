"""Helpers for routes that serve both a full page and an htmx fragment."""

from flask import request


def wants_fragment(target: str | None = None) -> bool:
    """True when an htmx request (not a boosted navigation or history restore) asks for a fragment.

    With `target`, only when the request swaps into that element id.
    """
    if request.headers.get("HX-Request") != "true":
        return False
    if request.headers.get("HX-Boosted") or request.headers.get("HX-History-Restore-Request"):
        return False
    return target is None or request.headers.get("HX-Target") == target
