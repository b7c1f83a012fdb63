"""Measure 68-point annotators on the dev faces: NME normalised by the outer eye corners 36-45."""

from pathlib import Path

import numpy as np

from ..annotations.geometry import box_iou
from ..annotators.template68 import five_from_68
from ..images.decode import load_rgb
from ..imports.dlib_xml import XmlFace, load_faces
from . import metrics

DEMO_DATA = Path(__file__).resolve().parents[1] / "demo_data"
DEV_XMLS = ("training_with_face_landmarks.xml", "testing_with_face_landmarks.xml")


def nme(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean point error divided by the distance between the outer eye corners (36 and 45)."""
    return float(metrics.nme(np.asarray(pred)[None], np.asarray(true)[None])[0])


CONDS = ("box", "five", "mtcnn", "mtcnn_box")
MATCH_IOU = 0.3  # a detection stands for a true face when their boxes overlap at least this much


def _inputs(img, faces: list[XmlFace], cond: str, detector) -> tuple[list, list | None, list[bool]]:
    """Boxes, five points (or None) and a found flag per true face under a condition."""
    boxes = [f.box for f in faces]
    if cond == "box":
        return boxes, None, [True] * len(faces)
    if cond == "five":
        return boxes, [five_from_68(f.points) for f in faces], [True] * len(faces)
    dets = detector.detect(img)
    found = [False] * len(faces)
    fives: list = [None] * len(faces)
    if dets:
        iou = box_iou(np.array(boxes), np.array([d[0] for d in dets]))
        for i in range(len(faces)):
            j = int(iou[i].argmax())
            if iou[i, j] >= MATCH_IOU:
                found[i] = True
                boxes[i] = tuple(float(v) for v in dets[j][0])
                fives[i] = np.asarray(dets[j][2], dtype=np.float64)
    return boxes, (fives if cond == "mtcnn" else None), found


def predict_faces(
    annotator, faces: list[XmlFace], images_dir: Path, cond: str, detector=None
) -> list[np.ndarray | None]:
    """Run the annotator per image (all its faces in one predict_many). cond: "box" = true boxes;
    "five" = true boxes and five points from the true 68; "mtcnn" = the matched MTCNN box and five
    points; "mtcnn_box" = the matched MTCNN box alone. None for a face MTCNN did not find."""
    by_file: dict[str, list[int]] = {}
    for i, f in enumerate(faces):
        by_file.setdefault(f.file, []).append(i)
    out: list[np.ndarray | None] = [None] * len(faces)
    for file, idx in by_file.items():
        img = load_rgb(images_dir / file)
        boxes, fives, found = _inputs(img, [faces[i] for i in idx], cond, detector)
        keep = [k for k in range(len(idx)) if found[k]]
        preds = annotator.predict_many(
            img, [boxes[k] for k in keep], None if fives is None else [fives[k] for k in keep]
        )
        for k, p in zip(keep, preds, strict=True):
            out[idx[k]] = p
    return out


def face_nmes(
    annotator, xml_name: str, cond: str, images_dir: Path = DEMO_DATA, detector=None
) -> list[float]:
    """Per-face NME of an annotator on one dev XML file under a condition (see predict_faces); faces
    that MTCNN missed are left out (count them by the length)."""
    if cond.startswith("mtcnn") and detector is None:
        detector = get_detector()
    faces = load_faces(images_dir / xml_name)
    preds = predict_faces(annotator, faces, images_dir, cond, detector)
    return [nme(p, f.points) for p, f in zip(preds, faces, strict=True) if p is not None]


def get_detector():
    """The MTCNN detector, or None where it is not installed."""
    try:
        from ..annotators.mtcnn import MTCNN
    except ImportError:
        return None
    return MTCNN()


def mesh_vertex_costs(xml_name: str = DEV_XMLS[0], images_dir: Path = DEMO_DATA) -> np.ndarray:
    """(68, 468) mean NME of each iBUG point against each face mesh vertex, five points from the truth."""
    from ..annotators.facemesh68 import predict_mesh_many

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
    """Whether the MTCNN detector is installed (its conditions are measured only then)."""
    return get_detector() is not None


def summary(nmes: list[float]) -> dict:
    """Mean NME and failure rates at 0.08 and 0.10."""
    a = np.asarray(nmes)
    return {
        "n": len(a),
        "mean_nme": float(a.mean()),
        "fail_0.08": float((a > 0.08).mean()),
        "fail_0.10": float((a > 0.10).mean()),
    }
