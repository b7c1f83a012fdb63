"""face_box: fine-tune MTCNN's RNet and ONet on the good boxes, with hard negatives from boxes rated bad.

Samples per training image, cut exactly as the detector cuts them at run time (mtcnn.crop_bounds and
area_crops: square boxes, area resize, the same normalisation):
- positives: each ground-truth box (merge rules, weights honoured), squared and jittered, IoU >= 0.65,
  with regression targets in MTCNN's units ((gt - box) / (box size + 1));
- part faces: jittered to 0.4 <= IoU < 0.65: regression only;
- hard negatives: machine face boxes rated bad on training images (IoU < 0.3 with every good box);
- random negatives: squares with IoU < 0.3 with every good box.
ONet's five-point head has no labels here: it is kept near its parent's answers (distillation) so the
points bulk-annotate derives from it do not drift. PNet is kept as it is.
The parent's weights are read back from its ONNX files (initializer names are the state dict's).
"""

import copy
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..annotations.geometry import box_iou
from ..annotators import mtcnn
from ..errors import InvalidInput, NotFound
from ..export.merge import DEFAULT_UNRATED_WEIGHT, iter_training_rows
from ..images.decode import BadImage, load_rgb
from ..images.layout import image_path
from ..models.builtin import verified_files
from ..models.registry import register_model
from .data import RowHasher
from .mtcnn_nets import NETS
from .onnx_export import export_checked, onnx_state_dict

ARCH = "mtcnn-finetune-v1"
SIZES = {"rnet": 24, "onet": 48}
OUTPUTS = {"rnet": ["reg", "prob"], "onet": ["reg", "landmarks", "prob"]}
POS_IOU, PART_IOU, NEG_IOU = 0.65, 0.4, 0.3
PER_FACE = {"pos": 4, "part": 2}
RANDOM_NEG_PER_IMAGE = 8


def load_onnx_weights(name: str, path: str | Path) -> torch.nn.Module:
    """A torch net with the weights of an exported ONNX file (onnx_export.onnx_state_dict)."""
    import onnx

    net = NETS[name]()
    net.load_state_dict(
        onnx_state_dict(onnx.load(str(path)), net.state_dict(), f"{path} ({name})"), strict=True
    )
    return net


def _square(b: np.ndarray) -> np.ndarray:
    return mtcnn.rerec(np.asarray(b, dtype=np.float64).reshape(-1, 4))


def _jitter(gt: np.ndarray, rng, n: int, lo: float, hi: float, tries: int = 60) -> list[np.ndarray]:
    """Up to n squares around a gt box (pixels) whose IoU with it lies in [lo, hi)."""
    x0, y0, x1, y1 = gt
    w, h = x1 - x0, y1 - y0
    out = []
    for _ in range(tries):
        side = max(w, h) * rng.uniform(0.8, 1.25)
        cx = (x0 + x1) / 2 + rng.uniform(-0.2, 0.2) * w
        cy = (y0 + y1) / 2 + rng.uniform(-0.2, 0.2) * h
        box = np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])
        iou = box_iou(box, gt)[0, 0]
        if lo <= iou < hi:
            out.append(box)
            if len(out) == n:
                break
    return out


def _reg_target(box: np.ndarray, gt: np.ndarray) -> np.ndarray:
    w = box[2] - box[0] + 1
    h = box[3] - box[1] + 1
    return (gt - box) / np.array([w, h, w, h])


