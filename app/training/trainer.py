"""`flask oiap train`: training data from the merge rules, torch training, ONNX export with a parity check,
and a candidate model row (source 'trained', parent_id) whose params say how it was made.

params of a trained row: runner (which annotator runs it), arch, training (sha256 of the rows as
streamed, rows, samples, splits), hyper (epochs, batch size, lr, seed, device, warm start), loss_curve
(per epoch), onnx_parity, checkpoint (the torch state dict beside the ONNX file, by sha256; warm
starts read it) and run_id. The job is a `runs` row (command 'train').
"""

from collections.abc import Mapping

import torch
from sqlite_utils import Database

from ..annotators import crop68
from ..db import immediate
from ..errors import InvalidInput
from ..export.merge import DEFAULT_UNRATED_WEIGHT
from ..models.registry import active_model, get_model
from ..runs import finish_run, start_run
from . import data
from .landmarks import Crop68Net, mean_shape01, train_loop
from .loop import counting, fit, register_trained, warm_start

KINDS = ("face_landmarks68", "face_box", "object_box", "object_mask")
# face_landmarks68 trainers: a ridge-fitted head on the default mesh (app/training/meshhead.py), or the
# older small CNN from scratch (crop68), which never beat the mesh on the dev faces.
LANDMARK_ARCHS = ("meshhead68", "crop68")
DEFAULTS = {
    "face_landmarks68": {"epochs": 30, "batch_size": 32, "lr": 3e-3},
    "face_box": {"epochs": 5, "batch_size": 64, "lr": 1e-4},
    "object_box": {"epochs": 20, "batch_size": 16, "lr": 1e-3},
    # A few photos' masks (app/training/masks.py draws each row REPEATS times per epoch).
    "object_mask": {"epochs": 30, "batch_size": 16, "lr": 2e-3},
}


def resolve_device(device: str) -> str:
    """'cpu' or 'cuda'; cuda refused with a clear message when torch sees no GPU."""
    if device not in ("cpu", "cuda"):
        raise InvalidInput(f"--device {device!r}: use cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise InvalidInput(
            "--device cuda: torch sees no CUDA device here (torch.cuda.is_available() is False)"
        )
    return device


def train(
    db: Database,
    config: Mapping,
    kind: str,
    *,
    epochs: int | None = None,
    from_model: int | None = None,
    device: str = "cpu",
    seed: int = 0,
    batch_size: int | None = None,
    lr: float | None = None,
    include_unrated: bool = True,
    unrated_weight: float = DEFAULT_UNRATED_WEIGHT,
    arch: str = LANDMARK_ARCHS[0],
    progress: bool = True,
) -> dict:
    """Train a candidate model of a kind and register it; returns {model_id, run_id, ...}.

    unrated_weight: the loss weight of unrated machine rows (human and good rows weigh 1); arch: which
    face_landmarks68 trainer (LANDMARK_ARCHS)."""
    if kind not in KINDS:
        raise InvalidInput(f"train does {', '.join(KINDS)}, not {kind!r}")
    if arch not in LANDMARK_ARCHS:
        raise InvalidInput(f"--arch {arch!r}: use one of {', '.join(LANDMARK_ARCHS)}")
    if not 0 <= unrated_weight <= 1:
        raise InvalidInput(f"--unrated-weight {unrated_weight}: use a weight between 0 and 1")
    device = resolve_device(device)
    d = DEFAULTS[kind]
    hyper = {
        "epochs": epochs if epochs is not None else d["epochs"],
        "batch_size": batch_size or d["batch_size"],
        "lr": lr or d["lr"],
        "seed": seed,
        "device": device,
        "include_unrated": include_unrated,
        "unrated_weight": unrated_weight,
    }
    if hyper["epochs"] < 1 or hyper["batch_size"] < 1 or hyper["lr"] <= 0:
        raise InvalidInput("--epochs and --batch-size must be at least 1, --lr above 0")
    parent = get_model(db, from_model) if from_model is not None else active_model(db, kind)
    if parent is not None and parent["kind"] != kind:
        raise InvalidInput(f"--from {parent['id']} is a {parent['kind']} model, not {kind}")
    run_id = start_run(db, "train", {"kind": kind, **hyper, "from": parent["id"] if parent else None})
    try:
        torch.manual_seed(seed)
        if kind == "face_landmarks68" and arch == "meshhead68":
            from .meshhead import train_meshhead

            result = train_meshhead(db, config, run_id, parent, hyper, progress)
        elif kind == "face_landmarks68":
            result = _train_landmarks(db, config, run_id, parent, hyper, progress)
        elif kind == "object_box":
            from .ssd import train_ssd

            result = train_ssd(db, config, run_id, parent, hyper, progress)
        elif kind == "object_mask":
            from .masks import train_masks

            result = train_masks(db, config, run_id, parent, hyper, progress)
        else:
            from .boxes import train_boxes

            result = train_boxes(db, config, run_id, parent, hyper, progress)
    except BaseException as e:
        finish_run(db, run_id, "failed", f"{type(e).__name__}: {e}")
        raise
    with immediate(db):
        db.execute(
            "UPDATE runs SET model_id = ?, progress = ?, total = ? WHERE id = ?",
            [result["model_id"], hyper["epochs"], hyper["epochs"], run_id],
        )
    finish_run(db, run_id, "done")
    return result | {"run_id": run_id}


def _train_landmarks(db, config, run_id, parent, hyper, progress) -> dict:
    with counting("loading face crops", "face", progress) as loaded:
        samples = data.landmark_samples(
            db,
            config,
            ("train",),
            hyper["include_unrated"],
            progress=loaded,
            unrated_weight=hyper["unrated_weight"],
        )
    n = len(samples["crops"])
    if n == 0:
        raise InvalidInput(
            "no face_landmarks68 training rows in the train split (human or machine not rated bad); "
            "label some faces first"
        )
    net = Crop68Net()
    warm = warm_start(net, parent, crop68.ARCH)
    if warm is None:
        net.set_mean_shape(mean_shape01(samples))
    steps = hyper["epochs"] * -(-n // hyper["batch_size"])
    curve = fit(train_loop, net, samples, hyper, steps, "train face_landmarks68", progress)
    params = {
        "runner": "landmarks68:crop68",
        "annotator": "crop68",
        "arch": crop68.ARCH,
        "input_size": crop68.INPUT_SIZE,
        "crop_expand": crop68.CROP_EXPAND,
    }
    return register_trained(
        db,
        config,
        net,
        kind="face_landmarks68",
        stem="crop68",
        run_id=run_id,
        parent=parent,
        example_shape=(2, 3, crop68.INPUT_SIZE, crop68.INPUT_SIZE),
        output_names=["landmarks"],
        params=params,
        data=samples,
        samples=n,
        hyper=hyper,
        warm=warm,
        curve=curve,
    )
