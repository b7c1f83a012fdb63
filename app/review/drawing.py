"""Geometry for the SVG overlays: boxes, points and contour lines in the image's pixel grid.

Stored coordinates are normalised to [0, 1]; the SVGs use viewBoxes in pixels of the stored image,
so one drawing serves the whole image and (with a smaller viewBox) the zoomed crop. The markup is
built here as one string per layer: it holds only numbers and fixed class names, and 68 points
rendered through template expressions cost more than the rest of the request.
"""

from collections.abc import Mapping

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


def figure(ann: Mapping, kind: str, size: tuple[int, int], point_r: float) -> dict:
    """Box, contour lines and points of one annotation, as SVG markup in pixels."""
    w, h = size
    pts = [(p[0] * w, p[1] * h, p[2] if len(p) > 2 else 1) for p in (ann.get("points") or [])]
    lines = []
    if kind == "face_landmarks68" and len(pts) == 68:
        for name, (idx, closed) in LANDMARK68_GROUPS.items():
            coords = " ".join(f"{pts[i][0]:.1f},{pts[i][1]:.1f}" for i in idx)
            tag = "polygon" if closed else "polyline"
            lines.append(f'<{tag} class="contour {name}" points="{coords}"/>')
    circles = "".join(
        f'<circle class="pt{"" if v else " hidden-pt"}" cx="{x:.1f}" cy="{y:.1f}" r="{point_r:.2f}"/>'
        for x, y, v in pts
    )
    return {
        "rect": rect_svg(px_box(ann, size), "ann current"),
        "lines": Markup("".join(lines)),
        "points": Markup(circles),
        "n_points": len(pts),
    }
