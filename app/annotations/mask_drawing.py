"""An object mask drawn in SVG: one path of its contours in image pixels, filled even-odd (holes stay open).

The review page puts the same path over the whole image and over the zoomed crop (their viewBoxes are
in image pixels), styled as a semi-transparent fill with an outline (static/css/app.css, `.mask`).
Contours are traced at the 0.5 level between pixel centres (scikit-image's marching squares) on the
mask's box, sampled down to at most TRACE_SIDE pixels on its long side, and simplified to within
TOLERANCE sampled pixels: a face-sized mask is a few hundred bytes, a large one a few KB.
A path depends only on the stored string, so paths are kept in a small per-process cache.
"""

from functools import lru_cache

import numpy as np
from markupsafe import Markup

from . import masks

TRACE_SIDE = 400
TOLERANCE = 0.6
CACHE_SIZE = 256


def contours(mask: np.ndarray) -> list[np.ndarray]:
    """The mask's outlines as (n, 2) arrays of (x, y) image pixels (closed rings, holes included)."""
    from skimage.measure import approximate_polygon, find_contours  # only pages with masks need it

    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if not len(rows):
        return []
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    step = max(1, -(-max(y1 - y0, x1 - x0) // TRACE_SIDE))
    # Padded with a ring of "out" so every contour closes; a sample stands for the step x step pixels
    # from it (its centre at +step / 2).
    part = np.pad(mask[y0:y1:step, x0:x1:step], 1).astype(np.float32)
    out = []
    for c in find_contours(part, 0.5):
        c = approximate_polygon(c, TOLERANCE)
        xy = np.empty((len(c), 2))
        xy[:, 0] = x0 + (c[:, 1] - 1) * step + step / 2
        xy[:, 1] = y0 + (c[:, 0] - 1) * step + step / 2
        out.append(xy)
    return out


@lru_cache(maxsize=CACHE_SIZE)
def path_d(mask_s: str) -> str:
    """The SVG path data of a stored mask's contours, 0.1 px precision."""
    parts = []
    for xy in contours(masks.decode(mask_s)):
        if len(xy) < 3:
            continue
        pairs = " ".join(f"{x:.1f} {y:.1f}" for x, y in xy[:-1])  # the ring's last point repeats its first
        parts.append(f"M{pairs}Z")
    return "".join(parts)


def shown_mask(db, ann: dict) -> str | None:
    """The mask a page draws for an annotation: its correction's when a person corrected it (pages show a
    corrected machine row as corrected; `corrections.corrected_view` gives its box), else its own."""
    corr = ann.get("correction")
    if ann.get("mask") is None or not corr or corr.get("deleted"):
        return ann.get("mask")
    row = db.execute("SELECT mask FROM annotations WHERE id = ?", [corr["id"]]).fetchone()
    return row[0] if row and row[0] else ann["mask"]


def mask_svg(mask_s: str | None, cls: str = "mask current") -> Markup:
    """A stored mask as one SVG path (empty markup for none)."""
    if not mask_s:
        return Markup("")
    d = path_d(mask_s)
    if not d:
        return Markup("")
    return Markup(f'<path class="{cls}" fill-rule="evenodd" d="{d}"/>')
