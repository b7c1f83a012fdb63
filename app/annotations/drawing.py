"""Geometry for the SVG overlays: boxes, points and contour lines in the image's pixel grid.

Stored coordinates are normalised to [0, 1]; the SVGs use viewBoxes in pixels of the stored image,
so one drawing serves the whole image and (with a smaller viewBox) the zoomed crop. The markup is
built here as one string per layer: it holds only numbers and fixed class names, and 68 points
rendered through template expressions cost more than the rest of the request.
"""

from collections.abc import Mapping
from operator import itemgetter

from markupsafe import Markup

from ..kinds import LANDMARK68_GROUPS

# Used when an image row has no size: any aspect is better than none, and 4:3 is the commonest.
FALLBACK_SIZE = (1024, 768)


def image_size(row: Mapping) -> tuple[int, int]:
    """The stored image's (width, height) in pixels."""
    if row.get("width") and row.get("height"):
        return int(row["width"]), int(row["height"])
    return FALLBACK_SIZE


def norm_box(ann: Mapping) -> tuple[float, float, float, float] | None:
    """The annotation's box (normalised), or the bounds of its points when it has none."""
    if ann.get("x0") is not None:
        return ann["x0"], ann["y0"], ann["x1"], ann["y1"]
    pts = ann.get("points")
    if pts:
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        return min(xs), min(ys), max(xs), max(ys)
    return None


def px_box(ann: Mapping, size: tuple[int, int]) -> tuple[float, float, float, float] | None:
    """The annotation's box as (x, y, width, height) in pixels."""
    box = norm_box(ann)
    if box is None:
        return None
    w, h = size
    return box[0] * w, box[1] * h, (box[2] - box[0]) * w, (box[3] - box[1]) * h


def rect_svg(rect: tuple[float, float, float, float] | None, cls: str, data_id: int | None = None) -> Markup:
    """An SVG rect for a pixel box."""
    if rect is None:
        return Markup("")
    extra = f' data-id="{int(data_id)}"' if data_id is not None else ""
    x, y, w, h = rect
    return Markup(f'<rect class="{cls}"{extra} x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}"/>')


# Every coordinate of a face is formatted by one %-operation (per-number formatting is most of the
# cost of a drawing); the result is split into "x y" pairs that the contours and points share.
_PAIR_FORMATS: dict[int, str] = {}
_GROUPS = [
    (f'<path class="contour {name}" d="M', itemgetter(*idx), "Z" if closed else "")
    for name, (idx, closed) in LANDMARK68_GROUPS.items()
]


def _pairs(pts: list, size: tuple[int, int]) -> list[str]:
    """The points as "x y" strings in pixels, rounded to 0.1 px."""
    n = len(pts)
    fmt = _PAIR_FORMATS.get(n)
    if fmt is None:
        fmt = _PAIR_FORMATS.setdefault(n, "\n".join(["%.1f %.1f"] * n))
    w, h = size
    return (fmt % tuple([c for p in pts for c in (p[0] * w, p[1] * h)])).split("\n")


_visible = itemgetter(2)


def _any_hidden(pts: list) -> bool:
    """Whether a point is marked not visible (a C-level scan: a generator per face costs more)."""
    try:
        flags = set(map(_visible, pts))
    except IndexError:  # points without the flag: check one by one
        return any(len(p) > 2 and not p[2] for p in pts)
    return flags != {1} and any(not v for v in flags)


def dots_path(pairs: list[str], cls: str, width: float) -> str:
    """Points as one path of zero-length segments, drawn as dots by round caps `width` across."""
    if not pairs:
        return ""
    return f'<path class="{cls}" stroke-width="{width:.2f}" d="M{"h0M".join(pairs)}h0"/>'


def figure(ann: Mapping, kind: str, size: tuple[int, int], point_r: float, contours: bool = True) -> dict:
    """Box, contour lines (one path per group) and points (one path) of an annotation, as SVG in pixels.

    A point is a vertex "Mx y" of the points path; hidden points (visible = 0) go in a second path.
    """
    pts = ann.get("points") or []
    pairs = _pairs(pts, size) if pts else []
    lines = ""
    if contours and kind == "face_landmarks68" and len(pairs) == 68:
        lines = "".join(f'{head}{" ".join(pick(pairs))}{tail}"/>' for head, pick, tail in _GROUPS)
    if _any_hidden(pts):
        shown = [xy for xy, p in zip(pairs, pts, strict=True) if len(p) < 3 or p[2]]
        hidden = [xy for xy, p in zip(pairs, pts, strict=True) if len(p) > 2 and not p[2]]
    else:
        shown, hidden = pairs, []
    d = 2 * point_r
    # The edge path under the dots outlines them, so they stay visible on light skin.
    points = (
        dots_path(shown, "pts-edge", d * 1.3)
        + dots_path(shown, "pts", d)
        + dots_path(hidden, "pts hidden-pt", d)
    )
    return {
        "rect": rect_svg(px_box(ann, size), "ann current"),
        "lines": Markup(lines),
        "points": Markup(points),
        "n_points": len(pts),
    }
