"""Reading Open Images' CSV files, shared by the importers (boxes, image lists, image-level labels,
masks): the header's columns checked by name, the rows of a csv reader with bad ones reported (also
import-csv's, in its own words), and one
data line of the big files as a row, for the byte-level loops that skip most lines on a substring test
before decoding and parse the rest here."""

import csv
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import InvalidInput

OPEN_IMAGES_HINT = "is this an Open Images file?"


def need_columns(
    header: Iterable[str], wanted: Iterable[str], path: Path, hint: str = OPEN_IMAGES_HINT
) -> None:
    """InvalidInput naming the `wanted` columns that the header lacks; `hint` says which file was expected."""
    have = set(header)
    missing = [c for c in wanted if c not in have]
    if missing:
        raise InvalidInput(f"{path}: missing column(s) {', '.join(missing)}; {hint}")


def header_index(
    f: BinaryIO, path: Path, wanted: Iterable[str], hint: str = OPEN_IMAGES_HINT
) -> dict[str, int]:
    """Column name -> index from the header line of a file opened in binary (the byte-level loops read
    the rest), the `wanted` columns checked."""
    try:
        header = f.readline().decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: the header is not UTF-8 text") from None
    idx = {name.strip(): i for i, name in enumerate(header.split(","))}
    need_columns(idx, wanted, path, hint)
    return idx


def csv_rows(reader, path: Path, errors) -> Iterator[list[str]]:
    """The rows of a csv.reader over `path`; a row the csv module cannot parse is reported to `errors`
    (imports.openimages._Errors) and skipped. Google's files are UTF-8: another encoding is the whole
    file's problem, not a row's (InvalidInput)."""
    return reader_rows(
        reader,
        lambda line, e: errors.add(path, line, f"unreadable CSV row: {e}"),
        lambda line, e: InvalidInput(f"{path}: not UTF-8 text near line {line}"),
    )


def reader_rows(
    reader,
    bad_row: Callable[[int, csv.Error], None],
    bad_text: Callable[[int, UnicodeDecodeError], Exception],
) -> Iterator[list[str]]:
    """The rows of a csv.reader, each importer with its own words: a row the csv module cannot parse is
    skipped after bad_row(line, error); text that is not in the file's encoding is the whole file's
    problem: bad_text(line, error) is raised."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            bad_row(reader.line_num, e)
            continue
        except UnicodeDecodeError as e:
            raise bad_text(reader.line_num + 1, e) from None
        yield row


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
