"""object_box: fine-tune the SSD detector's box and class heads (Objectron's SSD-MobileNetV2) on the good
labels, the backbone frozen.

The smallest design that trains on CPU in minutes: the parent's ONNX file is split where its twelve
1x1 head convolutions read the six feature maps (19x19 ... 1x1). The backbone part
(onnx.utils.extract_model) runs once per training image and its mirror, on onnxruntime; the heads are
rebuilt in torch from the ONNX initializers and trained on the stored features. The new file is the
parent's graph with the heads' weights replaced (and, when the labels name classes the parent lacks,
the class heads widened by one output per anchor and class), checked against torch on real images.

Matching and loss follow the TF Object Detection API's SSD that the model was trained with: each
ground-truth box takes its best anchor and every anchor it overlaps at IoU >= 0.5; sigmoid
cross-entropy over the classes (column 0 the background) with hard negatives (3 per positive, by
loss), smooth-L1 on the box encoding (MediaPipe's scales 10, 10, 5, 5). Open Images labels are not
exhaustive: on an image, only the classes it has a box of (and the background) take a class loss, so an
unlabelled object of another class is not taught as background. Each box's merge weight (human and good
1, unrated less) scales its anchors' loss. A group-of box (IsGroupOf) trains as an ordinary box of its
class: the anchors over a crowd learn "Person" rather than background.
"""

import json
import math
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..annotations.geometry import box_iou
from ..annotators import objectron
from ..errors import InvalidInput, NotFound
from ..export.merge import iter_training_rows
from ..images.decode import BadImage
from ..models.builtin import verified_files
from ..models.registry import register_model
from .data import RowHasher, row_rgb

ARCH = "ssd-heads-v1"
RUNNER = "objectron"
MATCH_IOU = 0.5
NEG_PER_POS = 3
# A new class's logits start at sigmoid^-1(0.01): rare until trained (RetinaNet's prior).
NEW_CLASS_BIAS = -math.log(99.0)


# --- the heads in the ONNX graph -------------------------------------------------------------------


def _producers(graph) -> dict:
    return {o: n for n in graph.node for o in n.output}


def _initializer(graph, name: str) -> np.ndarray:
    """A float32 value of an initializer, or of a Cast of one (the fp16 weights)."""
    from onnx import numpy_helper

    inits = {t.name: t for t in graph.initializer}
    if name in inits:
        return numpy_helper.to_array(inits[name]).astype(np.float32)
    node = _producers(graph).get(name)
    if node is not None and node.op_type == "Cast" and node.input[0] in inits:
        return numpy_helper.to_array(inits[node.input[0]]).astype(np.float32)
    raise InvalidInput(f"head weight {name!r} is neither an initializer nor a cast of one")


def find_heads(model) -> list[dict]:
    """Per feature map, in anchor order: {feature, box, cls (Conv nodes), box_reshape, cls_reshape}.

    Walks back from the outputs `box_encodings` and `class_predictions` through their Concat to each
    layer's Reshape <- Transpose <- Conv, as scripts/export_objectron.py writes them."""
    g = model.graph
    prod = _producers(g)

    def concat_of(output: str):
        node = prod[output]
        while node.op_type in ("Identity", "Reshape"):
            node = prod[node.input[0]]
        if node.op_type != "Concat":
            raise InvalidInput(f"{output}: expected a Concat of the per-layer heads, found {node.op_type}")
        return node

    layers = {}
    for key, out in (("box", "box_encodings"), ("cls", "class_predictions")):
        for k, name in enumerate(concat_of(out).input):
            reshape = prod[name]
            transpose = prod[reshape.input[0]]
            conv = prod[transpose.input[0]]
            if (reshape.op_type, transpose.op_type, conv.op_type) != ("Reshape", "Transpose", "Conv"):
                raise InvalidInput(f"{out}: layer {k} is not Conv -> Transpose -> Reshape")
            layers.setdefault(k, {})[key] = conv
            layers[k][f"{key}_reshape"] = reshape
    heads = []
    for k in sorted(layers):
        d = layers[k]
        if d["box"].input[0] != d["cls"].input[0]:
            raise InvalidInput(f"layer {k}: box and class heads read different feature maps")
        heads.append(d | {"feature": d["box"].input[0]})
    return heads


