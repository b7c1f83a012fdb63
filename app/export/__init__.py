"""Training data: the merge rules (merge.py), the writers (writers.py, files.py); import-csv is app/imports/csv.py.

One implementation of the merge rules serves `flask oiap export`, training and the web export:

    from app.export import iter_training_rows, ground_truth, ImageInfo

    files = ImageInfo(app.config)              # image files and sizes (Open Images layout aware)
    for row in iter_training_rows(db, "face_landmarks68", splits=("train",), unrated_weight=0.5):
        row.image_id, row.split        # 16-hex ImageID; 'train' or 'validation', never 'test'
        row.source, row.weight         # 'human' | 'machine_good' (1.0) | 'machine_unrated' (unrated_weight)
        row.box                        # (x0, y0, x1, y1) normalised (the parent box for landmarks without one)
        row.points                     # [[x, y, visible], ...] normalised, kind order; (0, 0) = absent
        row.width, row.height          # stored pixel size (may be None: files(row) reads it from the file)
        path, size = files(row)        # the image file (text) and (width, height) or None
    for row in ground_truth(db, "face_landmarks68", "test"):   # evaluation: human + good machine
        ...

Rows stream in (split, image_id, annotation id) order with memory flat in the number of rows; the
cursor stays open while you iterate, so iterate once per epoch (or keep what you need).
`iter_training_rows(..., include_unrated=False)` drops unrated machine rows; `sets=[names]` limits
the sets (human overrides still apply). InvalidInput for the test split or an unknown set/split.
"""

from .files import ImageInfo, select_rows, text_chunks, write_yolo_folder, yolo_zip_chunks
from .merge import (
    DEFAULT_UNRATED_WEIGHT,
    SOURCES,
    TrainingRow,
    count_candidates,
    ground_truth,
    iter_training_rows,
    resolve_image,
)
from .writers import FORMATS, csv_header

__all__ = [
    "DEFAULT_UNRATED_WEIGHT",
    "FORMATS",
    "SOURCES",
    "ImageInfo",
    "TrainingRow",
    "count_candidates",
    "csv_header",
    "ground_truth",
    "iter_training_rows",
    "resolve_image",
    "select_rows",
    "text_chunks",
    "write_yolo_folder",
    "yolo_zip_chunks",
]
