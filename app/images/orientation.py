"""Which way up a photo is: Open Images' Rotation or a JPEG's EXIF orientation, as one transform.

Stored coordinates are on the file's pixel grid (DESIGN.md). A detector finds faces in upright
photos, so bulk annotation turns the pixels upright before a model sees them and maps what the model
finds back onto the file's grid with the inverse transform. Nothing here touches the store or Flask.

Sources, first that says something:
- `images.rotation` (Open Images' Rotation: 0, 90, 180 or 270 degrees counterclockwise that turn the
  file upright for display; the editor turns the page the same way) when it is known and not 0;
- else the file's EXIF Orientation tag (1..8, mirrored ones included), as a browser or
  PIL.ImageOps.exif_transpose applies it.

An Orientation is a horizontal mirror (first) then k quarter turns counterclockwise. Coordinates are
continuous pixels (edges at integers), so the maps are exact: x -> w - x, not w - 1 - x.
"""

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

EXIF_ORIENTATION_TAG = 0x0112
# EXIF Orientation -> (mirror, quarter turns counterclockwise) that make the photo upright; the same
# transforms as PIL.ImageOps.exif_transpose (2 FLIP_LEFT_RIGHT, 3 ROTATE_180, 4 FLIP_TOP_BOTTOM,
# 5 TRANSPOSE, 6 ROTATE_270, 7 TRANSVERSE, 8 ROTATE_90).
EXIF_UPRIGHT = {
    1: (False, 0),
    2: (True, 0),
    3: (False, 2),
    4: (True, 2),
    5: (True, 1),
    6: (False, 3),
    7: (True, 3),
    8: (False, 1),
}


@dataclass(frozen=True)
class Orientation:
    """Mirror (first), then `turns` quarter turns counterclockwise: the file's pixels made upright."""

    mirror: bool = False
    turns: int = 0
    source: str = "none"  # "rotation", "exif" or "none", for messages and tests

    @property
    def identity(self) -> bool:
        """True when the file is upright as stored."""
        return not self.mirror and self.turns % 4 == 0

    def upright_size(self, width: float, height: float) -> tuple[float, float]:
        """The size of the upright image made from a file grid of width x height."""
        return (height, width) if self.turns % 2 else (width, height)

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """The file's pixels (HxWxC) made upright, contiguous."""
        if self.identity:
            return rgb
        out = rgb[:, ::-1] if self.mirror else rgb
        return np.ascontiguousarray(np.rot90(out, self.turns % 4))

    def _matrix(self, width: float, height: float) -> np.ndarray:
        """3x3 affine taking file-grid pixels (size width x height) to upright pixels."""
        m = np.eye(3)
        w, h = float(width), float(height)
        if self.mirror:
            m = np.array([[-1.0, 0.0, w], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ m
        for _ in range(self.turns % 4):
            # A quarter turn counterclockwise of a w x h grid: (x, y) -> (y, w - x), then size h x w.
            m = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, w], [0.0, 0.0, 1.0]]) @ m
            w, h = h, w
        return m

    def to_upright(self, xy, width: float, height: float) -> np.ndarray:
        """(N, 2) file-grid pixels (grid width x height) -> upright pixels."""
        return _affine(self._matrix(width, height), xy)

    def to_file(self, xy, width: float, height: float) -> np.ndarray:
        """(N, 2) upright pixels -> file-grid pixels (grid width x height): the inverse map."""
        return _affine(np.linalg.inv(self._matrix(width, height)), xy)


NONE = Orientation()


def _affine(m: np.ndarray, xy) -> np.ndarray:
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    return xy @ m[:2, :2].T + m[:2, 2]


def from_rotation(rotation: float | None) -> Orientation | None:
    """Open Images' Rotation (degrees counterclockwise) as an Orientation; None when unknown or 0."""
    if rotation is None or not math.isfinite(rotation):
        return None
    turns = round(rotation / 90) % 4
    return Orientation(False, turns, "rotation") if turns else None


def exif_orientation(im: Image.Image) -> int:
    """The file's EXIF Orientation (1..8), 1 when it has none or an invalid one."""
    try:
        value = im.getexif().get(EXIF_ORIENTATION_TAG, 1)
    except Exception:  # a damaged EXIF block: the pixels are still fine, treat it as upright
        return 1
    return value if value in EXIF_UPRIGHT else 1


def orientation_for(im: Image.Image, rotation: float | None = None) -> Orientation:
    """How to make an opened file upright: Open Images' rotation when known and not 0, else its EXIF tag."""
    from_oi = from_rotation(rotation)
    if from_oi is not None:
        return from_oi
    mirror, turns = EXIF_UPRIGHT[exif_orientation(im)]
    return Orientation(mirror, turns, "exif") if (mirror or turns) else NONE
