"""Instance masks as stored in annotations.mask: COCO compressed RLE JSON, through pycocotools.

A mask covers the WHOLE image on the stored file's pixel grid (like the boxes: never rotated), as
{"size": [h, w], "counts": "..."}, the same string COCO's own files hold, so an export is a copy and
pycocotools can read it back. A mask of a 1000 x 750 photo is typically a few hundred bytes.

Stored strings come from our own code, imports and the browser: `parse` checks one fully (shape, the
counts' alphabet, run lengths summing to h * w) before pycocotools' C code ever sees it.
"""

import json
from collections.abc import Sequence

import numpy as np
from pycocotools import mask as cocomask

from ..errors import InvalidInput


def _rle(mask: np.ndarray) -> dict:
    if mask.ndim != 2:
        raise InvalidInput(f"a mask is a 2-D array (height x width), not shape {mask.shape}")
    rle = cocomask.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def encode(mask: np.ndarray) -> str:
    """A boolean H x W mask (nonzero = in) as the stored RLE JSON string."""
    return json.dumps(_rle(np.asarray(mask) != 0), separators=(",", ":"))


def _runs(counts: str) -> list[int]:
    # pycocotools' rleFrString in Python: 6-bit groups from '0', 5 value bits and a "more" bit, the
    # last group's bit 4 the sign; runs after the second are stored as differences to the run two back.
    runs: list[int] = []
    p = 0
    while p < len(counts):
        x = k = 0
        more = True
        while more:
            if p >= len(counts):
                raise InvalidInput("mask counts end in the middle of a number")
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                raise InvalidInput(f"mask counts hold {counts[p]!r}, outside COCO's RLE alphabet '0'..'o'")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        if x < 0:
            raise InvalidInput("mask counts decode to a negative run length")
        runs.append(x)
    return runs


def _parsed(s: str) -> tuple[list[int], str, list[int]]:
    try:
        obj = json.loads(s)
    except (TypeError, ValueError) as e:
        raise InvalidInput(
            f"a mask is COCO RLE JSON {{'size': [h, w], 'counts': '...'}}; got {str(s)[:40]!r}"
        ) from e
    if not isinstance(obj, dict) or set(obj) != {"size", "counts"}:
        raise InvalidInput("a mask is COCO RLE JSON with exactly the keys 'size' and 'counts'")
    size, counts = obj["size"], obj["counts"]
    if (
        not isinstance(size, list)
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise InvalidInput(f"a mask's size is [height, width] in pixels, both > 0; got {size!r}")
    if not isinstance(counts, str):
        raise InvalidInput(
            "a mask's counts is COCO's compressed RLE string (uncompressed lists are not stored)"
        )
    runs = _runs(counts)
    total = sum(runs)
    if total != size[0] * size[1]:
        raise InvalidInput(f"a mask's runs cover {total} pixels, not height x width = {size[0] * size[1]}")
    return size, counts, runs


def parse(s: str) -> dict:
    """The RLE dict of a stored mask string (counts as bytes, ready for pycocotools), checked whole.

    InvalidInput names what is wrong: not JSON, no size or counts, or runs that do not cover h * w.
    """
    size, counts, _ = _parsed(s)
    return {"size": size, "counts": counts.encode("ascii")}


def check(s: str) -> str:
    """The stored string itself once parse() accepts it (for writers: fail before the write)."""
    _parsed(s)
    return s


def decode(s: str) -> np.ndarray:
    """The boolean H x W mask of a stored string."""
    # From the runs parse() already read, not pycocotools.decode: that warns (a DeprecationWarning,
    # an error under our filterwarnings) on numpy 2 in pycocotools 2.0.11; the result is the same
    # (tests/test_masks.py compares them). Runs alternate out/in, column by column (Fortran order).
    (h, w), _, runs = _parsed(s)
    flat = np.repeat(np.arange(len(runs)) % 2 == 1, runs)
    return np.ascontiguousarray(flat.reshape(w, h).T)


def size(s: str) -> tuple[int, int]:
    """(height, width) of a stored mask."""
    h, w = parse(s)["size"]
    return h, w


def area(s: str) -> int:
    """Pixels inside the mask."""
    return int(cocomask.area(parse(s)))


def bbox(s: str) -> tuple[float, float, float, float] | None:
    """The mask's box as stored boxes are: (x0, y0, x1, y1) normalised to the image; None when empty."""
    rle = parse(s)
    if cocomask.area(rle) == 0:
        return None
    h, w = rle["size"]
    x, y, bw, bh = (float(v) for v in cocomask.toBbox(rle))
    return x / w, y / h, (x + bw) / w, (y + bh) / h


def iou(a: str, b: str) -> float:
    """Intersection over union of two stored masks of the same image size (0 when both are empty)."""
    ra, rb = parse(a), parse(b)
    if ra["size"] != rb["size"]:
        raise InvalidInput(f"masks of different sizes {ra['size']} and {rb['size']} have no IoU")
    return float(cocomask.iou([ra], [rb], [0])[0][0])


def from_polygons(polygons: Sequence[Sequence[float]], height: int, width: int) -> str:
    """The stored mask of polygons given in pixels [x0, y0, x1, y1, ...] on an image of that size.

    Through pycocotools (COCO's own rasteriser), so polygons drawn by hand become the masks that a
    COCO file with those polygons means.
    """
    polys = [[float(v) for v in p] for p in polygons if len(p) >= 6]
    if not polys:
        return encode(np.zeros((height, width), bool))
    merged = cocomask.merge(cocomask.frPyObjects(polys, height, width))
    return json.dumps(
        {"size": [int(height), int(width)], "counts": merged["counts"].decode("ascii")}, separators=(",", ":")
    )


def to_file_grid(mask: np.ndarray, mirror: bool, turns: int, width: int, height: int) -> np.ndarray:
    """A mask on upright (maybe reduced) decoded pixels -> the stored file's grid of width x height.

    `mirror` and `turns` are the Orientation that made the file's pixels upright (mirror first, then
    quarter turns counterclockwise: app/images/orientation.py); this is its inverse, then a nearest-
    neighbour resize to the stored size.
    """
    if turns % 4:
        mask = np.rot90(mask, -(turns % 4))
    if mirror:
        mask = mask[:, ::-1]
    if mask.shape != (height, width):
        from PIL import Image

        mask = (
            np.asarray(
                Image.fromarray(mask.astype(np.uint8) * 255).resize((width, height), Image.Resampling.NEAREST)
            )
            > 0
        )
    return np.ascontiguousarray(mask, dtype=bool)
