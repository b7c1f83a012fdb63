"""Which files may be served as images: only real images inside the folders images come from.

An image row's path comes from imports, some of them from other machines (a set file fetched from
the shared bucket), so the row alone never decides which file is read. A file is served only when

- its real path (symlinks followed) lies inside an image folder: OPEN_IMAGES_DIR and the folders of
  OPEN_IMAGES_DIR_MAP, the instance's IMAGES_DIR, the demo photos that ship in app/demo_data, and
  the folders registered by an import (`import-dir` registers its folder, any other import of a
  file registers the file's folder), kept in the `image_folders` table;
- and it opens as a JPEG or PNG (the header is read, so a text file, a database or a key named
  `<id>.jpg` is refused even inside an image folder).

Both are checked at import (`register_folder`, `imported_path`) and again at every read
(`checked_path`): a registered file can be replaced by anything after its import.
"""

from collections.abc import Mapping
from pathlib import Path, PurePath

from PIL import Image, UnidentifiedImageError
from sqlite_utils import Database

from ..db import now
from ..errors import NotFound
from ..paths import REPO_ROOT
from .layout import image_path

DEMO_DIR = REPO_ROOT / "app" / "demo_data"
FORMATS = ("JPEG", "PNG")


def register_folder(db: Database, folder: str | Path, source: str) -> None:
    """Record a folder that images were imported from (in the caller's transaction)."""
    real = str(Path(folder).resolve())
    db.conn.execute(
        "INSERT INTO image_folders (path, source, added_at) VALUES (?, ?, ?) ON CONFLICT (path) DO NOTHING",
        [real, source, now()],
    )


def image_folders(db: Database, config: Mapping) -> list[Path]:
    """The real paths of every folder images may be served from."""
    folders = [DEMO_DIR]
    for key in ("IMAGES_DIR", "OPEN_IMAGES_DIR"):
        if config.get(key):
            folders.append(Path(config[key]))
    mapping = config.get("OPEN_IMAGES_DIR_MAP")
    if isinstance(mapping, Mapping):
        folders.extend(Path(v) for v in mapping.values() if v)
    folders = [f.resolve() for f in folders]
    folders.extend(Path(r[0]) for r in db.execute("SELECT path FROM image_folders"))
    return folders


def is_image_file(path: Path) -> bool:
    """Whether a file opens as a JPEG or PNG (its header is read, its pixels are not)."""
    try:
        with Image.open(path) as im:
            return im.format in FORMATS
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError):
        return False


def checked_path(db: Database, config: Mapping, row: Mapping) -> Path:
    """The file of an image row when it may be served; NotFound (a 404) says why not."""
    path = image_path(config, row)  # NotFound when missing; Open Images files stay in their folder
    real = path.resolve()
    if not any(real.is_relative_to(folder) for folder in image_folders(db, config)):
        raise NotFound(
            f"image {row['id']}: its file is outside every image folder, so it is not served; "
            "import its folder with `flask oiap import-dir FOLDER` to serve it"
        )
    if not is_image_file(real):
        raise NotFound(f"image {row['id']}: its file {real.name} is not a JPEG or PNG image")
    return real


def imported_path(path: str | None) -> str | None:
    """A repository-relative image path from a set file, kept only when it names a demo photo.

    Only the demo photos ship inside the repository; any other relative path (`.git/config`,
    `instance/secret_key`) is dropped at import, and the image is then found like any other row
    without a path (Open Images layout) or not at all.
    """
    if not path or PurePath(path).is_absolute() or ".." in PurePath(path).parts:
        return None
    real = (REPO_ROOT / path).resolve()
    if not real.is_relative_to(DEMO_DIR) or not real.is_file() or not is_image_file(real):
        return None
    return path
