"""Bulk runs supersede: a newer run's rows replace the older runs' unrated rows of the same faces.

When a bulk-annotate run writes a batch, each older model run's row of the same kind on the same
image that nobody rated, that is not deleted, and whose box overlaps one of the new rows of the same
label (IoU >= 0.5, the merge's face rule; object boxes of two classes are two objects) is marked superseded: deleted = 2, superseded_by = the new set (m015). It
is kept (the set file, the audit and `sets list` still show it) but leaves the review queue, the
set pages and the exports, as the merge rules want ("older runs' unrated rows over the same images
are superseded"). Rated rows stay: a reviewer's word is never taken back by a model. Only model
runs are superseded (sets of source 'model' with a model_id); human sets, imports and model output
imported from a file (the demo's 68 points) stay as they are.
"""

import json
from collections.abc import Iterable, Mapping

from sqlite_utils import Database

from ..annotations.geometry import iou
from ..annotations.rows import mark_superseded
from ..export.merge import OVERLAP_IOU

_BOXES = """
SELECT a.id, a.set_id, a.image_id, a.label, a.rating, a.deleted, s.source = 'model' AND s.model_id IS NOT NULL,
       coalesce(a.x0, p.x0), coalesce(a.y0, p.y0), coalesce(a.x1, p.x1), coalesce(a.y1, p.y1)
FROM annotations a INDEXED BY annotations_image_kind
JOIN annotation_sets s ON s.id = a.set_id
LEFT JOIN annotations p ON p.id = a.parent_id
WHERE a.image_id IN (SELECT value FROM json_each(?)) AND a.kind = ? AND a.set_id <= ?
"""


def supersede_batch(db: Database, sets: Mapping[str, int], image_ids: Iterable[str]) -> int:
    """Mark what the new sets' rows on these images supersede (inside the batch's transaction);
    returns how many rows were marked."""
    ids = json.dumps(sorted(set(image_ids)))
    marked = 0
    for set_id in sets.values():
        kind = db.execute("SELECT kind FROM annotation_sets WHERE id = ?", [set_id]).fetchone()[0]
        new: dict[tuple, list] = {}
        old = []
        for ann_id, sid, image_id, label, rating, deleted, is_run, *box in db.execute(
            _BOXES, [ids, kind, set_id]
        ):
            if sid == set_id:
                if deleted == 0:
                    new.setdefault((image_id, label), []).append(box)
            elif deleted == 0 and rating is None and is_run:
                old.append((ann_id, (image_id, label), box))
        gone = [
            ann_id for ann_id, key, box in old if any(iou(box, b) >= OVERLAP_IOU for b in new.get(key, ()))
        ]
        if gone:
            marked += mark_superseded(db, gone, set_id)
    return marked
