"""Seed data for object-box tests: the demo photos, and boxes of two classes per face as a model set.

Each face of dlib's training XML gives a Human head box (the face box grown by a fifth) and a Person
box (the face box widened and run down the frame), with scores, so every photo has boxes of two
classes that overlap each other: what filtering, "all boxes of this class" and the merge by class
need. The photos are real; the boxes are derived from the hand-drawn face boxes.
"""

import xml.etree.ElementTree as ET

from app.annotations.rows import annotation_row, insert_annotations
from app.db import immediate
from app.sets.queries import create_set
from tests.conftest import DEMO_DATA
from tests.editor_seed import add_image

XML = DEMO_DATA / "training_with_face_landmarks.xml"
PERSON = "/m/01g317"
HEAD = "/m/04hgtk"
CAR = "/m/0k4j"


def _clip(v: float) -> float:
    return min(1.0, max(0.0, v))


def seed_objects(db, name: str = "objects-demo", source: str = "model") -> dict:
    """A machine object_box set over the XML's photos; returns {"set_id", "images": {file: image},
    "boxes": [{"id", "image_id", "label", "box"}]} in insertion order."""
    with immediate(db):
        set_id = create_set(db, name, "object_box", source)
        rows = []
        images = {}
        for im in ET.parse(XML).getroot().iter("image"):
            image = add_image(db, DEMO_DATA / im.get("file"))
            images[image["file"]] = image
            w, h = image["width"], image["height"]
            for i, box in enumerate(im.iter("box")):
                x0, y0 = float(box.get("left")) / w, float(box.get("top")) / h
                bw, bh = float(box.get("width")) / w, float(box.get("height")) / h
                head = (x0 - 0.1 * bw, y0 - 0.1 * bh, x0 + 1.1 * bw, y0 + 1.1 * bh)
                person = (x0 - 0.6 * bw, y0 - 0.2 * bh, x0 + 1.6 * bw, y0 + 4 * bh)
                for label, b, score in ((HEAD, head, 0.9 - 0.01 * i), (PERSON, person, 0.6 - 0.01 * i)):
                    b = tuple(_clip(v) for v in b)
                    rows.append(
                        annotation_row(set_id, image["id"], "object_box", b, label=label, score=score)
                    )
        insert_annotations(db, rows)
    boxes = [
        {"id": r[0], "image_id": r[1], "label": r[2], "box": list(r[3:7])}
        for r in db.execute(
            "SELECT id, image_id, label, x0, y0, x1, y1 FROM annotations WHERE set_id = ? ORDER BY id",
            [set_id],
        )
    ]
    return {"set_id": set_id, "images": images, "boxes": boxes}
