"""What a torch trainer of `flask oiap train` does around its own net and data, written once: the progress
bars, the warm start from a parent's checkpoint, the epoch loop (a weighted mean loss per epoch) and the
end (ONNX export with its parity check, the checkpoint beside it, the candidate's model row).

Used by the crop68 landmark trainer (app/training/trainer.py) and the mask net's (app/training/masks.py);
each keeps its net, its samples, its optimiser and what one batch's loss is.
"""

import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch
from sqlite_utils import Database
from tqdm import tqdm

from ..models.registry import register_model, store_file, verified_path
from .onnx_export import export_checked


def load_checkpoint(model: dict) -> dict | None:
    """The torch state dict of one of our trained models (hash verified), or None for other models."""
    ckpt = (model.get("params") or {}).get("checkpoint")
    if not ckpt:
        return None
    path = verified_path({"id": model["id"], "name": f"{model['name']} (checkpoint)", **ckpt})
    return torch.load(path, map_location="cpu", weights_only=True)


def warm_start(net: torch.nn.Module, parent: dict | None, arch: str) -> int | None:
    """Load the parent's checkpoint into net when the parent is one of our trained models of this arch;
    returns the parent's id then, else None (the net keeps its fresh weights)."""
    if parent is None or (parent.get("params") or {}).get("arch") != arch:
        return None
    state = load_checkpoint(parent)
    if state is None:
        return None
    net.load_state_dict(state)
    return parent["id"]


@contextmanager
def counting(desc: str, unit: str, progress: bool) -> Iterator[Callable[[int], None]]:
    """A bar while samples load; yields progress(n), n the count so far."""
    bar = tqdm(desc=desc, unit=unit, disable=not progress)
    try:
        yield lambda n: bar.update(n - bar.n)
    finally:
        bar.close()


@contextmanager
def stepping(steps: int, desc: str, progress: bool) -> Iterator[Callable[[float], None]]:
    """A bar over the training steps; yields on_step(loss)."""
    bar = tqdm(total=steps, desc=desc, unit="step", disable=not progress)

    def on_step(loss: float) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}")

    try:
        yield on_step
    finally:
        bar.close()


def fit(
    train_loop: Callable, net: torch.nn.Module, samples, hyper: dict, steps: int, desc: str, progress: bool
):
    """train_loop(net, samples, ...) with the run's epochs, batch size, lr, device and seed, under a step
    bar; returns its loss curve."""
    with stepping(steps, desc, progress) as on_step:
        return train_loop(
            net,
            samples,
            epochs=hyper["epochs"],
            batch_size=hyper["batch_size"],
            lr=hyper["lr"],
            device=hyper["device"],
            seed=hyper["seed"],
            on_step=on_step,
        )


def run_epochs(
    opt: torch.optim.Optimizer,
    sched,
    epochs: int,
    batches: Callable[[], Iterable],
    batch_loss: Callable[[object], tuple[torch.Tensor, float]],
    on_step: Callable[[float], None] | None = None,
) -> list[float]:
    """The epoch loop: each epoch takes batches() (drawn anew, so a shuffle happens per epoch), and for
    each batch batch_loss(batch) -> (loss, its weight), one optimiser and scheduler step; returns the
    weight-averaged loss of each epoch."""
    curve = []
    for _ in range(epochs):
        total = weight_sum = 0.0
        for batch in batches():
            loss, weight = batch_loss(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            value = float(loss.detach())
            total += value * weight
            weight_sum += weight
            if on_step:
                on_step(value)
        curve.append(total / max(weight_sum, 1e-9))
    return curve


def register_trained(
    db: Database,
    config: Mapping,
    net: torch.nn.Module,
    *,
    kind: str,
    stem: str,
    run_id: int,
    parent: dict | None,
    example_shape: tuple[int, ...],
    output_names: list[str],
    params: dict,
    data: dict,
    samples: int,
    hyper: dict,
    warm: int | None,
    curve: list[float],
    atol: float = 1e-5,
) -> dict:
    """Export net to ONNX (parity checked), keep its state dict beside it and register it as a candidate
    of the kind, named `<stem>-run<run_id>`; params: the runner's own, to which this adds training (data:
    the rows' sha256, rows, skipped), hyper (with warm_start_from), loss_curve, onnx_parity, checkpoint
    and run_id. Returns {model_id, samples, loss_curve, warm_start_from}."""
    models_dir = config["MODELS_DIR"]
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / f"{stem}.onnx"
        parity = export_checked(net, example_shape, onnx_path, output_names, atol=atol)
        ckpt_path = Path(tmp) / f"{stem}.pt"
        torch.save(net.state_dict(), ckpt_path)
        params = params | {
            "training": {
                "sha256": data["sha256"],
                "rows": data["rows"],
                "samples": samples,
                "skipped": len(data["skipped"]),
                "splits": ["train"],
            },
            "hyper": hyper | {"warm_start_from": warm},
            "loss_curve": [round(v, 6) for v in curve],
            "onnx_parity": parity,
            "checkpoint": store_file(ckpt_path, models_dir),
            "run_id": run_id,
        }
        model_id = register_model(
            db,
            onnx_path,
            kind,
            name=f"{stem}-run{run_id}",
            source="trained",
            models_dir=models_dir,
            params=params,
            parent_id=parent["id"] if parent else None,
            licence="trained on this instance's labels",
            origin=f"flask oiap train --kind {kind} (run {run_id})",
        )
    return {"model_id": model_id, "samples": samples, "loss_curve": curve, "warm_start_from": warm}
