"""Measure 68-point annotators on the dev faces: NME normalised by the outer eye corners 36-45."""

from pathlib import Path

import numpy as np
from PIL import Image

from .ibug_xml import XmlFace, load_faces
from .template68 import five_from_68

DEMO_DATA = Path(__file__).resolve().parents[1] / "demo_data"
DEV_XMLS = ("training_with_face_landmarks.xml", "testing_with_face_landmarks.xml")


def nme(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean point error divided by the distance between the outer eye corners (36 and 45)."""
    true = np.asarray(true, dtype=np.float64)
    d = np.linalg.norm(true[45] - true[36])
    return float(np.linalg.norm(np.asarray(pred) - true, axis=1).mean() / d)


def load_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file to HxWx3 uint8 RGB."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def predict_faces(annotator, faces: list[XmlFace], images_dir: Path, cond: str) -> list[np.ndarray]:
    """Run the annotator per image (all its faces in one predict_many) on the true boxes; with
    cond "five", also on five points derived from the true 68."""
    by_file: dict[str, list[int]] = {}
    for i, f in enumerate(faces):
        by_file.setdefault(f.file, []).append(i)
    out: list[np.ndarray | None] = [None] * len(faces)
    for file, idx in by_file.items():
        img = load_rgb(images_dir / file)
        boxes = [faces[i].box for i in idx]
        fives = [five_from_68(faces[i].points) for i in idx] if cond == "five" else None
        for i, p in zip(idx, annotator.predict_many(img, boxes, fives), strict=True):
            out[i] = p
    return out


def face_nmes(annotator, xml_name: str, cond: str, images_dir: Path = DEMO_DATA) -> list[float]:
    """Per-face NME of an annotator on one dev XML file under a condition ("box" or "five")."""
    faces = load_faces(images_dir / xml_name)
    preds = predict_faces(annotator, faces, images_dir, cond)
    return [nme(p, f.points) for p, f in zip(preds, faces, strict=True)]


def mesh_vertex_costs(xml_name: str = DEV_XMLS[0], images_dir: Path = DEMO_DATA) -> np.ndarray:
    """(68, 468) mean NME of each iBUG point against each face mesh vertex, five points from the truth."""
    from .facemesh68 import predict_mesh_many

    faces = load_faces(images_dir / xml_name)
    cost = np.zeros((68, 468))
    by_file: dict[str, list[XmlFace]] = {}
    for f in faces:
        by_file.setdefault(f.file, []).append(f)
    for file, group in by_file.items():
        img = load_rgb(images_dir / file)
        meshes = predict_mesh_many(img, [f.box for f in group], [five_from_68(f.points) for f in group])
        for f, mesh in zip(group, meshes, strict=True):
            d = np.linalg.norm(f.points[45] - f.points[36])
            cost += np.linalg.norm(f.points[:, None, :] - mesh[None, :, :], axis=2) / d
    return cost / len(faces)


def unique_argmin(cost: np.ndarray) -> list[int]:
    """Per row the cheapest column, no column twice: rows pick in order of how much they stand to lose."""
    order = np.argsort(cost, axis=1)
    regret = cost[np.arange(len(cost)), order[:, 1]] - cost[np.arange(len(cost)), order[:, 0]]
    taken: set[int] = set()
    out = [0] * len(cost)
    for row in np.argsort(-regret):
        col = next(int(c) for c in order[row] if int(c) not in taken)
        taken.add(col)
        out[row] = col
    return out


def mtcnn_available() -> bool:
    """Whether the MTCNN detector is installed (its condition is measured only then)."""
    return False


def summary(nmes: list[float]) -> dict:
    """Mean NME and failure rates at 0.08 and 0.10."""
    a = np.asarray(nmes)
    return {
        "n": len(a),
        "mean_nme": float(a.mean()),
        "fail_0.08": float((a > 0.08).mean()),
        "fail_0.10": float((a > 0.10).mean()),
    }
