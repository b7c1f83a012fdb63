"""Training data: the merge rules (merge.py) and the export formats (writers.py, files.py).

The public API, for export, training and the web export alike:

    from app.export import iter_training_rows, ground_truth
    for row in iter_training_rows(db, "face_landmarks68", splits=("train",)):
        row.image_id, row.split, row.source, row.weight, row.box, row.points, row.width, row.height
"""

from .files import ImageInfo, select_rows, text_chunks, write_yolo_folder, yolo_zip_chunks
from .merge import (
    DEFAULT_UNRATED_WEIGHT,
    SOURCES,
    TrainingRow,
    count_candidates,
    ground_truth,
    iou,
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
    "iou",
    "iter_training_rows",
    "resolve_image",
    "select_rows",
    "text_chunks",
    "write_yolo_folder",
    "yolo_zip_chunks",
]
