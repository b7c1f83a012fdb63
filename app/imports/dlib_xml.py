"""Read dlib's imglab XML (boxes with optional parts) into an annotation set.

The format: `<image file='x.jpg'><box top= left= width= height= [ignore='1']><part name='00' x= y=/>...`,
integer pixels, 0-based, file names relative to the XML file. Coordinates are normalised by the
image's real size (read from the file, not the XML's width/height attributes) and clipped to [0, 1].
"""

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlite_utils import Database

from ..annotations.rows import annotation_row, insert_annotation
from ..db import immediate, now
from ..errors import InvalidInput
from ..kinds import FACE_LABEL, get_kind
from ..sets.queries import get_or_create_set

_SAME_BOX = (
    "SELECT id FROM annotations INDEXED BY annotations_set_image WHERE set_id = ? AND image_id = ? AND deleted = 0"
    " AND abs(x0 - ?) < 1e-9 AND abs(y0 - ?) < 1e-9 AND abs(x1 - ?) < 1e-9 AND abs(y1 - ?) < 1e-9"
)


def _clip(v: float) -> float:
    return min(1.0, max(0.0, v))


def parse_dlib_xml(xml_path: str | Path) -> list[dict]:
    """[{file, boxes: [{left, top, width, height, ignore, parts: [(x, y), ...]}]}] in file order."""
    xml_path = Path(xml_path)
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as e:
        raise InvalidInput(f"{xml_path}: not valid XML ({e})") from None
    images = []
    for im in root.iter("image"):
        boxes = []
        for box in im.findall("box"):
            try:
                parts = sorted(
                    (int(p.get("name")), float(p.get("x")), float(p.get("y"))) for p in box.findall("part")
                )
                boxes.append(
                    {
                        "left": float(box.get("left")),
                        "top": float(box.get("top")),
                        "width": float(box.get("width")),
                        "height": float(box.get("height")),
                        "ignore": box.get("ignore") == "1",
                        "parts": [(x, y) for _, x, y in parts],
                    }
                )
            except (TypeError, ValueError):
                raise InvalidInput(
                    f"{xml_path}: a box of {im.get('file')} has a missing or bad number"
                ) from None
        images.append({"file": im.get("file"), "boxes": boxes})
    return images


@dataclass(frozen=True)
class XmlFace:
    """A box with all 68 parts (the dev photos' landmark files), in pixels."""

    file: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
    points: np.ndarray  # (68, 2) pixels, iBUG order


def load_faces(xml_path: str | Path) -> list[XmlFace]:
    """Every box that has 68 parts, in file order, with its image file name (for evaluation)."""
    faces = []
    for image in parse_dlib_xml(xml_path):
        for b in image["boxes"]:
            if len(b["parts"]) != 68:
                continue
            x0, y0 = b["left"], b["top"]
            box = (x0, y0, x0 + b["width"], y0 + b["height"])
            faces.append(XmlFace(image["file"], box, np.array(b["parts"], dtype=np.float64)))
    return faces


def import_dlib_xml(
    db: Database,
    xml_path: str | Path,
    set_name: str,
    kind: str,
    source: str,
    split: str = "train",
    *,
    parent_set_id: int | None = None,
    model_id: int | None = None,
    params: dict | None = None,
    stored_path=None,
) -> dict:
    """Import an imglab XML file as one annotation set (created when missing); idempotent.

    Images are registered by content (split applies only to images new to the store).
    kind face_box stores boxes; face_landmarks68 / face_landmarks5 store box and points and need
    exactly that many parts per box. With parent_set_id, each landmark row points at the box of
    that set with the same coordinates. `stored_path(path) -> str` chooses the path kept for images.
    """
    from .folder import register_image_file

    xml_path = Path(xml_path)
    n_points = get_kind(kind).n_points
    images = parse_dlib_xml(xml_path)
    summary = {"images": 0, "images_added": 0, "added": 0, "existing": 0, "ignored": 0}
    created = now()
    with immediate(db):
        set_id = get_or_create_set(
            db,
            set_name,
            kind,
            source,
            label=FACE_LABEL,
            model_id=model_id,
            params=params or {"xml": xml_path.name},
        )
        summary["set_id"] = set_id
        for entry in images:
            path = xml_path.parent / entry["file"]
            image_id, added = register_image_file(
                db, path, split, stored_path=stored_path(path) if stored_path else None
            )
            summary["images"] += 1
            summary["images_added"] += added
            w, h = db.execute("SELECT width, height FROM images WHERE id = ?", [image_id]).fetchone()
            for b in entry["boxes"]:
                if b["ignore"]:
                    summary["ignored"] += 1
                    continue
                box = (
                    _clip(b["left"] / w),
                    _clip(b["top"] / h),
                    _clip((b["left"] + b["width"]) / w),
                    _clip((b["top"] + b["height"]) / h),
                )
                if db.execute(_SAME_BOX, [set_id, image_id, *box]).fetchone():
                    summary["existing"] += 1
                    continue
                points = None
                if n_points:
                    if len(b["parts"]) != n_points:
                        raise InvalidInput(
                            f"{xml_path}: a box of {entry['file']} has {len(b['parts'])} parts, {kind} needs {n_points}"
                        )
                    points = [[round(_clip(x / w), 6), round(_clip(y / h), 6), 1] for x, y in b["parts"]]
                parent_id = None
                if parent_set_id is not None:
                    row = db.execute(_SAME_BOX, [parent_set_id, image_id, *box]).fetchone()
                    parent_id = row[0] if row else None
                row = annotation_row(
                    set_id,
                    image_id,
                    kind,
                    box,
                    points,
                    label=FACE_LABEL,
                    parent_id=parent_id,
                    created_at=created,
                )
                insert_annotation(db, row)
                summary["added"] += 1
    return summary


def import_dlib_faces(
    db: Database,
    xml_path: str | Path,
    split: str = "train",
    source: str = "human",
    sets: tuple[str, str] = ("human-face_box", "human-face_landmarks68"),
) -> tuple[dict, dict]:
    """An imglab XML of faces with 68 parts as two sets (named `sets`): the boxes, and the 68 points
    whose rows point at their boxes (parent_id); returns both import_dlib_xml summaries."""
    boxes = import_dlib_xml(db, xml_path, sets[0], "face_box", source, split)
    points = import_dlib_xml(
        db, xml_path, sets[1], "face_landmarks68", source, split, parent_set_id=boxes["set_id"]
    )
    return boxes, points