class SSDHeads(nn.Module):
    """The box and class convolutions of every feature map: features -> (encodings (N, A, 4), logits (N, A, K))."""

    def __init__(self, channels: list[int], anchors: list[int], num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.box = nn.ModuleList(nn.Conv2d(c, a * 4, 1) for c, a in zip(channels, anchors, strict=True))
        self.cls = nn.ModuleList(
            nn.Conv2d(c, a * num_classes, 1) for c, a in zip(channels, anchors, strict=True)
        )

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        boxes, logits = [], []
        for f, b, c in zip(feats, self.box, self.cls, strict=True):
            n = f.shape[0]
            # NHWC element order, as the .tflite flattens its feature maps.
            boxes.append(b(f).permute(0, 2, 3, 1).reshape(n, -1, 4))
            logits.append(c(f).permute(0, 2, 3, 1).reshape(n, -1, self.num_classes))
        return torch.cat(boxes, 1), torch.cat(logits, 1)


def heads_from_onnx(model, labels: list[str], new_labels: list[str]) -> tuple[SSDHeads, list[dict]]:
    """SSDHeads with the ONNX file's head weights; classes in new_labels beyond labels get new outputs."""
    heads = find_heads(model)
    g = model.graph
    k_old, k_new = len(labels), len(new_labels)
    channels, anchors, weights = [], [], []
    for h in heads:
        bw, bb = _initializer(g, h["box"].input[1]), _initializer(g, h["box"].input[2])
        cw, cb = _initializer(g, h["cls"].input[1]), _initializer(g, h["cls"].input[2])
        if bw.shape[2:] != (1, 1) or cw.shape[2:] != (1, 1):
            raise InvalidInput("the SSD trainer expects 1x1 head convolutions")
        a = bw.shape[0] // 4
        if cw.shape[0] != a * k_old:
            raise InvalidInput(
                f"class head has {cw.shape[0]} outputs, expected {a} anchors x {k_old} classes"
            )
        channels.append(bw.shape[1])
        anchors.append(a)
        # Widen per anchor: old classes keep their rows, new ones start at zero weight and a low bias.
        nw = np.zeros((a, k_new, *cw.shape[1:]), np.float32)
        nb = np.full((a, k_new), NEW_CLASS_BIAS, np.float32)
        nw[:, :k_old] = cw.reshape(a, k_old, *cw.shape[1:])
        nb[:, :k_old] = cb.reshape(a, k_old)
        weights.append((bw, bb, nw.reshape(a * k_new, *cw.shape[1:]), nb.reshape(-1)))
    net = SSDHeads(channels, anchors, k_new)
    with torch.no_grad():
        for (bw, bb, cw, cb), box, cls in zip(weights, net.box, net.cls, strict=True):
            box.weight.copy_(torch.from_numpy(bw))
            box.bias.copy_(torch.from_numpy(bb))
            cls.weight.copy_(torch.from_numpy(cw))
            cls.bias.copy_(torch.from_numpy(cb))
    return net, heads


def write_onnx(parent, net: SSDHeads, labels: list[str], out: Path) -> None:
    """The parent's graph with net's head weights (float32), class outputs widened to len(labels), the
    labels in the metadata; unused nodes and initializers dropped; onnx.checker."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(parent)
    g = model.graph
    heads = find_heads(model)
    k = len(labels)
    new_inits = []
    for i, h in enumerate(heads):
        for key, conv in ((f"box{i}", net.box[i]), (f"cls{i}", net.cls[i])):
            node = h["box"] if key.startswith("box") else h["cls"]
            w, b = f"head_{key}_w", f"head_{key}_b"
            new_inits.append(
                numpy_helper.from_array(conv.weight.detach().cpu().numpy().astype(np.float32), w)
            )
            new_inits.append(numpy_helper.from_array(conv.bias.detach().cpu().numpy().astype(np.float32), b))
            node.input[1], node.input[2] = w, b
        # The class reshape's last dimension is the class count: a fresh shape constant per layer.
        reshape = h["cls_reshape"]
        old = numpy_helper.to_array(next(t for t in g.initializer if t.name == reshape.input[1]))
        shape = f"head_cls{i}_shape"
        new_inits.append(numpy_helper.from_array(np.array([*old[:-1], k], np.int64), shape))
        reshape.input[1] = shape
    g.initializer.extend(new_inits)
    for o in g.output:
        if o.name == "class_predictions":
            o.type.tensor_type.shape.dim[2].dim_value = k
    # Drop what no longer feeds an output (the old heads' casts and weights).
    while True:
        used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        dead = [n for n in g.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            g.node.remove(n)
    used = {i for n in g.node for i in n.input}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    del model.metadata_props[:]
    helper.set_model_props(model, {objectron.LABELS_KEY: json.dumps(labels)})
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(out))


# --- data ------------------------------------------------------------------------------------------


ANCHOR_BOXES = np.stack(
    [
        objectron.ANCHORS[:, 1] - objectron.ANCHORS[:, 3] / 2,
        objectron.ANCHORS[:, 0] - objectron.ANCHORS[:, 2] / 2,
        objectron.ANCHORS[:, 1] + objectron.ANCHORS[:, 3] / 2,
        objectron.ANCHORS[:, 0] + objectron.ANCHORS[:, 2] / 2,
    ],
    1,
)


def match(boxes: np.ndarray, classes: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, ...]:
    """Anchor targets for one image: class index per anchor (0 background), encodings, weights."""
    n = len(ANCHOR_BOXES)
    cls = np.zeros(n, np.int64)
    enc = np.zeros((n, 4), np.float32)
    wt = np.ones(n, np.float32)
    if len(boxes) == 0:
        return cls, enc, wt
    iou = box_iou(ANCHOR_BOXES, boxes)  # (anchors, boxes)
    best = iou.argmax(1)
    pos = iou[np.arange(n), best] >= MATCH_IOU
    # Every box keeps its best anchor, even below the threshold (a small or odd-shaped object).
    forced = iou.argmax(0)
    best[forced] = np.arange(len(boxes))
    pos[forced] = True
    cls[pos] = classes[best[pos]]
    enc[pos] = objectron.encode_boxes(boxes[best[pos]], objectron.ANCHORS[pos])
    wt[pos] = weights[best[pos]]
    return cls, enc, wt


def training_images(db, config, include_unrated: bool, unrated_weight: float, hasher: RowHasher):
    """The merge's object_box rows of the train split grouped by image: [(rgb, boxes, MIDs, weights)]."""
    rows = iter_training_rows(
        db, "object_box", ("train",), include_unrated=include_unrated, unrated_weight=unrated_weight
    )
    groups: dict[str, list] = {}
    for r in rows:
        hasher.add(r)
        if r.box is not None and r.weight > 0 and r.label:
            groups.setdefault(r.image_id, []).append(r)
    skipped = 0
    out = []
    for image_id in sorted(groups):
        rs = groups[image_id]
        try:
            rgb = row_rgb(config, rs[0])
        except (NotFound, InvalidInput, BadImage, OSError):
            skipped += 1
            continue
        out.append(
            (
                rgb,
                np.array([r.box for r in rs], np.float64),
                [r.label for r in rs],
                np.array([r.weight for r in rs], np.float32),
            )
        )
    return out, skipped


def backbone_session(parent_path: Path, heads: list[dict], tmp: Path):
    """onnxruntime on the parent's graph cut at the heads' feature maps (onnx.utils.extract_model)."""
    import onnx.utils
    import onnxruntime as ort

    path = tmp / "backbone.onnx"
    onnx.utils.extract_model(str(parent_path), str(path), ["image"], [h["feature"] for h in heads])
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def features(sess, heads, x: np.ndarray) -> list[np.ndarray]:
    """The six feature maps for (N, 3, 300, 300) inputs."""
    return sess.run([h["feature"] for h in heads], {"image": x})


def build_samples(images, labels: list[str], sess, heads, bar) -> dict:
    """Features (float16, image and mirror) and anchor targets for every training image."""
    index = {m: i for i, m in enumerate(labels)}
    feats: list[list[np.ndarray]] = [[] for _ in heads]
    cls, enc, wt, masks = [], [], [], []
    for rgb, boxes, mids, weights in images:
        x = objectron.preprocess(rgb)
        c = np.array([index[m] for m in mids], np.int64)
        mask = np.zeros(len(labels), bool)
        mask[0] = True
        mask[c] = True
        mirrored = boxes.copy()
        mirrored[:, [0, 2]] = 1.0 - boxes[:, [2, 0]]
        for inp, bx in ((x, boxes), (x[..., ::-1].copy(), mirrored)):
            for store, f in zip(feats, features(sess, heads, inp), strict=True):
                store.append(f.astype(np.float16))
            t = match(bx, c, weights)
            cls.append(t[0])
            enc.append(t[1])
            wt.append(t[2])
            masks.append(mask)
        bar.update(1)
    return {
        "feats": [np.concatenate(f) for f in feats],
        "cls": np.stack(cls),
        "enc": np.stack(enc),
        "wt": np.stack(wt),
        "mask": np.stack(masks),
    }


# --- training --------------------------------------------------------------------------------------


def ssd_loss(box, logits, cls, enc, wt, mask) -> torch.Tensor:
    """Sigmoid cross-entropy with hard negatives + smooth-L1 on positives, over the positives' count."""
    k = logits.shape[-1]
    target = F.one_hot(cls, k).float()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    ce = (ce * mask[:, None, :]).sum(-1)  # (N, A): only the image's labelled classes and background
    pos = cls > 0
    n_pos = pos.sum(1)
    neg_ce = ce.masked_fill(pos, -1.0)
    order = neg_ce.argsort(1, descending=True)
    rank = order.argsort(1)
    hard = (rank < (NEG_PER_POS * n_pos.clamp(min=1))[:, None]) & ~pos
    reg = F.smooth_l1_loss(box, enc, reduction="none").sum(-1)
    total = (ce * wt * pos).sum() + (ce * hard).sum() + (reg * wt * pos).sum()
    return total / n_pos.sum().clamp(min=1)


def fit(net: SSDHeads, samples: dict, hyper: dict, bar) -> list[float]:
    """Train the heads in place; the loss per epoch (mean over samples)."""
    device = hyper["device"]
    gen = torch.Generator().manual_seed(hyper["seed"])
    feats = [torch.from_numpy(f) for f in samples["feats"]]
    tgt = {k: torch.from_numpy(samples[k]) for k in ("cls", "enc", "wt", "mask")}
    n = len(tgt["cls"])
    net.to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=hyper["lr"])
    bs = hyper["batch_size"]
    curve = []
    for _ in range(hyper["epochs"]):
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for s in range(0, n, bs):
            idx = order[s : s + bs]
            f = [t[idx].to(device).float() for t in feats]
            box, logits = net(f)
            loss = ssd_loss(box, logits, *(tgt[k][idx].to(device) for k in ("cls", "enc", "wt", "mask")))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
        curve.append(total / n)
    net.eval().to("cpu")
    return curve


