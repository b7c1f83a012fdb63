"""Time one training step of the object_box trainer's SSD heads (app/training/ssd.py) on CPU.

The heads are built from the committed Objectron file; the features are random tensors of the six
feature maps' shapes (the step's cost does not depend on their values), the targets 20 positive anchors
a sample. Prints wall and CPU time per step after 3 warm-up steps.

    python scripts/bench_ssd_heads.py                 # batch 16 (the trainer's default), 10 steps
    python scripts/bench_ssd_heads.py --batch 64 --steps 5
"""

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    """Build the heads, run warm-up and timed steps, print the figures."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=10)
    args = p.parse_args(argv)

    import onnx
    import torch

    from app.annotators import objectron
    from app.training.ssd import find_heads, heads_from_onnx, ssd_loss

    torch.manual_seed(0)
    model = onnx.load(str(objectron.MODEL_PATH))
    labels = objectron.model_labels(objectron.MODEL_PATH)
    net, _ = heads_from_onnx(model, labels, labels)
    info = {v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    shapes = [
        [d.dim_value for d in info[h["feature"]].type.tensor_type.shape.dim][1:] for h in find_heads(model)
    ]
    b = args.batch
    feats = [torch.randn(b, *s) for s in shapes]
    cls = torch.zeros(b, objectron.NUM_ANCHORS, dtype=torch.long)
    cls[:, :20] = 4
    enc = torch.zeros(b, objectron.NUM_ANCHORS, 4)
    wt = torch.ones(b, objectron.NUM_ANCHORS)
    mask = torch.ones(b, len(labels), dtype=torch.bool)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for i in range(3 + args.steps):
        if i == 3:
            wall, cpu = time.perf_counter(), time.process_time()
        box, logits = net(feats)
        loss = ssd_loss(box, logits, cls, enc, wt, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
    wall, cpu = (time.perf_counter() - wall) / args.steps, (time.process_time() - cpu) / args.steps
    print(
        f"batch {b}: {1000 * wall:.0f} ms wall, {1000 * cpu:.0f} ms CPU a step "
        f"({torch.get_num_threads()} torch threads; feature maps {shapes})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
