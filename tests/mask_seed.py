"""Seed data for the mask editor's tests: the demo photos with face-shaped machine masks.

Each mask is the polygon of a demo face's jaw line closed over its brows (dlib's example labels in
app/demo_data), rasterised by pycocotools: a real object's outline on a real photo, as a model's
mask would be, and deliberately imperfect (the forehead is left out), so there is something to correct.
"""

import xml.etree.ElementTree as ET

from app.annotations import masks
from app.annotations.rows import annotation_row, insert_annotations
from app.kinds import FACE_LABEL
from app.sets.queries import create_set
from tests.conftest import DEMO_DATA
from tests.editor_seed import add_image

XML = DEMO_DATA / "training_with_face_landmarks.xml"
OUTLINE = list(range(0, 17)) + list(range(26, 16, -1))  # jaw left to right, brows right to left


def seed_masks(db, limit: int | None = None) -> dict:
    """A model set of object_mask rows, one per demo face; returns {"set_id", "masks": [{id, image}]}."""
    set_id = create_set(db, "face-masks-demo", "object_mask", "model", label=FACE_LABEL)
    out = []
    for im in ET.parse(XML).getroot().iter("image"):
        image = add_image(db, DEMO_DATA / im.get("file"))
        for box in im.iter("box"):
            parts = {int(p.get("name")): (float(p.get("x")), float(p.get("y"))) for p in box.iter("part")}
            if len(parts) != 68:
                continue
            poly = [c for i in OUTLINE for c in parts[i]]
            m = masks.from_polygons([poly], image["height"], image["width"])
            if masks.bbox(m) is None:
                continue
            row = annotation_row(set_id, image["id"], "object_mask", label=FACE_LABEL, score=0.8, mask=m)
            insert_annotations(db, [row])
            out.append({"id": db.execute("SELECT max(id) FROM annotations").fetchone()[0], "image": image})
            if limit is not None and len(out) >= limit:
                db.conn.commit()
                return {"set_id": set_id, "masks": out}
    db.conn.commit()
    return {"set_id": set_id, "masks": out}
