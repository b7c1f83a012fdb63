"""Our 68-point landmark CNN in torch: net, augmentation, training loop, ONNX export.

The net sees an INPUT_SIZE crop (app/annotators/crop68.py) and outputs 136 numbers, x0 y0 x1 y1 ...
in [0, 1] of the crop. Augmentation runs on whole batches on the training device (affine_grid +
grid_sample over the cached context crops): scale, rotation, shift, horizontal flip (points renumbered
by FLIP_68), brightness/contrast/saturation. The loss is the NME itself (mean point distance over the
outer-eye-corner distance), weighted by each row's merge weight.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..annotators.crop68 import INPUT_SIZE, MEAN, STD
from ..kinds import FLIP_68
from .data import CONTEXT
from .loop import run_epochs


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """Conv (no bias), batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class Separable(nn.Module):
    """Depthwise 3x3 then pointwise 1x1 (MobileNet v1 block), residual when the shape is kept."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.dw = conv_bn(cin, cin, 3, stride, groups=cin)
        self.pw = conv_bn(cin, cout, 1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(self.dw(x))
        return x + y if self.residual else y


class Crop68Net(nn.Module):
    """NCHW normalised crop (N, 3, 96, 96) -> (N, 136) points in [0, 1] of the crop."""

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            conv_bn(3, w // 2, 3, 2),  # 48
            Separable(w // 2, w),
            Separable(w, 2 * w, 2),  # 24
            Separable(2 * w, 2 * w),
            Separable(2 * w, 4 * w, 2),  # 12
            Separable(4 * w, 4 * w),
            Separable(4 * w, 4 * w, 2),  # 6
            Separable(4 * w, 4 * w),
            conv_bn(4 * w, w, 1),
        )
        side = INPUT_SIZE // 16
        self.head = nn.Linear(w * side * side, 136)
        nn.init.normal_(self.head.weight, std=1e-3)
        nn.init.constant_(self.head.bias, 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.features(x), 1))

    def set_mean_shape(self, points01: np.ndarray) -> None:
        """Start the output at a mean shape (68, 2) in [0, 1] of the crop, so training starts close."""
        with torch.no_grad():
            self.head.bias.copy_(torch.as_tensor(np.asarray(points01, np.float32).reshape(-1)))


def nme_loss(pred: torch.Tensor, gt: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted mean NME of (N, 68, 2) predictions: point distance over the outer eye corners' distance."""
    iod = (gt[:, 36] - gt[:, 45]).norm(dim=1).clamp_min(1e-3)
    per_face = (pred - gt).norm(dim=2).mean(dim=1) / iod
    return (per_face * weight).sum() / weight.sum().clamp_min(1e-6)


FLIP = torch.tensor(FLIP_68)
HEAD_LR_SCALE = 0.05


def augment(
    crops: torch.Tensor, points: torch.Tensor, gen: torch.Generator | None, train: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Context crops (N, 3, S, S) float 0-255 and points (N, 68, 2) in [-1, 1] of the context ->
    normalised net input (N, 3, INPUT_SIZE, INPUT_SIZE) and points (N, 68, 2) in [0, 1] of the crop.

    Without train, the identity: the centre of the context at the net's crop size (as at run time)."""
    n, dev = crops.shape[0], crops.device

    def uniform(lo, hi, size=(n,)):
        return torch.rand(size, generator=gen).to(dev) * (hi - lo) + lo

    a = torch.eye(2, device=dev).repeat(n, 1, 1) / CONTEXT
    b = torch.zeros(n, 2, device=dev)
    flip = torch.zeros(n, dtype=torch.bool, device=dev)
    if train:
        s = uniform(0.9, 1.1)
        r = uniform(-math.radians(15), math.radians(15))
        cos, sin = torch.cos(r), torch.sin(r)
        rot = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
        a = a * s[:, None, None] @ rot
        flip = uniform(0, 1) < 0.5
        a[:, :, 0] = torch.where(flip[:, None], -a[:, :, 0], a[:, :, 0])
        b = uniform(-0.05, 0.05, (n, 2)) / CONTEXT
    theta = torch.cat([a, b[:, :, None]], 2)
    grid = F.affine_grid(theta, (n, 3, INPUT_SIZE, INPUT_SIZE), align_corners=False)
    x = F.grid_sample(crops, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # Points follow the inverse map: out = A^-1 (in - b).
    out = torch.linalg.solve(a[:, None], (points - b[:, None])[..., None])[..., 0]
    if train:
        out = torch.where(flip[:, None, None], out[:, FLIP.to(dev)], out)
        gray = x.mean(1, keepdim=True)
        sat = uniform(0.7, 1.3)[:, None, None, None]
        x = gray + (x - gray) * sat
        con = uniform(0.7, 1.3)[:, None, None, None]
        mean = x.mean((1, 2, 3), keepdim=True)
        x = mean + (x - mean) * con
        x = x * uniform(0.7, 1.3)[:, None, None, None]
        x = x.clamp(0, 255)
    x = (x / 255.0 - MEAN) / STD
    return x, (out + 1) / 2


def train_loop(
    net: Crop68Net,
    samples: dict,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    device: str,
    seed: int,
    on_step=None,
) -> list[float]:
    """Train in place; returns the loss per epoch (weighted NME on augmented batches)."""
    gen = torch.Generator().manual_seed(seed)
    crops = torch.from_numpy(samples["crops"]).permute(0, 3, 1, 2).float().to(device)
    points = torch.from_numpy(samples["points"]).to(device)
    weights = torch.from_numpy(samples["weights"]).to(device)
    n = len(crops)
    steps_per_epoch = max(1, math.ceil(n / batch_size))
    total = epochs * steps_per_epoch
    net.to(device).train()
    # The head maps ~1000 features to coordinates: at the trunk's rate, Adam's first steps alone would
    # move every output by a large part of the crop, so it learns HEAD_LR_SCALE times slower.
    head = list(net.head.parameters())
    trunk = [p for p in net.parameters() if all(p is not h for h in head)]
    opt = torch.optim.AdamW(
        [{"params": trunk, "lr": lr}, {"params": head, "lr": lr * HEAD_LR_SCALE}], lr=lr, weight_decay=1e-4
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[lr, lr * HEAD_LR_SCALE], total_steps=max(total, 1), pct_start=0.1
    )

    def batches():
        order = torch.randperm(n, generator=gen).to(device)
        for k in range(steps_per_epoch):
            yield order[k * batch_size : (k + 1) * batch_size]

    def batch_loss(idx):
        x, y = augment(crops[idx], points[idx], gen, train=True)
        pred = net(x).view(-1, 68, 2)
        return nme_loss(pred, y, weights[idx]), float(weights[idx].sum())

    curve = run_epochs(opt, sched, epochs, batches, batch_loss, on_step)
    recalibrate_bn(net, crops, points, batch_size)
    net.eval()
    return curve


@torch.no_grad()
def recalibrate_bn(net: nn.Module, crops: torch.Tensor, points: torch.Tensor, batch_size: int) -> None:
    """Recompute batch-norm statistics as exact averages over the un-augmented training crops: after a
    short training the running averages still remember their initial values, and eval mode would be
    far off what training measured."""
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    net.train()
    for k in range(0, len(crops), batch_size):
        x, _ = augment(crops[k : k + batch_size], points[k : k + batch_size], None, train=False)
        net(x)
    for m in bns:
        m.momentum = 0.1


def mean_shape01(samples: dict) -> np.ndarray:
    """The mean of the training points in [0, 1] of the net's crop (the identity augmentation)."""
    return (samples["points"].mean(0) * CONTEXT + 1) / 2
