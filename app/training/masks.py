"""object_mask: train a small U-Net box -> mask net on the merged mask rows, export it, register a candidate.

Each training row (merge rules, with its weight; weight 0 dropped) is a box and its mask on the file's
grid. A sample is the box's crop as app/annotators/mask_net.py cuts it (MARGIN around the box, stretched
to INPUT_SIZE), augmented each time it is drawn: the box's sides moved by up to JITTER of its size (so
a reviewer's or detector's loose box still gives the object), a horizontal flip, brightness and
contrast. The target is the row's mask cut by the same map and clipped to the (jittered) box.

The net refines the builtin mask row's masks (the prior, app/models/mask_models.py: the selfie segmenter
on people, the SLIC cut on others), computed once per row on its box: its fourth input channel. The
logits are PRIOR * (2 * that channel) plus the net's correction, whose last layer starts at zero: an
untrained net answers the prior's mask, so training starts from the builtin and what it learns is where
the builtin is wrong. A U-Net from scratch on RGB alone (its prior the filled box) overfitted the five
training masks of tests/data/person_masks.json: 0.80 mean IoU on them, 0.54 on the testing photos,
below the filled boxes' 0.64. Loss: weighted binary cross-entropy + soft Dice per sample.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..annotations import masks
from ..annotators.mask_net import ARCH, INPUT_SIZE, MARGIN, crop_affine, crop_input
from ..errors import InvalidInput, NotFound
from ..images.decode import BadImage
from ..models.registry import get_model
from .data import RowHasher, image_groups, row_rgb
from .loop import counting, fit, register_trained, run_epochs, warm_start

KIND = "object_mask"
PRIOR = 2.0
JITTER = 0.08
REPEATS = 8  # augmented draws of each row per epoch: a few photos give enough steps to learn from


class MaskNet(nn.Module):
    """A three-level U-Net on a 4 x S x S crop (RGB, prior mask); logits = the prior's + a correction."""

    def __init__(self, widths=(8, 16, 32)):
        super().__init__()
        w1, w2, w3 = widths

        def block(i, o):
            return nn.Sequential(
                nn.Conv2d(i, o, 3, padding=1), nn.ReLU(), nn.Conv2d(o, o, 3, padding=1), nn.ReLU()
            )

        self.enc1, self.enc2, self.enc3 = block(4, w1), block(w1, w2), block(w2, w3)
        self.dec2, self.dec1 = block(w3 + w2, w2), block(w2 + w1, w1)
        self.head = nn.Conv2d(w1, 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([F.interpolate(e3, scale_factor=2.0, mode="nearest"), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2.0, mode="nearest"), e1], 1))
        return 2 * PRIOR * x[:, 3:4] + self.head(d1)


def mask_rows(db, config, prior, include_unrated: bool, unrated_weight: float, progress=None) -> dict:
    """The train split's object_mask rows with a box and a mask: per row (rgb, box px, mask, weight, the
    prior's mask on the box); the rows' sha256 and count; the rows skipped (no file, no box or mask,
    weight 0)."""
    hasher = RowHasher()
    samples, skipped = [], []
    for group in image_groups(db, ("train",), include_unrated, unrated_weight, hasher, kind=KIND):
        usable = [r for r in group if r.mask is not None and r.box is not None and r.weight > 0]
        skipped += [
            {"annotation_id": r.annotation_id, "reason": "no mask, no box or weight 0"}
            for r in group
            if r not in usable
        ]
        if not usable:
            continue
        try:
            rgb = row_rgb(config, group[0])
        except (NotFound, InvalidInput, BadImage) as e:
            skipped += [{"annotation_id": r.annotation_id, "reason": str(e)} for r in usable]
            continue
        h, w = rgb.shape[:2]
        boxes = [np.array(r.box) * [w, h, w, h] for r in usable]
        priors = prior.predict_many(rgb, boxes, [r.label for r in usable])
        for r, box, p in zip(usable, boxes, priors, strict=True):
            m = masks.decode(r.mask)
            if m.shape != (h, w):
                skipped.append(
                    {"annotation_id": r.annotation_id, "reason": f"mask {m.shape} on a {h}x{w} image"}
                )
                continue
            samples.append((rgb, box, m.astype(np.float32), float(r.weight), p))
        if progress:
            progress(len(samples))
    return {"samples": samples, "sha256": hasher.hexdigest(), "rows": hasher.rows, "skipped": skipped}


