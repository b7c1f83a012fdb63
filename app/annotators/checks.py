"""Checks of a model file before it is registered: it loads in onnxruntime, and its runner runs it.

`flask oiap models add` once accepted any file with a hash; the first try of it on the model page
then failed with a 500 inside onnxruntime. Now a file must load, and when a runner is named, the
runner must turn one blank image and one box into what its kind promises (68 finite points for
face_landmarks68), so wrong inputs or outputs are found at `models add`, with the model's own
input and output names and shapes in the message.
"""

from pathlib import Path

import numpy as np

from ..errors import InvalidInput

# onnxruntime's errors (Fail, InvalidArgument, InvalidGraph, ...) derive from Exception alone, and a
# runner fed a wrong graph may fail with any of IndexError, ValueError, KeyError: a check catches all.
CHECK_ERRORS = (Exception,)


def _signature(session) -> str:
    ins = ", ".join(f"{i.name} {i.shape} {i.type}" for i in session.get_inputs())
    outs = ", ".join(f"{o.name} {o.shape} {o.type}" for o in session.get_outputs())
    return f"inputs: {ins or 'none'}; outputs: {outs or 'none'}"


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__


def load_session(path: str | Path):
    """An onnxruntime session of the file; InvalidInput when onnxruntime cannot load it."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except CHECK_ERRORS as e:
        raise InvalidInput(
            f"{path} is not an ONNX model onnxruntime can load ({_first_line(e)}); "
            "export it again (scripts/export_*.py) and check it with onnx.checker"
        ) from None


def _landmarks68(name: str, path: Path):
    from .landmarks68 import NAMES, TRAINED_NAMES

    if name not in NAMES + TRAINED_NAMES:
        raise InvalidInput(
            f"unknown runner landmarks68:{name}; use one of "
            + ", ".join(f"landmarks68:{n}" for n in NAMES + TRAINED_NAMES)
        )
    # Built here, not through get_landmarks68: its per-process cache must not keep a file that fails.
    if name == "crop68":
        from .crop68 import Crop68

        return Crop68(path)
    if name == "facemesh68":
        from .facemesh68 import FaceMeshLandmarks68

        return FaceMeshLandmarks68(path)
    from .template68 import TemplateLandmarks68

    return TemplateLandmarks68()


def check_model_file(
    path: str | Path, kind: str, runner: str | None, decoder: str | Path | None = None
) -> str:
    """Load the file and run its runner once; returns its signature, InvalidInput says what is wrong.

    `decoder`: the second file of a two-file object_mask model (runner mask:sam).
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"model file {path} does not exist")
    session = load_session(path)
    signature = _signature(session)
    if decoder is not None and runner != "mask:sam":
        raise InvalidInput("--decoder is for --runner mask:sam (a SAM-family encoder/decoder pair)")
    if runner is None:
        return signature
    if runner.startswith("mask:"):
        return _check_mask_model(path, kind, runner, decoder, signature)
    if runner == "mtcnn":
        raise InvalidInput("the mtcnn runner needs three files (pnet, rnet, onet); one file cannot use it")
    if not runner.startswith("landmarks68:"):
        raise InvalidInput(f"unknown runner {runner!r}; use landmarks68:<name> for a face_landmarks68 model")
    if kind != "face_landmarks68":
        raise InvalidInput(f"runner {runner} annotates face_landmarks68, not {kind}")
    annotator = _landmarks68(runner.split(":", 1)[1], path)
    img = np.full((128, 128, 3), 128, dtype=np.uint8)
    try:
        out = annotator.predict_many(img, [np.array([32.0, 32.0, 96.0, 96.0])])
        points = np.asarray(out[0], dtype=np.float64)
    except CHECK_ERRORS as e:
        raise InvalidInput(
            f"{path} does not run with runner {runner} ({_first_line(e)}); the file has {signature}"
        ) from None
    if len(out) != 1 or points.shape != (68, 2) or not np.isfinite(points).all():
        raise InvalidInput(
            f"{path} with runner {runner} gave {points.shape} values for one face, not 68 finite "
            f"points; the file has {signature}"
        )
    return signature


def _check_mask_model(path: Path, kind: str, runner: str, decoder: str | Path | None, signature: str) -> str:
    # Only a user's pair is added (the builtin rows come with the code): it must turn one photo-sized
    # image and one box into one mask of the image's size.
    if kind != "object_mask":
        raise InvalidInput(f"runner {runner} annotates object_mask, not {kind}")
    if runner != "mask:sam":
        raise InvalidInput(
            f"unknown runner {runner!r} for an added file; use mask:sam with --decoder DECODER.onnx"
        )
    if decoder is None or not Path(decoder).is_file():
        raise InvalidInput(
            f"runner mask:sam needs --decoder DECODER.onnx (the pair's mask decoder); got {decoder}"
        )
    dec_signature = _signature(load_session(decoder))
    from .sam_masks import PromptedMasks

    img = np.full((96, 128, 3), 128, dtype=np.uint8)
    try:
        masks = PromptedMasks(path, decoder).predict_many(img, [np.array([32.0, 24.0, 96.0, 72.0])])
    except CHECK_ERRORS as e:
        raise InvalidInput(
            f"{path} + {decoder} do not run as a SAM-family pair ({_first_line(e)}); encoder {signature}; "
            f"decoder {dec_signature}"
        ) from None
    if len(masks) != 1 or masks[0].shape != (96, 128):
        raise InvalidInput(f"{path} + {decoder} gave no mask of the image's size; decoder {dec_signature}")
    return f"encoder {signature}; decoder {dec_signature}"
