"""Training data from the merge rules (app/export/merge.py), decoded into arrays; no torch here.

The sha256 of a training set is taken over the rows as they stream out of iter_training_rows (id,
image, source, weight, box, points), so two trainings on the same labels report the same hash.
"""

import hashlib
import json
from collections.abc import Iterable, Mapping

import numpy as np
from PIL import Image
from sqlite_utils import Database

from ..annotators.crop68 import INPUT_SIZE, crop_square, sample_square
from ..errors import InvalidInput, NotFound
from ..export.merge import DEFAULT_UNRATED_WEIGHT, TrainingRow, iter_training_rows
from ..images.decode import BadImage, load_rgb
from ..images.layout import image_path

# Landmark samples are cached as a context crop CONTEXT times the net's crop, so augmentation (scale,
# rotation, shift) never samples outside what was cached.
CONTEXT = 1.5
CONTEXT_SIZE = round(INPUT_SIZE * CONTEXT)


class RowHasher:
    """sha256 over training rows as streamed; counts them too."""

    def __init__(self):
        self._h = hashlib.sha256()
        self.rows = 0

    def add(self, row: TrainingRow) -> None:
        """Hash one row's identity, weight and geometry."""
        key = [row.annotation_id, row.image_id, row.source, row.weight, row.box, row.points_json]
        self._h.update(json.dumps(key, separators=(",", ":")).encode())
        self._h.update(b"\n")
        self.rows += 1

    def hexdigest(self) -> str:
        """The hex digest so far."""
        return self._h.hexdigest()


def image_groups(
    db: Database,
    splits,
    include_unrated: bool,
    unrated_weight: float,
    hasher: RowHasher,
    kind: str = "face_landmarks68",
) -> Iterable[list[TrainingRow]]:
    """The merge's training rows of a kind, one list per image, each row added to `hasher` as it streams
    (both landmark trainers and the mask trainer read them so)."""
    rows = iter_training_rows(
        db, kind, splits, include_unrated=include_unrated, unrated_weight=unrated_weight
    )

    def hashed():
        for r in rows:
            hasher.add(r)
            yield r

    return _group_by_image(hashed())


def row_rgb(config: Mapping, row: TrainingRow) -> np.ndarray:
    """The pixels of a training row's image, on the file's grid (BadImage, NotFound or InvalidInput)."""
    return load_rgb(image_path(config, {"id": row.image_id, "split": row.split, "path": row.path}))


def _group_by_image(rows: Iterable[TrainingRow]):
    current, group = None, []
    for r in rows:
        if r.image_id != current and group:
            yield group
            group = []
        current = r.image_id
        group.append(r)
    if group:
        yield group


def landmark_samples(
    db: Database,
    config: Mapping,
    splits=("train",),
    include_unrated: bool = True,
    progress=None,
    unrated_weight: float = DEFAULT_UNRATED_WEIGHT,
) -> dict:
    """Context crops (N, S, S, 3) uint8, points (N, 68, 2) in [-1, 1] of the context crop, weights (N,),
    plus the rows' sha256 and the rows skipped (no file, no box)."""
    hasher = RowHasher()
    crops, points, weights, skipped = [], [], [], []
    for group in image_groups(db, splits, include_unrated, unrated_weight, hasher):
        try:
            pil = Image.fromarray(row_rgb(config, group[0]))
        except (NotFound, InvalidInput, BadImage) as e:
            skipped += [{"annotation_id": r.annotation_id, "reason": str(e)} for r in group]
            continue
        w, h = pil.size
        for r in group:
            pts = r.points
            if not pts or len(pts) != 68:
                skipped.append({"annotation_id": r.annotation_id, "reason": "not 68 points"})
                continue
            px = np.array([[p[0] * w, p[1] * h] for p in pts], dtype=np.float64)
            box = r.box
            if box is None:
                box = (px[:, 0].min() / w, px[:, 1].min() / h, px[:, 0].max() / w, px[:, 1].max() / h)
            cx, cy, side = crop_square((box[0] * w, box[1] * h, box[2] * w, box[3] * h))
            ctx = side * CONTEXT
            crops.append(sample_square(pil, cx, cy, ctx, CONTEXT_SIZE))
            points.append((px - [cx, cy]) / (ctx / 2))
            weights.append(r.weight)
        if progress:
            progress(len(crops))
    n = len(crops)
    return {
        "crops": np.stack(crops) if n else np.zeros((0, CONTEXT_SIZE, CONTEXT_SIZE, 3), np.uint8),
        "points": np.array(points, dtype=np.float32).reshape(n, 68, 2),
        "weights": np.array(weights, dtype=np.float32),
        "sha256": hasher.hexdigest(),
        "rows": hasher.rows,
        "skipped": skipped,
    }
