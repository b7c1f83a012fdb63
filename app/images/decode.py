"""Decode an image file for an annotator: RGB uint8, reduced-size JPEG decoding, bad files named.

Coordinates are normalised to the image AS STORED. When a JPEG is decoded at 1/2, 1/4 or 1/8 of its
size (Pillow's draft mode), `scale` says how many stored pixels one decoded pixel spans, so
x_normalised = x_decoded * scale / stored_width (not x_decoded / decoded_width, which differs when the
stored size is not a multiple of the scale).

The pixels come upright (app/images/orientation.py: Open Images' rotation, else the EXIF tag), since
models find faces in upright photos; `orientation` maps their coordinates back to the file's grid in
normalise_xy / normalise_box, and box_to_decoded maps a stored box onto the upright pixels.

Policy for odd files (tests/test_bulk.py covers each):
- greyscale, CMYK, palette, RGBA: converted to RGB and annotated (they are ordinary photos);
- 16-bit (I;16, I): scaled to 8 bits by the value range (65535 -> 255) and annotated;
- missing, empty, corrupt (not an image), truncated, decompression bomb (more pixels than
  Image.MAX_IMAGE_PIXELS; always an error here, never a warning): BadImage with a reason.
"""

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .orientation import NONE, Orientation, orientation_for

# Pillow only warns for a file between MAX_IMAGE_PIXELS and twice that; in this app a decompression
# bomb is always an error. Set once at import: warnings.catch_warnings() per call is not thread-safe.
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


class BadImage(Exception):
    """A file that cannot be annotated; str() is the reason recorded in run_errors."""


@dataclass
class Decoded:
    rgb: np.ndarray  # HxWx3 uint8, possibly reduced, upright (see orientation)
    width: int  # stored size (the file's grid, before any turn)
    height: int
    scale: float  # stored pixels per decoded pixel (1, 2, 4 or 8)
    mode: str  # the file's own mode (RGB, L, CMYK, I;16, ...)
    orientation: Orientation = NONE  # what turned the decoded file grid into rgb

    def _grid(self) -> tuple[float, float]:
        # The decoded file grid, in decoded pixels (the stored size over the scale).
        return self.width / self.scale, self.height / self.scale

    def normalise_xy(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) decoded (upright) pixel coordinates -> [0, 1] of the stored image's grid, clipped."""
        xy = np.asarray(xy, dtype=np.float64)
        if not self.orientation.identity:
            xy = self.orientation.to_file(xy, *self._grid()).reshape(xy.shape)
        xy = xy * self.scale
        return np.clip(xy / np.array([self.width, self.height], dtype=np.float64), 0.0, 1.0)

    def normalise_box(self, box) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) decoded (upright) pixels -> [0, 1] of the stored image's grid, clipped."""
        p = self.normalise_xy(np.asarray(box, dtype=np.float64).reshape(2, 2))
        # A turn swaps which corner is top-left.
        lo, hi = p.min(axis=0), p.max(axis=0)
        return (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))

    def box_to_decoded(self, box) -> np.ndarray:
        """A stored box (x0, y0, x1, y1 normalised to the file's grid) in decoded (upright) pixels."""
        gw, gh = self._grid()
        p = np.asarray(box, dtype=np.float64).reshape(2, 2) * np.array([gw, gh])
        if not self.orientation.identity:
            p = self.orientation.to_upright(p, gw, gh)
        lo, hi = p.min(axis=0), p.max(axis=0)
        return np.array([lo[0], lo[1], hi[0], hi[1]])


def _to_rgb(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if a.max(initial=0) > 255 else 255.0
        a = np.clip(a * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(a[:, :, None], 3, axis=2))
    if im.mode == "F":
        raise BadImage(f"unsupported mode {im.mode} (floating-point pixels)")
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im)


def decode(
    path: str | Path, max_side: int | None = None, rotation: float | None = None, upright: bool = True
) -> Decoded:
    """Decode a file to upright RGB; a JPEG larger than max_side on its long side is decoded reduced
    (>= max_side). rotation: the image's Open Images Rotation (images.rotation), else its EXIF tag counts.
    upright=False keeps the file's own pixel grid (what stored coordinates are on)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise BadImage(f"missing: {path} does not exist") from None
    except OSError as e:
        raise BadImage(f"missing: {path}: {e.strerror}") from None
    if size == 0:
        raise BadImage(f"empty: {path.name} has 0 bytes")
    try:
        with Image.open(path) as im:
            width, height = im.size
            # Checked here too, so the policy holds even where the warning filter was reset.
            if Image.MAX_IMAGE_PIXELS and width * height > Image.MAX_IMAGE_PIXELS:
                raise Image.DecompressionBombError(
                    f"{width}x{height} pixels exceeds Image.MAX_IMAGE_PIXELS ({Image.MAX_IMAGE_PIXELS})"
                )
            mode = im.mode
            orientation = orientation_for(im, rotation) if upright else NONE
            scale = 1.0
            if max_side and im.format == "JPEG" and max(width, height) > max_side:
                k = max_side / max(width, height)
                got = im.draft(im.mode, (max(1, int(width * k)), max(1, int(height * k))))
                if got is not None:
                    scale = width / got[1][2]
            im.load()
            return Decoded(orientation.apply(_to_rgb(im)), width, height, scale, mode, orientation)
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise BadImage(f"decompression bomb: {e}") from None
    except UnidentifiedImageError:
        raise BadImage(f"corrupt: {path.name} is not an image Pillow can read") from None
    except OSError as e:
        reason = "truncated" if "truncated" in str(e) else "corrupt"
        raise BadImage(f"{reason}: {e}") from None
    except (ValueError, SyntaxError) as e:
        raise BadImage(f"corrupt: {e}") from None


def load_rgb(path: str | Path) -> np.ndarray:
    """A whole file as HxWx3 uint8 RGB at its stored size (evaluation, training, a model's try page);
    BadImage names a missing or unreadable file."""
    return decode(path, upright=False).rgb