def parity(net: SSDHeads, sess, heads, out: Path, images, tol: float = 1e-3) -> dict:
    """onnxruntime on the new file vs torch's heads on the backbone's features, on real training images."""
    import onnxruntime as ort

    full = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.concatenate([objectron.preprocess(rgb) for rgb, *_ in images[:4]])
    with torch.no_grad():
        ref = [t.numpy() for t in net([torch.from_numpy(f) for f in features(sess, heads, x)])]
    got = full.run(["box_encodings", "class_predictions"], {"image": x})
    worst = 0.0
    for r, g in zip(ref, got, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=tol)
        worst = max(worst, float(np.abs(g - r).max()))
    return {"max_abs_diff": worst, "images": len(x)}


def base_model(db, parent: dict | None) -> dict:
    """The SSD to fine-tune: the parent when it runs on this trainer's runner, else the builtin Objectron."""
    if parent is not None and (parent.get("params") or {}).get("runner") == RUNNER:
        return parent
    rows = list(
        db.query(
            "SELECT id FROM models WHERE kind = 'object_box' AND source = 'builtin' AND name = 'objectron'"
            " ORDER BY id DESC LIMIT 1"
        )
    )
    if not rows:
        raise InvalidInput("object_box training fine-tunes the Objectron SSD: its builtin row is missing")
    from ..models.registry import get_model

    return get_model(db, rows[0]["id"])


