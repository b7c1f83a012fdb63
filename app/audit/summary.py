"""An audit event's before/after in a few words, for the pages that list events.

The log keeps everything (a 68-point edit stores every point); a page shows what changed: "rating
none -> good", "moved 3 of 68 points, box moved", "role reviewer -> admin". The full JSON stays in the
`events` table and in the row's title.
"""

import json
from collections.abc import Mapping

MAX_CHARS = 120
# Bookkeeping ids a reader has no use for (the table keeps them).
HIDDEN = {"rating_id"}
# Point and box moves below this (normalised units, about a pixel on a 1000 px photo) are rounding.
EPS = 1e-3


def _load(value) -> dict:
    if value in (None, ""):
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    try:
        loaded = json.loads(value)
    except (TypeError, ValueError):
        return {"value": value}
    return loaded if isinstance(loaded, dict) else {"value": loaded}


def _is_points(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(p, list) and len(p) >= 2 for p in v)


def _is_box(v) -> bool:
    return isinstance(v, list) and len(v) == 4 and all(isinstance(x, int | float) for x in v)


def _moved(a: list, b: list) -> bool:
    return any(abs(float(x) - float(y)) > EPS for x, y in zip(a, b, strict=False))


def _short(v) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    if _is_points(v):
        return f"{len(v)} points"
    if _is_box(v):
        return "box"
    if isinstance(v, list | dict):
        text = json.dumps(v, separators=(",", ":"))
        return text if len(text) <= 40 else f"{len(v)} items"
    return str(v)


def summarize(before, after) -> str:
    """What an event changed, in one short line (before and after as stored: JSON text or dicts)."""
    b, a = _load(before), _load(after)
    parts = []
    for key in [k for k in dict.fromkeys([*b, *a]) if k not in HIDDEN]:
        old, new = b.get(key), a.get(key)
        if key == "points" and _is_points(old) and _is_points(new):
            n = sum(_moved(p, q) for p, q in zip(old, new, strict=False))
            if n:
                parts.append(f"moved {n} of {len(new)} points")
        elif key == "box" and _is_box(old) and _is_box(new):
            if _moved(old, new):
                parts.append("box moved")
        elif key in b and key in a:
            if old != new:
                parts.append(f"{key} {_short(old)} → {_short(new)}")
        elif key in a:
            parts.append(f"{key} {_short(new)}")
        else:
            parts.append(f"{key} was {_short(old)}")
    text = ", ".join(parts)
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1] + "…"
