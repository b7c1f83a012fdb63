"""Adding dlib's 68-point shape predictor (a user's .dat file, never shipped) to the model registry."""

from pathlib import Path

from sqlite_utils import Database

from ..annotators.dlib68 import BOX_MAP, FIVE_MAP, LICENCE, LICENCE_CAVEAT, ORIGIN, get_predictor
from ..errors import InvalidInput
from .registry import register_model, sha256_file

RUNNER = "landmarks68:dlib68"


def is_dlib_predictor(path: str | Path, runner: str | None = None) -> bool:
    """Whether `models add` should take the file as a dlib shape_predictor: a .dat file, or the runner."""
    return runner == RUNNER or (runner is None and Path(path).suffix.lower() == ".dat")


def add_dlib_predictor(
    db: Database,
    path: str | Path,
    kind: str,
    models_dir: str | Path,
    *,
    name: str | None = None,
    origin: str | None = None,
) -> int:
    """Check that the file is a complete 68-point dlib shape_predictor, then register it with its
    licence caveat, the runner and the maps of MTCNN's boxes and five points into dlib's detector
    convention."""
    if kind != "face_landmarks68":
        raise InvalidInput(f"{path}: a dlib shape predictor (.dat) annotates face_landmarks68, not {kind}")
    if not Path(path).is_file():
        raise InvalidInput(f"model file {path} does not exist")
    sp = get_predictor(path, sha256_file(path))
    if sp.num_parts != 68:
        raise InvalidInput(f"{path}: a shape predictor of {sp.num_parts} points; face_landmarks68 needs 68")
    params = {
        "runner": RUNNER,
        "box_map": BOX_MAP,
        "five_map": FIVE_MAP,
        "licence_caveat": LICENCE_CAVEAT,
        "cascade": {
            "levels": int(sp.idx1.shape[0]),
            "trees_per_level": int(sp.idx1.shape[1]),
            "depth": int(sp.idx1.shape[2] + 1).bit_length() - 1,
            "feature_pixels": int(sp.anchor.shape[1]),
        },
    }
    return register_model(
        db,
        path,
        kind,
        name=name or Path(path).stem,
        source="added",
        models_dir=models_dir,
        params=params,
        licence=LICENCE,
        origin=origin or ORIGIN,
    )
