"""Writers for small Open Images metadata files in Google's own formats (v4 to v7)."""

import csv
from pathlib import Path

IMAGE_HEADER = (
    "ImageID,Subset,OriginalURL,OriginalLandingURL,License,AuthorProfileURL,Author,Title,"
    "OriginalSize,OriginalMD5,Thumbnail300KURL,Rotation"
).split(",")
BBOX_HEADER_V4 = (
    "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside"
).split(",")
BBOX_HEADER_V6 = BBOX_HEADER_V4 + (
    "XClick1X,XClick2X,XClick3X,XClick4X,XClick1Y,XClick2Y,XClick3Y,XClick4Y".split(",")
)
FACE, PERSON = "/m/0dzct", "/m/01g317"
CLASSES = [("/m/011k07", "Tortoise"), (PERSON, "Person"), (FACE, "Human face")]


def image_row(
    image_id: str, subset: str, rotation: str = "0.0", title: str = "A photo, with a comma"
) -> list:
    """One metadata row as the real files have it."""
    return [
        image_id,
        subset,
        f"https://farm3.staticflickr.com/5516/{image_id}_o.jpg",
        f"https://www.flickr.com/photos/someone/{image_id}",
        "https://creativecommons.org/licenses/by/2.0/",
        "https://www.flickr.com/people/someone/",
        "Some One",
        title,
        "2038323",
        "I4V4qq54NBEFDwBqPYCvaA==",
        f"https://c2.staticflickr.com/6/5606/{image_id}_z.jpg",
        rotation,
    ]


def bbox_row(image_id: str, label: str, box=(0.1, 0.3, 0.2, 0.5), flags=(0, 1, 0, 0, 0), xclick=True) -> list:
    """One bbox row: XMin, XMax, YMin, YMax then the five Is* flags (and XClick points for v6)."""
    x0, x1, y0, y1 = box
    row = [image_id, "xclick", label, "1", *(f"{v:.6f}" for v in box), *map(str, flags)]
    if xclick:
        row += [
            f"{x0:.6f}",
            f"{x1:.6f}",
            f"{x0:.6f}",
            f"{x1:.6f}",
            f"{y0:.6f}",
            f"{y0:.6f}",
            f"{y1:.6f}",
            f"{y1:.6f}",
        ]
    return row


def write_csv(path: Path, header: list | None, rows: list[list]) -> Path:
    """Write rows (after an optional header) the way Google's files are written."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        if header:
            w.writerow(header)
        w.writerows(rows)
    return path


LABELS_HEADER = ["ImageID", "Source", "LabelName", "Confidence"]


def label_row(image_id: str, label: str, confidence: int | str = 1, source: str = "verification") -> list:
    """One human-verified image-level label row (ImageID,Source,LabelName,Confidence)."""
    return [image_id, source, label, str(confidence)]
