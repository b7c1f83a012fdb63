"""Measure the review page's mask overlay (bytes of the SVG path per mask, the time to trace one) and
the mask editor's superpixels (SLIC on a 1024 px crop, cold: what the first opening of a large mask waits).

Builds a temporary store with the demo photos and one face-shaped mask per demo face (the jaw and brows
of dlib's example labels, as the tests use), and prints the path's size (median, max) beside the stored
RLE's; then traces a 1440x1920 ellipse covering most of a photo, cold (no cache), and prints its size
and time; then SLIC on a 768x1024 working grid of a demo photo enlarged.

    python scripts/measure_mask_paths.py
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    """Print the figures."""
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    import numpy as np

    from app.annotations import masks
    from app.annotations.mask_drawing import path_d
    from app.annotations.rows import get_annotation
    from app.db import connect
    from tests.live import instance_app
    from tests.mask_seed import seed_masks

    with tempfile.TemporaryDirectory() as tmp:
        app = instance_app(Path(tmp) / "instance")
        db = connect(app.config["DATABASE"])
        data = seed_masks(db)
        paths, rles = [], []
        for m in data["masks"]:
            stored = get_annotation(db, m["id"])["mask"]
            paths.append(len(path_d(stored)))
            rles.append(len(stored))
        db.close()
    print(
        f"demo face masks (n={len(paths)}): path {np.median(paths):.0f} bytes median, {max(paths)} max;"
        f" stored RLE {np.median(rles):.0f} bytes median"
    )
    yy, xx = np.mgrid[0:1920, 0:1440]
    blob = masks.encode(((xx - 720) / 560) ** 2 + ((yy - 960) / 760) ** 2 <= 1)
    t = time.perf_counter()
    d = path_d(blob)
    ms = (time.perf_counter() - t) * 1000
    print(
        f"1440x1920 mask over most of the photo: path {len(d)} bytes, traced in {ms:.1f} ms cold; RLE {len(blob)} bytes"
    )
    from PIL import Image

    from app.editor import superpixels

    with Image.open(ROOT / "app" / "demo_data" / "2008_001009.jpg") as im:
        rgb = np.asarray(im.convert("RGB").resize((768, 1024), Image.Resampling.LANCZOS))
    crop = superpixels.Crop(0, 0, 768, 1024, 768, 1024)
    t = time.perf_counter()
    labels = superpixels.slic_labels(rgb, superpixels.n_segments(crop))
    s = time.perf_counter() - t
    size = len(superpixels.encode_labels(labels))
    print(f"SLIC on a 768x1024 crop: {labels.max() + 1} superpixels in {s:.2f} s; {size} bytes sent")


if __name__ == "__main__":
    main()
