"""MTCNN's pyramid levels resized from the photo reduced by powers of two (mtcnn._source): the same
levels within a grey level, the same faces."""

import numpy as np
from PIL import Image

from app.annotations.geometry import box_iou
from app.annotators import mtcnn
from app.models.eval68 import DEMO_DATA


def _photo() -> Image.Image:
    return Image.open(DEMO_DATA / "2008_002506.jpg").convert("RGB").resize((1024, 768))


def test_small_levels_read_a_reduced_photo_and_match_the_direct_resize():
    pil = _photo()
    reduced = {1: pil}
    assert mtcnn._source(reduced, 0.6) is pil and mtcnn._source(reduced, 0.3) is pil
    assert mtcnn._source(reduced, 0.2).size == (512, 384)
    assert mtcnn._source(reduced, 0.05).size == (128, 96) and sorted(reduced) == [1, 2, 4, 8]
    for scale in (0.2, 0.1, 0.05, 0.02):
        h, w = int(768 * scale + 1), int(1024 * scale + 1)
        direct = mtcnn.pyramid_level(pil, h, w)
        via = mtcnn.pyramid_level(mtcnn._source(reduced, scale), h, w)
        # Not exact: a bin edge inside a 2x2 block weighs the block's mean, not its own column (measured
        # 1.1-1.8 grey levels on average, up to 30 at sharp edges); the faces stay the same (below).
        diff = np.abs(direct - via) / mtcnn.SCALE  # grey levels
        assert diff.mean() < 2.0, scale


def test_the_same_faces_as_from_the_whole_photo(monkeypatch):
    img = np.asarray(_photo())
    ours = mtcnn.MTCNN(threads=1).detect(img)
    monkeypatch.setattr(mtcnn, "PYRAMID_FROM_REDUCED", 0.0)
    direct = mtcnn.MTCNN(threads=1).detect(img)
    assert len(ours) == len(direct) >= 3
    iou = box_iou(np.array([d[0] for d in direct]), np.array([d[0] for d in ours]))
    assert (iou.max(1) > 0.9).all()
