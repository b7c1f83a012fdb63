"""Image URLs for review pages: the images blueprint's resized versions and crops (cached, ETag)."""

from flask import url_for

from ..images.files import crop_region

FULL_SIZE = 1024
CROP_SIZE = 512
THUMB_SIZE = 256
# Margin around a face in the zoomed crop, as a fraction of the box's long side on each side.
CROP_PAD = 0.3
THUMB_PAD = 0.15


def full_url(image_id: str, size: int = FULL_SIZE) -> str:
    """URL of the whole image, at most `size` pixels on its long side."""
    return url_for("images.resized", image_id=image_id, size=size)


def crop(
    image_id: str, box: tuple[float, float, float, float], image_size: tuple[int, int], size: int, pad: float
) -> tuple[str, tuple[float, float, float, float]]:
    """URL of a crop around a normalised box, and the normalised region that crop shows."""
    region = crop_region(box, image_size[0], image_size[1], pad)
    url = url_for("images.crop", image_id=image_id, box=",".join(f"{v:.6f}" for v in box), size=size, pad=pad)
    return url, region
