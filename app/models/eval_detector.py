"""Measure the face detector on the 43 dev faces (app/demo_data/*_with_face_landmarks.xml).

dlib's dev boxes are tight squares from brow to chin; MTCNN's are taller (forehead to below the chin)
and a little wider, so a correct MTCNN box often has IoU 0.45-0.6 with its dev box. Recall is given at
IoU 0.5 (the usual bar) and 0.3 (the same face, counted despite the different box conventions).
"""

from pathlib import Path

import numpy as np

from ..annotations.geometry import iou
from ..annotators.template68 import five_from_68
from ..imports.dlib_xml import load_faces

DEMO_DATA = Path(__file__).resolve().parents[1] / "demo_data"
DEV_XMLS = ("training_with_face_landmarks.xml", "testing_with_face_landmarks.xml")


def match(true_boxes, pred_boxes, threshold: float) -> list[int | None]:
    """Greedy one-to-one matching by IoU: for each true box, the index of its prediction or None."""
    pairs = sorted(
        ((iou(t, p), i, j) for i, t in enumerate(true_boxes) for j, p in enumerate(pred_boxes)), reverse=True
    )
    out: list[int | None] = [None] * len(true_boxes)
    used = set()
    for v, i, j in pairs:
        if v < threshold:
            break
        if out[i] is None and j not in used:
            out[i], _ = j, used.add(j)
    return out


def dev_faces(images_dir: Path = DEMO_DATA, xmls: tuple[str, ...] = DEV_XMLS) -> dict[str, list]:
    """The dev faces (of every dev file, or of xmls) grouped by image file."""
    by_file: dict[str, list] = {}
    for xml in xmls:
        for f in load_faces(images_dir / xml):
            by_file.setdefault(f.file, []).append(f)
    return by_file


def evaluate(detector, images_dir: Path = DEMO_DATA, thresholds=(0.5, 0.3)) -> dict:
    """Recall and false positives at each IoU threshold; five-point NME (by eye-centre distance)."""
    from ..images.decode import load_rgb

    faces = dev_faces(images_dir)
    n_true = sum(len(v) for v in faces.values())
    out: dict = {"faces": n_true, "images": len(faces), "detections": 0}
    hits = {t: 0 for t in thresholds}
    fps = {t: 0 for t in thresholds}
    nmes = []
    for file, fs in faces.items():
        dets = detector.detect(load_rgb(images_dir / file))
        out["detections"] += len(dets)
        true = [f.box for f in fs]
        pred = [d[0] for d in dets]
        for t in thresholds:
            m = match(true, pred, t)
            hits[t] += sum(j is not None for j in m)
            fps[t] += len(pred) - sum(j is not None for j in m)
            if t == min(thresholds):
                for f, j in zip(fs, m, strict=True):
                    if j is not None:
                        five = five_from_68(f.points)
                        d = np.linalg.norm(five[0] - five[1])
                        nmes.append(float(np.linalg.norm(dets[j][2] - five, axis=1).mean() / d))
    for t in thresholds:
        out[f"recall@{t}"] = hits[t] / n_true
        out[f"false_positives@{t}"] = fps[t]
    out["five_point_nme"] = float(np.mean(nmes)) if nmes else None
    out["five_point_nme_max"] = float(np.max(nmes)) if nmes else None
    out["five_point_faces"] = len(nmes)
    return out
