"""How the editors turn a photo for display: Open Images' Rotation, else the photo's EXIF turn.

Both editors (faces and masks) show the photo as a browser would, and turn what is drawn on it with
it; edits stay on the stored file's pixel grid.
"""

import math
from collections.abc import Mapping

from PIL import Image

from ..errors import OiapError
from ..images.layout import image_path
from ..images.orientation import orientation_for


def quarter_turns(rotation) -> int:
    """Open Images' Rotation (0, 90, 180 or 270 degrees counterclockwise, or NaN) in quarter turns."""
    if rotation is None or not math.isfinite(rotation):
        return 0
    return round(rotation / 90) % 4


def display_rotation(config: Mapping, image: Mapping) -> int:
    """Degrees counterclockwise (0, 90, 180, 270) to turn the stored photo for display.

    Open Images' Rotation when it says something; else a photo's EXIF turn (tags 3, 6, 8). A mirrored
    EXIF tag (2, 4, 5, 7) is shown as stored.
    """
    turns = quarter_turns(image.get("rotation"))
    if turns:
        return turns * 90
    try:
        with Image.open(image_path(config, image)) as im:
            o = orientation_for(im, image.get("rotation"))
    except (OiapError, OSError):
        return 0
    return 0 if o.mirror else (o.turns % 4) * 90
