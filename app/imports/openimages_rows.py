"""One data line of Open Images' big CSV files (boxes, image-level labels) as a row, for the importers'
byte-level loops: they skip most lines on a substring test before decoding, and parse the rest here."""

import csv
from pathlib import Path


def split_line(raw: bytes, n_cols: int, errors, path: Path, line: int) -> list[str] | None:
    """The line's fields, or None after reporting why it is unreadable to `errors`
    (imports.openimages._Errors: add(path, line, reason))."""
    try:
        text = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as e:
        errors.add(path, line, f"not UTF-8: {e}")
        return None
    try:
        # Google's rows quote only free text: a plain split is exact, and several times faster.
        row = next(csv.reader([text])) if '"' in text else text.split(",")
    except csv.Error as e:
        errors.add(path, line, f"unreadable CSV row: {e}")
        return None
    if len(row) != n_cols:
        errors.add(path, line, f"expected {n_cols} columns, got {len(row)}")
        return None
    return row
