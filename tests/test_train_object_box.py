"""`flask oiap train --kind object_box`: the SSD's heads fine-tuned on hand-drawn boxes of real photos.

The boxes below were drawn by hand (pixels of the files in app/demo_data, dlib's example photos) for
this test: every person, and two ties, a class the builtin detector does not have.
"""

import json

import numpy as np
import pytest

from app.annotations.rows import annotation_row, insert_annotation
from app.annotators import objectron
from app.db import connect
from app.imports.folder import register_image_file
from app.models.builtin import ensure_builtin_models, load_annotator
from app.models.registry import get_model
from app.sets.queries import create_set
from tests.conftest import DEMO_DATA

PERSON = "/m/01g317"
TIE = "/m/01rkbr"
# file: (width, height, [(MID, x0, y0, x1, y1) in pixels])
BOXES = {
    "2007_007763.jpg": (
        500,
        375,
        [
            (PERSON, 52, 178, 165, 375),
            (PERSON, 138, 103, 200, 250),
            (PERSON, 172, 80, 272, 260),
            (PERSON, 122, 196, 245, 375),
            (PERSON, 255, 68, 378, 290),
            (PERSON, 205, 215, 392, 375),
            (PERSON, 368, 70, 498, 375),
        ],
    ),
    "2008_002079.jpg": (
        500,
        375,
        [
            (PERSON, 0, 163, 110, 375),
            (PERSON, 45, 115, 170, 350),
            (PERSON, 85, 122, 200, 275),
            (PERSON, 305, 112, 412, 245),
            (PERSON, 378, 148, 462, 345),
            (PERSON, 420, 145, 500, 375),
            (PERSON, 260, 35, 300, 205),
            (PERSON, 313, 38, 372, 205),
            (TIE, 80, 188, 112, 290),
            (TIE, 136, 178, 156, 262),
        ],
    ),
    "2008_001009.jpg": (360, 480, [(PERSON, 122, 58, 310, 350), (PERSON, 58, 180, 305, 480)]),
    "2008_001322.jpg": (
        500,
        375,
        [(PERSON, 0, 135, 212, 375), (PERSON, 195, 180, 340, 375), (PERSON, 320, 125, 500, 375)],
    ),
}


def train(*args, **kw):
    """app.training.trainer.train, imported when a test trains: the file collects without torch."""
    from app.training.trainer import train as _train

    return _train(*args, **kw)


@pytest.fixture
def boxes_db(app):
    """The four photos (train split) with their hand-drawn boxes as one human object_box set."""
    db = connect(app.config["DATABASE"])
    ensure_builtin_models(db)
    set_id = create_set(db, "hand-objects", "object_box", "human")
    for name, (w, h, boxes) in BOXES.items():
        image_id, _ = register_image_file(db, DEMO_DATA / name, "train")
        for mid, x0, y0, x1, y1 in boxes:
            row = annotation_row(set_id, image_id, "object_box", (x0 / w, y0 / h, x1 / w, y1 / h), label=mid)
            insert_annotation(db, row)
    db.conn.commit()
    yield db
    db.close()


def test_match_gives_every_box_an_anchor():
    from app.training.ssd import match

    boxes = np.array([[0.1, 0.1, 0.5, 0.9], [0.9, 0.9, 0.93, 0.95]])  # a person, a tiny object
    cls, enc, wt = match(boxes, np.array([4, 7]), np.array([1.0, 0.5], np.float32))
    assert set(np.unique(cls)) == {0, 4, 7}
    assert (cls == 7).sum() >= 1  # below IoU 0.5 with every anchor, still matched to its best
    assert np.all(wt[cls == 7] == 0.5) and np.all(wt[cls == 0] == 1.0)
    # The encodings decode back to the boxes.
    dec = objectron.decode_boxes(enc[cls == 4], objectron.ANCHORS[cls == 4])
    np.testing.assert_allclose(dec, np.repeat(boxes[:1], len(dec), 0), atol=1e-5)


@pytest.mark.slow
def test_object_box_training_round(app, boxes_db, runner):
    db = boxes_db
    result = runner.invoke(
        args=["oiap", "train", "--kind", "object_box", "--epochs", "15", "--batch-size", "4", "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    curve = out["loss_curve"]
    assert len(curve) == 15 and curve[-1] < 0.7 * curve[0], curve
    assert out["images"] == 4 and out["boxes"] == 22 and out["samples"] == 8  # each photo and its mirror
    assert out["added_classes"] == [TIE]
    model = get_model(db, out["model_id"])
    assert model["status"] == "candidate" and model["source"] == "trained"
    p = model["params"]
    assert p["runner"] == "objectron" and p["labels"][-1] == TIE and len(p["labels"]) == 25
    assert p["onnx_parity"]["max_abs_diff"] < 1e-3
    builtin = db.execute("SELECT id FROM models WHERE name = 'objectron' AND source = 'builtin'").fetchone()
    assert model["parent_id"] == builtin[0]
    # The file loads through the registry and finds people on a training photo, with the new class list.
    det = load_annotator(model)
    assert det.labels == p["labels"]
    from app.images.decode import load_rgb

    found = det.detect(load_rgb(DEMO_DATA / "2007_007763.jpg"))
    assert sum(mid == PERSON for _, _, mid in found) >= 3, found