def train_ssd(db, config, run_id, parent, hyper, progress) -> dict:
    """Fine-tune the SSD's heads on the train split's object boxes and register the candidate."""
    import onnx

    base = base_model(db, parent)
    path = verified_files(base)["main"]
    labels = objectron.model_labels(path)
    hasher = RowHasher()
    images, skipped = training_images(db, config, hyper["include_unrated"], hyper["unrated_weight"], hasher)
    if not images:
        raise InvalidInput(
            "no object_box training rows in the train split (human, or machine not rated bad); label some first"
        )
    added = sorted({m for _, _, mids, _ in images for m in mids} - set(labels))
    new_labels = labels + added
    model = onnx.load(str(path))
    net, heads = heads_from_onnx(model, labels, new_labels)
    with tempfile.TemporaryDirectory() as tmp:
        sess = backbone_session(path, heads, Path(tmp))
        bar = tqdm(total=len(images), desc="features", unit="img", disable=not progress)
        samples = build_samples(images, new_labels, sess, heads, bar)
        bar.close()
        n = len(samples["cls"])
        steps = hyper["epochs"] * math.ceil(n / hyper["batch_size"])
        bar = tqdm(total=steps, desc="train object_box", unit="step", disable=not progress)
        curve = fit(net, samples, hyper, bar)
        bar.close()
        out = Path(tmp) / "objectron-ft.onnx"
        write_onnx(model, net, new_labels, out)
        check = parity(net, sess, heads, out, images)
        boxes = int(sum(len(b) for _, b, _, _ in images))
        params = {
            "runner": RUNNER,
            "arch": ARCH,
            "labels": new_labels,
            "added_classes": added,
            "training": {
                "sha256": hasher.hexdigest(),
                "rows": hasher.rows,
                "images": len(images),
                "boxes": boxes,
                "samples": n,
                "skipped_images": skipped,
                "splits": ["train"],
                "positive_anchors": int((samples["cls"] > 0).sum()),
            },
            "hyper": hyper | {"warm_start_from": base["id"]},
            "loss_curve": [round(v, 6) for v in curve],
            "onnx_parity": check,
            "run_id": run_id,
        }
        json.dumps(params)
        model_id = register_model(
            db,
            out,
            "object_box",
            name=f"objectron-ft-run{run_id}",
            source="trained",
            models_dir=config["MODELS_DIR"],
            params=params,
            parent_id=base["id"],
            licence="Apache-2.0 (MediaPipe Objectron weights), heads fine-tuned on this instance's labels",
            origin=f"flask oiap train --kind object_box (run {run_id})",
        )
    return {
        "model_id": model_id,
        "samples": n,
        "images": len(images),
        "boxes": boxes,
        "added_classes": added,
        "loss_curve": params["loss_curve"],
        "warm_start_from": base["id"],
    }