def box_samples(
    db, config, splits=("train",), include_unrated=True, seed=0, unrated_weight=DEFAULT_UNRATED_WEIGHT
) -> dict:
    """Boxes to cut per image: crops for both nets, labels (1 face, 0 not, -1 part), regression targets,
    weights (each face's samples carry its row's merge weight; negatives weigh 1); with the rows' sha256
    and counts per sample type."""
    rng = np.random.default_rng(seed)
    hasher = RowHasher()
    by_image: dict[str, list] = {}
    meta: dict[str, dict] = {}
    rows = iter_training_rows(
        db, "face_box", splits, include_unrated=include_unrated, unrated_weight=unrated_weight
    )
    for r in rows:
        hasher.add(r)
        # A row of weight 0 adds nothing to the loss; cutting its samples anyway would still change the
        # random draws, the batches and its image's random negatives: dropped here, it trains exactly
        # the model that leaving it out trains.
        if r.box is not None and r.weight > 0:
            by_image.setdefault(r.image_id, []).append(r)
            meta[r.image_id] = {"id": r.image_id, "split": r.split, "path": r.path}
    marks = ",".join("?" * len(splits))
    bad: dict[str, list] = {}
    for image_id, x0, y0, x1, y1 in db.execute(
        "SELECT a.image_id, a.x0, a.y0, a.x1, a.y1 FROM annotations a JOIN images i ON i.id = a.image_id"
        f" WHERE a.kind = 'face_box' AND a.rating = 'bad' AND a.deleted = 0 AND i.split IN ({marks})"
        " AND a.x0 IS NOT NULL ORDER BY a.image_id, a.id",
        list(splits),
    ):
        bad.setdefault(image_id, []).append((x0, y0, x1, y1))
    for image_id in bad:
        if image_id not in meta:
            row = db.execute("SELECT split, path FROM images WHERE id = ?", [image_id]).fetchone()
            meta[image_id] = {"id": image_id, "split": row[0], "path": row[1]}
    crops = {"rnet": [], "onet": []}
    labels, regs, weights = [], [], []
    counts = {"pos": 0, "part": 0, "hard_neg": 0, "random_neg": 0, "images": 0, "skipped_images": 0}
    for image_id in sorted(meta):
        try:
            img = load_rgb(image_path(config, meta[image_id]))
        except (NotFound, InvalidInput, BadImage):
            counts["skipped_images"] += 1
            continue
        counts["images"] += 1
        h, w = img.shape[:2]
        scale = np.array([w, h, w, h], dtype=np.float64)
        rows = by_image.get(image_id, [])
        gts = np.array([np.array(r.box) * scale for r in rows]).reshape(-1, 4)
        boxes, lab, reg, wt = [], [], [], []
        for r, gt in zip(rows, gts, strict=True):
            for kind, lo, hi in (("pos", POS_IOU, 1.01), ("part", PART_IOU, POS_IOU)):
                for b in _jitter(gt, rng, PER_FACE[kind], lo, hi):
                    boxes.append(b)
                    lab.append(1 if kind == "pos" else -1)
                    reg.append(_reg_target(b, gt))
                    wt.append(r.weight)
                    counts[kind] += 1

        def is_negative(b, gts=gts):
            return len(gts) == 0 or box_iou(b, gts).max() < NEG_IOU

        for b in bad.get(image_id, []):
            sq = _square(np.array(b) * scale)[0]
            if is_negative(sq):
                boxes.append(sq)
                lab.append(0)
                reg.append(np.zeros(4))
                wt.append(1.0)
                counts["hard_neg"] += 1
        made = 0
        for _ in range(RANDOM_NEG_PER_IMAGE * 10):
            if made == RANDOM_NEG_PER_IMAGE:
                break
            side = rng.uniform(24, max(25, min(w, h) / 2))
            x0, y0 = rng.uniform(0, w - side), rng.uniform(0, h - side)
            b = np.array([x0, y0, x0 + side, y0 + side])
            if is_negative(b):
                boxes.append(b)
                lab.append(0)
                reg.append(np.zeros(4))
                wt.append(1.0)
                made += 1
        counts["random_neg"] += made
        if not boxes:
            continue
        b = np.array(boxes)
        y0, y1, x0, x1, valid = mtcnn.crop_bounds(b, np.array([[h, w]] * len(b)))
        ii = mtcnn.integral(img)
        keep = np.flatnonzero(valid)
        for net, size in SIZES.items():
            crops[net].append(area_or_empty(ii, y0[keep], y1[keep], x0[keep], x1[keep], size))
        labels += [lab[k] for k in keep]
        regs += [reg[k] for k in keep]
        weights += [wt[k] for k in keep]
    n = len(labels)
    return {
        "crops": {
            k: np.concatenate(v) if v else np.zeros((0, 3, SIZES[k], SIZES[k]), np.float32)
            for k, v in crops.items()
        },
        "labels": np.array(labels, dtype=np.int64),
        "regs": np.array(regs, dtype=np.float32).reshape(n, 4),
        "weights": np.array(weights, dtype=np.float32),
        "sha256": hasher.hexdigest(),
        "rows": hasher.rows,
        "counts": counts,
    }


def area_or_empty(ii, y0, y1, x0, x1, size):
    """mtcnn.area_crops, or an empty batch."""
    if len(y0) == 0:
        return np.zeros((0, 3, size, size), np.float32)
    return mtcnn.area_crops(ii, y0, y1, x0, x1, size)


