"""Review test data built in code from the real demo photos and their dlib 68-point XML."""

import hashlib
import random
import xml.etree.ElementTree as ET

from app.annotations.rows import annotation_row, insert_annotations
from app.db import immediate, now
from app.paths import REPO_ROOT
from app.sets.queries import create_set

DEMO = REPO_ROOT / "app" / "demo_data"
PERSON = "/m/01g317"


def _faces() -> list[dict]:
    out = []
    for name, split in (
        ("training_with_face_landmarks.xml", "train"),
        ("testing_with_face_landmarks.xml", "test"),
    ):
        for img in ET.parse(DEMO / name).getroot().iter("image"):
            w, h = int(img.get("width")), int(img.get("height"))
            for box in img.iter("box"):
                t, left = int(box.get("top")), int(box.get("left"))
                bw, bh = int(box.get("width")), int(box.get("height"))
                parts = sorted(box.iter("part"), key=lambda p: int(p.get("name")))
                out.append(
                    {
                        "file": img.get("file"),
                        "split": split,
                        "size": (w, h),
                        "box": (left / w, t / h, min((left + bw) / w, 1), min((t + bh) / h, 1)),
                        "points": [[int(p.get("x")) / w, int(p.get("y")) / h, 1] for p in parts],
                    }
                )
    return out


def seed(db, user_ids: dict[str, int], seed_value: int = 7) -> dict:
    """Images, a model 68-point set, a face box set, a human set (by admin) and an object_box set."""
    rng = random.Random(seed_value)
    faces = _faces()
    image_ids = {}
    with immediate(db):
        for f in faces:
            if f["file"] in image_ids:
                continue
            path = DEMO / f["file"]
            image_id = hashlib.sha1(path.read_bytes()).hexdigest()[:16]
            image_ids[f["file"]] = image_id
            db.execute(
                "INSERT INTO images (id, split, path, width, height, licence, author, title, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    image_id,
                    f["split"],
                    str(path.relative_to(REPO_ROOT)),
                    *f["size"],
                    "Public domain",
                    "PASCAL VOC via dlib examples",
                    f["file"],
                    now(),
                ],
            )
        lm = create_set(db, "model-landmarks68", "face_landmarks68", "model")
        box = create_set(db, "model-face-box", "face_box", "model")
        human = create_set(db, "human-face_box", "face_box", "human")
        obj = create_set(
            db, "openimages-person", "object_box", "import", label=PERSON, params={"display_name": "Person"}
        )
        lm5 = create_set(db, "model-landmarks5", "face_landmarks5", "model")
        rows = []
        for f in faces:
            iid = image_ids[f["file"]]
            score = round(rng.random(), 4)
            rows.append(annotation_row(lm, iid, "face_landmarks68", f["box"], f["points"], score=score))
            rows.append(annotation_row(box, iid, "face_box", f["box"], score=score))
            rows.append(annotation_row(obj, iid, "object_box", f["box"], label=PERSON))
            rows.append(annotation_row(lm5, iid, "face_landmarks5", f["box"], five(f["points"]), score=score))
        for f in faces[:6]:
            rows.append(
                annotation_row(
                    human, image_ids[f["file"]], "face_box", f["box"], created_by=user_ids["admin"]
                )
            )
        for f in faces[6:10]:
            rows.append(
                annotation_row(human, image_ids[f["file"]], "face_box", f["box"], created_by=user_ids["rev"])
            )
        insert_annotations(db, rows)
    return {
        "landmarks68": lm,
        "face_box": box,
        "human": human,
        "object_box": obj,
        "landmarks5": lm5,
        "n_faces": len(faces),
    }


def five(p68: list) -> list:
    """The 5 points (eye centres, nose tip, mouth corners) of a 68-point face."""

    def mean(idx):
        return [sum(p68[i][0] for i in idx) / len(idx), sum(p68[i][1] for i in idx) / len(idx), 1]

    return [mean(range(36, 42)), mean(range(42, 48)), p68[30], p68[48], p68[54]]


def user_ids(db) -> dict[str, int]:
    """username -> id."""
    return {r["username"]: r["id"] for r in db.query("SELECT id, username FROM users")}
