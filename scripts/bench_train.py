"""Training speed of the crop68 landmark CNN (samples/s), CPU and CUDA in one go, on synthetic crops.

Each step is what `flask oiap train --kind face_landmarks68` does per batch: GPU/CPU batch augmentation
(affine grid sample, flip, colour), forward, NME loss, backward, AdamW step. Synthetic context crops and
points (random, same shapes as the real cache), so it needs no data set. CUDA is skipped where torch
sees no GPU.

    python scripts/bench_train.py                  # CPU (and CUDA when present), batch 64
    python scripts/bench_train.py --batch-size 256 --steps 50 --json
"""

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def bench(device: str, batch_size: int, steps: int, warmup: int, n: int = 512) -> dict:
    """Samples per second of train_loop-equivalent steps on one device."""
    import torch

    from app.training.data import CONTEXT_SIZE
    from app.training.landmarks import Crop68Net, augment, nme_loss

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    crops = (torch.rand(n, 3, CONTEXT_SIZE, CONTEXT_SIZE) * 255).to(device)
    base = torch.rand(68, 2) * 0.5 - 0.25
    points = (base + torch.randn(n, 68, 2) * 0.02).to(device)
    weights = torch.ones(n, device=device)
    net = Crop68Net().to(device).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)

    def step():
        idx = torch.randint(0, n, (batch_size,), generator=gen).to(device)
        x, y = augment(crops[idx], points[idx], gen, train=True)
        loss = nme_loss(net(x).view(-1, 68, 2), y, weights[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    float(loss.detach())  # waits for the last step
    sync()
    seconds = time.perf_counter() - t0
    return {
        "device": device,
        "name": torch.cuda.get_device_name(0)
        if device == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)",
        "batch_size": batch_size,
        "steps": steps,
        "seconds": round(seconds, 3),
        "samples_per_s": round(steps * batch_size / seconds, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per device")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--cuda-steps", type=int, default=None, help="timed steps on CUDA (default: 10x --steps)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import torch

    results = [bench("cpu", args.batch_size, args.steps, args.warmup)]
    if torch.cuda.is_available():
        results.append(bench("cuda", args.batch_size, args.cuda_steps or args.steps * 10, args.warmup * 5))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(
            f"{r['device']:<5} {r['name']:<28} batch {r['batch_size']:>4}: {r['samples_per_s']:>9.1f} samples/s "
            f"({r['steps']} steps in {r['seconds']} s)"
        )
    if len(results) == 2:
        print(f"cuda / cpu: {results[1]['samples_per_s'] / results[0]['samples_per_s']:.1f}x")


if __name__ == "__main__":
    main()
