"""Read dlib/iBUG-style XML landmark files (the dev photos' training/testing_with_face_landmarks.xml)."""

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class XmlFace:
    file: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
    points: np.ndarray  # (68, 2) pixels, iBUG order


def load_faces(xml_path: str | Path) -> list[XmlFace]:
    """Return every box that has 68 parts, in file order, with its image file name."""
    faces = []
    for image in ET.parse(xml_path).getroot().iter("image"):
        for box in image.iter("box"):
            parts = {int(p.get("name")): (float(p.get("x")), float(p.get("y"))) for p in box.iter("part")}
            if len(parts) != 68:
                continue
            x0, y0 = float(box.get("left")), float(box.get("top"))
            w, h = float(box.get("width")), float(box.get("height"))
            pts = np.array([parts[i] for i in range(68)], dtype=np.float64)
            faces.append(XmlFace(image.get("file"), (x0, y0, x0 + w, y0 + h), pts))
    return faces
