"""Geometry for the SVG overlays: boxes, points and contour lines in the image's pixel grid.

Stored coordinates are normalised to [0, 1]; the SVGs use viewBoxes in pixels of the stored image,
so one drawing serves the whole image and (with a smaller viewBox) the zoomed crop.
"""

from collections.abc import Mapping

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


def figure(ann: Mapping, kind: str, size: tuple[int, int]) -> dict:
    """Box, points and contour polylines of one annotation, in pixels."""
    w, h = size
    box = norm_box(ann)
    rect = None
    if box is not None:
        rect = (box[0] * w, box[1] * h, (box[2] - box[0]) * w, (box[3] - box[1]) * h)
    pts = [(p[0] * w, p[1] * h, p[2] if len(p) > 2 else 1) for p in (ann.get("points") or [])]
    lines = []
    if kind == "face_landmarks68" and len(pts) == 68:
        for name, (idx, closed) in LANDMARK68_GROUPS.items():
            coords = " ".join(f"{pts[i][0]:.1f},{pts[i][1]:.1f}" for i in idx)
            lines.append((name, coords, closed))
    return {"rect": rect, "points": pts, "lines": lines}
