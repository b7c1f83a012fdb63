"""Seed data for the editor's tests: the demo photos, and 68-point faces from dlib's XML as a model set."""

import hashlib
import xml.etree.ElementTree as ET

from PIL import Image

from app.annotations.rows import annotation_row, insert_annotations
from app.db import now
from app.sets.queries import create_set
from tests.conftest import DEMO_DATA

XML = DEMO_DATA / "training_with_face_landmarks.xml"


def image_id_of(path) -> str:
    """The id import-dir gives a file: the first 16 hex digits of its content's sha1."""
    return hashlib.sha1(path.read_bytes()).hexdigest()[:16]


def add_image(db, path, split: str = "train") -> dict:
    """Insert an image row pointing at a real file; returns id, width and height."""
    with Image.open(path) as im:
        w, h = im.size
    image_id = image_id_of(path)
    db.execute(
        "INSERT OR IGNORE INTO images (id, split, path, width, height, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        [image_id, split, str(path), w, h, now()],
    )
    return {"id": image_id, "width": w, "height": h, "file": path.name}


def seed(db) -> dict:
    """Images from the XML, a model set of face_landmarks68 with every face's box and 68 points.

    Returns {"set_id", "images": {file: image}, "faces": [{"id", "image", "box_px", "points_px"}]}.
    """
    set_id = create_set(db, "dlib-68-demo", "face_landmarks68", "model", label="/m/0dzct")
    images, faces = {}, []
    for im in ET.parse(XML).getroot().iter("image"):
        image = add_image(db, DEMO_DATA / im.get("file"))
        images[image["file"]] = image
        w, h = image["width"], image["height"]
        for box in im.iter("box"):
            parts = {int(p.get("name")): (float(p.get("x")), float(p.get("y"))) for p in box.iter("part")}
            if len(parts) != 68:
                continue
            x0, y0 = float(box.get("left")), float(box.get("top"))
            x1, y1 = x0 + float(box.get("width")), y0 + float(box.get("height"))
            clip = lambda v: min(1.0, max(0.0, v))  # noqa: E731
            pts = [[clip(parts[i][0] / w), clip(parts[i][1] / h), 1] for i in range(68)]
            row = annotation_row(
                set_id,
                image["id"],
                "face_landmarks68",
                (clip(x0 / w), clip(y0 / h), clip(x1 / w), clip(y1 / h)),
                pts,
                label="/m/0dzct",
                score=0.9,
            )
            insert_annotations(db, [row])
            ann_id = db.execute("SELECT max(id) FROM annotations").fetchone()[0]
            faces.append(
                {
                    "id": ann_id,
                    "image": image,
                    "box_px": (x0, y0, x1, y1),
                    "points_px": [parts[i] for i in range(68)],
                }
            )
    db.conn.commit()
    return {"set_id": set_id, "images": images, "faces": faces}