def finetune(net, name, samples, hyper, gen, bar) -> list[float]:
    """Fine-tune one net in place; returns the loss per epoch."""
    device = hyper["device"]
    teacher = copy.deepcopy(net).to(device).eval() if name == "onet" else None
    x_all = torch.from_numpy(samples["crops"][name]).to(device)
    lab = torch.from_numpy(samples["labels"]).to(device)
    reg = torch.from_numpy(samples["regs"]).to(device)
    wt = torch.from_numpy(samples["weights"]).to(device)
    n = len(lab)
    bs = hyper["batch_size"]
    # Each term is a weighted sum over the batch divided by what its weights sum to on average (the
    # dataset's mean weight of that term's samples times their count in the batch), so the expected loss
    # is the dataset's weighted mean: a batch of low-weight rows pulls less than a batch of human ones.
    # Dividing by the batch's own weight sum would undo the weights between batches (and divide by 0 on
    # a batch of weight-0 samples).
    mean_w_cls = float(wt[lab >= 0].mean()) if bool((lab >= 0).any()) else 1.0
    mean_w_reg = float(wt[lab != 0].mean()) if bool((lab != 0).any()) else 1.0
    net.to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=hyper["lr"])
    curve = []
    for _ in range(hyper["epochs"]):
        order = torch.randperm(n, generator=gen).to(device)
        total = 0.0
        for k in range(0, n, bs):
            idx = order[k : k + bs]
            x = x_all[idx]
            r = reg[idx].clone()
            flip = torch.rand(len(idx), generator=gen).to(device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
            # A mirrored crop mirrors the offsets: new left = -old right, new right = -old left.
            r = torch.where(flip[:, None], torch.stack([-r[:, 2], r[:, 1], -r[:, 0], r[:, 3]], 1), r)
            out = net(x)
            prob = out[-1]
            y, w = lab[idx], wt[idx]
            cls_mask = y >= 0
            loss = x.new_zeros(())
            if cls_mask.any():
                nll = F.nll_loss(torch.log(prob[cls_mask] + 1e-8), y[cls_mask], reduction="none")
                loss = loss + (nll * w[cls_mask]).sum() / (mean_w_cls * int(cls_mask.sum()))
            reg_mask = y != 0
            if reg_mask.any():
                err = ((out[0][reg_mask] - r[reg_mask]) ** 2).sum(1)
                loss = loss + 0.5 * (err * w[reg_mask]).sum() / (mean_w_reg * int(reg_mask.sum()))
            if teacher is not None:
                with torch.no_grad():
                    target = teacher(x)[1]
                pos = y == 1
                if pos.any():
                    loss = loss + ((out[1][pos] - target[pos]) ** 2).sum(1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            bar.update(1)
            bar.set_postfix(net=name, loss=f"{float(loss.detach()):.4f}")
        curve.append(total / max(n, 1))
    net.eval()
    return curve


def train_boxes(db, config, run_id, parent, hyper, progress) -> dict:
    """Fine-tune the parent MTCNN's RNet and ONet and register the three files as a face_box model."""
    from ..models.registry import store_file

    if parent is None or (parent.get("params") or {}).get("runner") != "mtcnn":
        raise InvalidInput("face_box training fine-tunes an MTCNN model: activate one or give --from")
    files = verified_files(parent)
    samples = box_samples(
        db, config, ("train",), hyper["include_unrated"], hyper["seed"], hyper["unrated_weight"]
    )
    c = samples["counts"]
    if c["pos"] == 0:
        raise InvalidInput("no face_box training rows in the train split (human or machine not rated bad)")
    gen = torch.Generator().manual_seed(hyper["seed"])
    n = len(samples["labels"])
    steps = 2 * hyper["epochs"] * math.ceil(n / hyper["batch_size"])
    bar = tqdm(total=steps, desc="train face_box", unit="step", disable=not progress)
    nets, curves, parity = {}, {}, {}
    for name in ("rnet", "onet"):
        nets[name] = load_onnx_weights(name, files["rnet" if name == "rnet" else "main"])
        curves[name] = finetune(nets[name], name, samples, hyper, gen, bar)
    bar.close()
    models_dir = config["MODELS_DIR"]
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, net in nets.items():
            paths[name] = Path(tmp) / f"{name}.onnx"
            shape = (2, 3, SIZES[name], SIZES[name])
            parity[name] = export_checked(net, shape, paths[name], OUTPUTS[name])
        p = parent["params"]
        params = {
            "runner": "mtcnn",
            "arch": ARCH,
            "files": {"pnet": p["files"]["pnet"], "rnet": store_file(paths["rnet"], models_dir)},
            "min_face_size": p.get("min_face_size", mtcnn.MIN_FACE_SIZE),
            "thresholds": p.get("thresholds", list(mtcnn.THRESHOLDS)),
            "factor": p.get("factor", mtcnn.FACTOR),
            "training": {
                "sha256": samples["sha256"],
                "rows": samples["rows"],
                "samples": n,
                "counts": c,
                "splits": ["train"],
            },
            "hyper": hyper | {"warm_start_from": parent["id"]},
            "loss_curve": [round(a + b, 6) for a, b in zip(curves["rnet"], curves["onet"], strict=True)],
            "loss_curves": {k: [round(v, 6) for v in cv] for k, cv in curves.items()},
            "onnx_parity": parity,
            "run_id": run_id,
        }
        json.dumps(params)  # fail here, not in the INSERT, if anything is not JSON
        model_id = register_model(
            db,
            paths["onet"],
            "face_box",
            name=f"mtcnn-ft-run{run_id}",
            source="trained",
            models_dir=models_dir,
            params=params,
            parent_id=parent["id"],
            licence="MIT (facenet-pytorch weights), fine-tuned on this instance's labels",
            origin=f"flask oiap train --kind face_box (run {run_id})",
        )
    return {
        "model_id": model_id,
        "samples": n,
        "counts": c,
        "loss_curve": params["loss_curve"],
        "warm_start_from": parent["id"],
    }
