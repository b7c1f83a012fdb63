"""Open Images ids and file layout: the one place that turns an image row into a file path.

Layouts (config):
- OPEN_IMAGES_DIR: one folder as CVDF's archives unpack into it: `train_<c>/<id>.jpg` (one folder
  per first hex character, from train_0.tar.gz ... train_f.tar.gz) or `train/<id>.jpg`, plus
  `validation/<id>.jpg` and `test/<id>.jpg`; a flat `<id>.jpg` (Open Images' downloader.py) works too.
- OPEN_IMAGES_DIR_MAP: {"0": dir, ..., "f": dir, "validation": dir, "test": dir}: train images
  by the first hex character of their id, the other splits by name; each dir holds `<id>.jpg`.
- Images with a `path` (import-dir, demo) resolve to it: absolute as stored, or relative to the
  repository (the demo photos ship in app/demo_data).

`image_path(config, row)` never returns a path outside the folder it resolved against: the id is
validated, and a file whose real path (symlinks followed) leaves its folder is refused.
"""

import re
from collections.abc import Mapping
from pathlib import Path

from ..errors import InvalidInput, NotFound
from ..paths import REPO_ROOT

IMAGE_ID_RE = re.compile(r"[0-9a-f]{16}")
SPLITS = ("train", "validation", "test")
HEX = "0123456789abcdef"


def validate_image_id(value: object, where: str = "") -> str:
    """Return the id when it is 16 lowercase hex characters; InvalidInput names the bad value."""
    if isinstance(value, str) and IMAGE_ID_RE.fullmatch(value):
        return value
    at = f" in {where}" if where else ""
    raise InvalidInput(
        f"bad ImageID {value!r}{at}: an Open Images ImageID is 16 lowercase hex characters, e.g. 000002b66c9c498e"
    )


def is_image_id(value: object) -> bool:
    """True when the value is a valid ImageID."""
    return isinstance(value, str) and IMAGE_ID_RE.fullmatch(value) is not None


def validate_split(value: str) -> str:
    """Return the split when it is train, validation or test."""
    if value not in SPLITS:
        raise InvalidInput(f"unknown split {value!r}; use one of: {', '.join(SPLITS)}")
    return value


def check_layout(config: Mapping) -> None:
    """Refuse a malformed OPEN_IMAGES_DIR_MAP early, with a message saying what is wrong."""
    mapping = config.get("OPEN_IMAGES_DIR_MAP")
    if mapping is None:
        return
    if not isinstance(mapping, Mapping):
        raise InvalidInput(
            "OPEN_IMAGES_DIR_MAP must be a JSON object such as "
            '{"0": "/disk1/train_0", "validation": "/disk2/validation", "test": "/disk2/test"}'
        )
    bad = [k for k in mapping if k not in HEX and k not in ("validation", "test", "train")]
    if bad:
        raise InvalidInput(
            f"OPEN_IMAGES_DIR_MAP has unknown keys {bad}; use 0-9, a-f, 'validation' and 'test'"
        )


def _candidates(config: Mapping, image_id: str, split: str | None) -> list[tuple[Path, str]]:
    """(folder, file name) pairs to try, in order, for an Open Images id."""
    name = f"{image_id}.jpg"
    splits = [split] if split in SPLITS else list(SPLITS)
    out: list[tuple[Path, str]] = []
    mapping = config.get("OPEN_IMAGES_DIR_MAP")
    if mapping:
        check_layout(config)
        for s in splits:
            key = image_id[0] if s == "train" else s
            folder = mapping.get(key) or (mapping.get("train") if s == "train" else None)
            if folder:
                out.append((Path(folder), name))
    root = config.get("OPEN_IMAGES_DIR")
    if root:
        root = Path(root)
        for s in splits:
            if s == "train":
                out.append((root / f"train_{image_id[0]}", name))
            out.append((root / s, name))
        out.append((root, name))
    return out


def _inside(folder: Path, name: str) -> Path | None:
    """The file folder/name when it exists and its real path stays inside the folder's real path."""
    candidate = folder / name
    if not candidate.is_file():
        return None
    real_folder = folder.resolve()
    real = candidate.resolve()
    if not real.is_relative_to(real_folder):
        # A symlink pointing out of the image folder: never serve it.
        return None
    return real


def stored_path(path: str) -> Path:
    """The file of an image row's `path`: absolute as stored, or relative to the repository."""
    p = Path(path)
    if p.is_absolute():
        return p
    if ".." in p.parts:
        raise InvalidInput(f"image path {path!r} leaves the repository")
    real = (REPO_ROOT / p).resolve()
    if not real.is_relative_to(REPO_ROOT):
        raise InvalidInput(f"image path {path!r} leaves the repository")
    return real


def image_path(config: Mapping, row: Mapping) -> Path:
    """The file of an image row (id, split, path); NotFound says where it looked.

    `config` is the app config (or any mapping with OPEN_IMAGES_DIR / OPEN_IMAGES_DIR_MAP).
    """
    image_id = validate_image_id(row["id"])
    if row.get("path"):
        p = stored_path(row["path"])
        if not p.is_file():
            raise NotFound(f"image {image_id}: file {p} is missing")
        return p
    candidates = _candidates(config, image_id, row.get("split"))
    if not candidates and config.get("OPEN_IMAGES_DIR_MAP"):
        key = image_id[0] if row.get("split") == "train" else row.get("split")
        raise NotFound(f"image {image_id}: no file found; OPEN_IMAGES_DIR_MAP has no folder for {key!r}")
    if not candidates:
        raise NotFound(
            f"image {image_id} is an Open Images image, but neither OPEN_IMAGES_DIR nor "
            "OPEN_IMAGES_DIR_MAP is configured (see README, Configuration)"
        )
    for folder, name in candidates:
        found = _inside(folder, name)
        if found is not None:
            return found
    tried = ", ".join(str(f / n) for f, n in candidates)
    raise NotFound(f"image {image_id}: no file found; tried {tried}")
