"""The review's zoom steps on one face: the whole crop, then its eyes, then its mouth (68 points only).

Each step is an SVG viewBox in image pixels over the same crop image, so zooming fetches nothing; the
page cycles them with z. A step's region is its points' bounding box with a margin, widened to the
crop's aspect ratio so the image fills the frame, and kept inside the crop.
"""

from collections.abc import Sequence

# iBUG 68-point indexes: 36-47 the eyes (with 17-26 the brows above them), 48-67 the mouth.
REGIONS = {"eyes": range(36, 48), "mouth": range(48, 68)}
# Margin around a region's points, as a fraction of the region's long side on each side.
MARGIN = 0.25


def _fmt(x: float, y: float, w: float, h: float) -> str:
    return f"{x:.2f} {y:.2f} {w:.2f} {h:.2f}"


def zoom_steps(
    points: Sequence[Sequence[float]] | None, size: tuple[int, int], crop: tuple[float, float, float, float]
) -> dict[str, str]:
    """name -> viewBox ("x y w h" in image pixels): "face" (the crop), and "eyes", "mouth" for 68 points."""
    w, h = size
    cx0, cy0, cx1, cy1 = crop[0] * w, crop[1] * h, crop[2] * w, crop[3] * h
    steps = {"face": _fmt(cx0, cy0, cx1 - cx0, cy1 - cy0)}
    if not points or len(points) != 68:
        return steps
    aspect = (cx1 - cx0) / max(cy1 - cy0, 1e-9)
    for name, idx in REGIONS.items():
        xs = [points[i][0] * w for i in idx]
        ys = [points[i][1] * h for i in idx]
        rw, rh = max(xs) - min(xs), max(ys) - min(ys)
        # The points' box widened to the crop's aspect ratio, with the margin; never beyond the crop.
        bw = max(rw, rh * aspect, 1.0) * (1 + 2 * MARGIN)
        bw = min(bw, cx1 - cx0, (cy1 - cy0) * aspect)
        bh = bw / aspect
        x = min(max((min(xs) + max(xs)) / 2 - bw / 2, cx0), cx1 - bw)
        y = min(max((min(ys) + max(ys)) / 2 - bh / 2, cy0), cy1 - bh)
        steps[name] = _fmt(x, y, bw, bh)
    return steps
