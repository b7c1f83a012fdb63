"""`flask oiap import-dir`: register image files kept outside Open Images' layout.

An image's id is the first 16 hex characters of the sha1 of its bytes, so the same file imported
twice (or from two folders) is one image. Its absolute path is stored; width and height are read.
"""

import hashlib
from collections.abc import Callable
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from sqlite_utils import Database
from tqdm import tqdm

from ..db import immediate, now
from ..errors import InvalidInput
from ..images.allowed import register_folder
from ..images.layout import validate_split
from ..images.records import insert_images
from ..runs import add_run_errors, finish_failed, finish_run, start_run

EXTENSIONS = {".jpg", ".jpeg", ".png"}
FORMATS = {"JPEG", "PNG"}


def content_id(path: str | Path) -> str:
    """The image id of a file: the first 16 hex characters of the sha1 of its content."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def read_size(path: str | Path) -> tuple[int, int]:
    """Width and height of a JPEG or PNG, decoding it fully; InvalidInput when it cannot be read."""
    try:
        with Image.open(path) as im:
            if im.format not in FORMATS:
                raise InvalidInput(f"{path}: {im.format} is not JPEG or PNG")
            # load() decodes every pixel, so a truncated or corrupt file is caught here, not in review.
            im.load()
            return im.size
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise InvalidInput(f"{path}: not a readable JPEG or PNG ({e})") from None


def register_image_file(
    db: Database,
    path: str | Path,
    split: str = "train",
    *,
    stored_path: str | None = None,
    licence: str | None = None,
    author: str | None = None,
    author_url: str | None = None,
    title: str | None = None,
    url: str | None = None,
) -> tuple[str, bool]:
    """Register one image file (in the caller's transaction); returns (id, added).

    The path stored is `stored_path` when given (e.g. relative to the repository), else the
    file's absolute path.
    """
    validate_split(split)
    path = Path(path)
    width, height = read_size(path)
    image_id = content_id(path)
    # Only files inside the folders imports took them from are ever served (app/images/allowed.py).
    register_folder(db, path.resolve().parent, "file")
    added = insert_images(
        db,
        ("split", "path", "width", "height", "licence", "author", "author_url", "title", "url"),
        [
            [
                image_id,
                split,
                stored_path or str(path.resolve()),
                width,
                height,
                licence,
                author,
                author_url,
                title,
                url,
                now(),
            ]
        ],
    )
    return image_id, added == 1


def find_images(folder: Path) -> list[Path]:
    """JPEG and PNG files under a folder (recursively, hidden ones skipped), sorted."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in EXTENSIONS
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def import_dir(
    db: Database, folder: str | Path, split: str = "train", echo: Callable[[str], None] = lambda s: None
) -> dict:
    """Register every JPEG/PNG under a folder; unreadable files are reported and skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder")
    validate_split(split)
    files = find_images(folder)
    with immediate(db):
        register_folder(db, folder, "import-dir")
    run_id = start_run(db, "import-dir", {"dir": str(folder.resolve()), "split": split}, total=len(files))
    summary = {"run_id": run_id, "files": len(files), "added": 0, "existing": 0, "errors": []}
    try:
        for i, path in enumerate(tqdm(files, desc="import-dir", unit="file", mininterval=0.5, leave=False)):
            with immediate(db):
                try:
                    _, added = register_image_file(db, path, split)
                except InvalidInput as e:
                    summary["errors"].append(str(e))
                    add_run_errors(db, run_id, [{"source": str(path), "reason": str(e)}])
                    echo(f"skipped {e}")
                    continue
                summary["added" if added else "existing"] += 1
                db.conn.execute("UPDATE runs SET progress = ? WHERE id = ?", [i + 1, run_id])
        finish_run(
            db, run_id, "done", f"{len(summary['errors'])} unreadable file(s)" if summary["errors"] else None
        )
    except BaseException as e:
        finish_failed(db, run_id, e)
        raise
    return summary