def draw(sample, rng: np.random.Generator, augment: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One (input (3, S, S), target (S, S)) of a row, jittered, flipped and recoloured when augment."""
    import cv2

    rgb, box, mask, _, prior = sample
    box = box.copy()
    if augment:
        bw, bh = box[2] - box[0], box[3] - box[1]
        box += rng.uniform(-JITTER, JITTER, 4) * [bw, bh, bw, bh]
    m = crop_affine(box)
    # The prior's mask stays the one of the row's box (running it per draw would cost more than the step).
    x = crop_input(rgb, prior, m)
    # What sticks out of the (jittered) box is not asked of the net: the annotator cuts it off anyway.
    inbox = np.zeros_like(mask)
    h, w = mask.shape
    ix0, iy0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    ix1, iy1 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    inbox[iy0:iy1, ix0:ix1] = 1.0
    y = cv2.warpAffine(mask * inbox, m, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR, borderValue=0.0)
    if augment:
        if rng.random() < 0.5:
            x, y = x[:, :, ::-1], y[:, ::-1]
        x = x.copy()
        x[:3] = (x[:3] + 0.5) * rng.uniform(0.75, 1.25) + rng.uniform(-0.1, 0.1) - 0.5
    return np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(y, dtype=np.float32)


def loss_fn(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted mean over samples of binary cross-entropy + (1 - soft Dice)."""
    logits, target = logits[:, 0], target
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean((1, 2))
    p = torch.sigmoid(logits)
    dice = 1 - (2 * (p * target).sum((1, 2)) + 1) / (p.sum((1, 2)) + target.sum((1, 2)) + 1)
    return ((bce + dice) * weight).sum() / weight.sum()


def train_loop(net, samples, *, epochs, batch_size, lr, device, seed, on_step=None) -> list[float]:
    """Adam with cosine decay; returns the weighted mean loss per epoch."""
    rng = np.random.default_rng(seed)
    net = net.to(device).train()
    n = len(samples) * REPEATS
    steps = epochs * -(-n // batch_size)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))

    def batches():
        order = rng.permutation(n) % len(samples)
        for i in range(0, n, batch_size):
            yield [samples[j] for j in order[i : i + batch_size]]

    def batch_loss(batch):
        xs, ys = zip(*(draw(s, rng) for s in batch), strict=True)
        x = torch.from_numpy(np.stack(xs)).to(device)
        y = torch.from_numpy(np.stack(ys)).to(device)
        w = torch.tensor([s[3] for s in batch], dtype=torch.float32, device=device)
        return loss_fn(net(x), y, w), float(w.sum())

    return run_epochs(opt, sched, epochs, batches, batch_loss, on_step)


def train_masks(db, config, run_id, parent, hyper, progress) -> dict:
    """Train a mask net on the train split's object_mask rows and register it as a candidate."""
    from ..models.builtin import verified_files
    from ..models.mask_models import ensure_mask_models, load_mask_annotator

    base = get_model(db, ensure_mask_models(db)["builtin-masks"])
    prior = load_mask_annotator(base, verified_files(base))
    with counting("loading masks", "mask", progress) as loaded:
        data = mask_rows(
            db, config, prior, hyper["include_unrated"], hyper["unrated_weight"], progress=loaded
        )
    samples = data["samples"]
    if not samples:
        raise InvalidInput(
            "no object_mask training rows in the train split (human masks, or machine ones not rated bad, "
            "with a weight above 0); label or rate some masks first"
        )
    net = MaskNet()
    warm = warm_start(net, parent, ARCH)
    steps = hyper["epochs"] * -(-len(samples) * REPEATS // hyper["batch_size"])
    curve = fit(train_loop, net, samples, hyper, steps, "train object_mask", progress)
    params = {
        "runner": "mask:trained",
        "arch": ARCH,
        "input_size": INPUT_SIZE,
        "margin": MARGIN,
        # The prior the net refines: the builtin row's runner and file (verified when loaded).
        "prior": {"id": base["id"], "name": base["name"], "runner": base["params"]["runner"]}
        | {"person_classes": base["params"].get("person_classes")},
        "files": {"prior": {"path": base["path"], "sha256": base["sha256"]}},
    }
    return register_trained(
        db,
        config,
        net,
        kind=KIND,
        stem="masknet",
        run_id=run_id,
        parent=parent,
        example_shape=(2, 4, INPUT_SIZE, INPUT_SIZE),
        output_names=["logits"],
        params=params,
        data=data,
        samples=len(samples),
        hyper=hyper | {"repeats": REPEATS, "jitter": JITTER},
        warm=warm,
        curve=curve,
        atol=1e-4,
    )
