"""Read the overlays the pages draw: the vertices of SVG paths (points and contours) in pixels."""

import re


def path_tags(html: str, cls: str) -> list[str]:
    """Every <path> whose class attribute is exactly `cls`."""
    return re.findall(rf'<path class="{re.escape(cls)}"[^>]*/>', html)


def vertices(tag: str) -> list[tuple[float, float]]:
    """The (x, y) vertices of a path's d attribute (M/L/h0/Z paths as drawing.py writes them)."""
    d = re.search(r'\bd="([^"]*)"', tag).group(1)
    out = []
    for sub in re.split(r"M", d)[1:]:
        nums = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", sub.replace("h0", "").replace("Z", ""))]
        out += list(zip(nums[0::2], nums[1::2], strict=True))
    return out


def drawn_points(html: str) -> list[tuple[float, float]]:
    """The points drawn as dots (the visible ones, then the hidden ones)."""
    return [v for cls in ("pts", "pts hidden-pt") for tag in path_tags(html, cls) for v in vertices(tag)]
