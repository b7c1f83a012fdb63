"""face_landmarks68: fit a mapping head on the default mesh from the team's labels (numpy + onnx; no torch).

Per training row (merge rules, with its weight) the base annotator (the builtin default, a face mesh)
runs on the row's box as evaluation runs it, giving its 68 points D and its N mesh vertices V; both
and the row's labelled points Y go into the face's normalised frame (meshhead68.to_frame). Per iBUG
point i, with nb(i) its K mesh vertices nearest to D_i (on the training faces' mean mesh):

    pred_i = D_i + b_i + sum_j A_ij (V_nb(i,j) - D_i)        (A_ij a 2x2 matrix, b_i a 2-vector)

fitted by weighted ridge regression: minimise sum_f w_f |pred_fi - Y_fi|^2 + lambda |(A_i, b_i)|^2.
With no data (or lambda -> infinity) the head gives D: it starts from the default table. K and lambda
are chosen by k-fold cross-validation on the training rows themselves (weighted mean NME of held-out
faces), never on the test split. The head is written as one MatMul + Add (meshhead68's docstring),
checked against the numpy reference on onnxruntime.

Weights: a row of weight 0 is dropped before anything is computed from the rows (neighbours, folds,
the fit), so it gives exactly the model that leaving it out gives.
"""

import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..annotators import meshhead68
from ..annotators.template68 import apply
from ..errors import InvalidInput, NotFound
from ..images.decode import BadImage
from ..models.metrics import nme
from ..models.registry import register_model, sha256_file, verified_path
from .data import RowHasher, image_groups, row_rgb

# K (nearest mesh vertices per point) and lambda tried by cross-validation. Measured on faces-dev's
# training file by leave-one-out (scripts/dev_round.py prints the folds' scores): K 4-16 and lambda
# 0.01-1 within 0.001 NME of each other; K = 1 (the offset alone) about 0.0015 worse.
GRID_K = (4, 8, 16)
GRID_LAMBDA = (0.01, 0.1, 1.0, 10.0, 100.0)
MAX_FOLDS = 5
OPSET = 17


def base_model(db) -> dict:
    """The builtin default face_landmarks68 row (the mesh the head is fitted on), by its file's hash."""
    from ..annotators.landmarks68 import BUILTIN, DEFAULT_LANDMARKS68
    from ..models.registry import get_model

    digest = sha256_file(BUILTIN[DEFAULT_LANDMARKS68]["path"])
    row = db.execute(
        "SELECT id FROM models WHERE kind = 'face_landmarks68' AND source = 'builtin' AND sha256 = ?"
        " ORDER BY id DESC LIMIT 1",
        [digest],
    ).fetchone()
    if row is None:
        raise InvalidInput(
            f"the default face_landmarks68 model ({DEFAULT_LANDMARKS68}) is not registered; "
            "`flask oiap models list` registers the builtin models"
        )
    return get_model(db, row[0])


def base_annotator(model: dict):
    """The annotator of the base row, checked to give mesh vertices."""
    from ..annotators.landmarks68 import get_landmarks68

    name = model["params"]["runner"].split(":", 1)[1]
    ann = get_landmarks68(name, model_path=verified_path(model))
    if not hasattr(ann, "predict_many_with_mesh"):
        raise InvalidInput(f"the default annotator {name} gives no mesh vertices: no mesh head can be fitted")
    return ann


def mesh_samples(
    db,
    config,
    base,
    splits=("train",),
    include_unrated: bool = True,
    unrated_weight: float = 0.5,
    progress=None,
) -> dict:
    """Base points D (n, 68, 2), mesh V (n, N, 2) and labels Y (n, 68, 2) in each face's normalised frame,
    weights (n,), the rows' sha256 and count, and the rows skipped (no file, not 68 points)."""
    hasher = RowHasher()
    ds, vs, ys, ws, ids, images, skipped = [], [], [], [], [], [], []
    for group in image_groups(db, splits, include_unrated, unrated_weight, hasher):
        faces = [r for r in group if r.points and len(r.points) == 68]
        skipped += [
            {"annotation_id": r.annotation_id, "reason": "not 68 points"} for r in group if r not in faces
        ]
        if not faces:
            continue
        try:
            rgb = row_rgb(config, group[0])
        except (NotFound, InvalidInput, BadImage) as e:
            skipped += [{"annotation_id": r.annotation_id, "reason": str(e)} for r in faces]
            continue
        h, w = rgb.shape[:2]
        boxes, labels = [], []
        for r in faces:
            px = np.array([p[:2] for p in r.points], dtype=np.float64) * [w, h]
            # As evaluation runs a model: on the row's box (or its parent's), else the points' extent.
            boxes.append(np.array(r.box) * [w, h, w, h] if r.box is not None else np.r_[px.min(0), px.max(0)])
            labels.append(px)
        for r, (d, v), y in zip(faces, base.predict_many_with_mesh(rgb, boxes), labels, strict=True):
            dn, vn, xform = meshhead68.to_frame(d, v)
            ds.append(dn)
            vs.append(vn)
            ys.append(apply(*xform, y))
            ws.append(r.weight)
            ids.append(r.annotation_id)
            images.append(r.image_id)
        if progress:
            progress(len(ds))
    n = len(ds)
    n_mesh = vs[0].shape[0] if n else 0
    return {
        "base": np.array(ds).reshape(n, 68, 2),
        "mesh": np.array(vs).reshape(n, n_mesh, 2),
        "points": np.array(ys).reshape(n, 68, 2),
        "weights": np.array(ws, dtype=np.float64),
        "annotation_ids": ids,
        "image_ids": np.array(images, dtype=object),
        "sha256": hasher.hexdigest(),
        "rows": hasher.rows,
        "skipped": skipped,
    }


def neighbours(base: np.ndarray, mesh: np.ndarray, k: int) -> np.ndarray:
    """(68, k) indices of the k mesh vertices nearest each base point on the faces' mean (normalised)."""
    d = np.linalg.norm(base.mean(0)[:, None] - mesh.mean(0)[None], axis=2)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def _design(base: np.ndarray, mesh: np.ndarray, nb: np.ndarray, i: int) -> np.ndarray:
    """(n, 2, 4k + 2) features of point i: rows x and y, columns A's four blocks then the offset."""
    diff = mesh[:, nb[i]] - base[:, i, None]  # (n, k, 2)
    n, k = diff.shape[:2]
    x = np.zeros((n, 2, 4 * k + 2))
    x[:, 0, 0:k], x[:, 0, k : 2 * k] = diff[..., 0], diff[..., 1]
    x[:, 1, 2 * k : 3 * k], x[:, 1, 3 * k : 4 * k] = diff[..., 0], diff[..., 1]
    x[:, 0, -2] = x[:, 1, -1] = 1.0
    return x


def fit(base, mesh, points, weights, k: int, lam: float) -> dict:
    """The head's neighbours and its matrices A (68, k, 2, 2) and offsets b (68, 2), by weighted ridge."""
    nb = neighbours(base, mesh, k)
    a = np.zeros((68, k, 2, 2))
    b = np.zeros((68, 2))
    w2 = np.repeat(weights, 2)
    for i in range(68):
        x = _design(base, mesh, nb, i).reshape(-1, 4 * k + 2)
        r = (points[:, i] - base[:, i]).reshape(-1)
        theta = np.linalg.solve(x.T @ (x * w2[:, None]) + lam * np.eye(4 * k + 2), x.T @ (w2 * r))
        a[i] = theta[: 4 * k].reshape(2, 2, k).transpose(2, 0, 1)
        b[i] = theta[-2:]
    return {"neighbours": nb, "a": a, "b": b, "k": k, "lambda": lam}


def matrices(head: dict | None, n_mesh: int) -> tuple[np.ndarray, np.ndarray]:
    """The head as (weight (2 (68 + N), 136), bias (136,)) on concat(base, mesh) flattened x, y, x, y...
    None: the identity on the base points (the default's answer)."""
    m = np.zeros((136, 2 * (68 + n_mesh)))
    m[np.arange(136), np.arange(136)] = 1.0
    bias = np.zeros(136)
    if head is not None:
        for i in range(68):
            for j, v in enumerate(head["neighbours"][i]):
                aij = head["a"][i, j]
                m[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] -= aij
                m[2 * i : 2 * i + 2, 2 * (68 + v) : 2 * (68 + v) + 2] += aij
        bias = head["b"].reshape(-1).copy()
    return m.T, bias


def apply_matrices(weight: np.ndarray, bias: np.ndarray, base: np.ndarray, mesh: np.ndarray) -> np.ndarray:
    """The numpy reference of the head file: (n, 68, 2) in the normalised frame."""
    x = np.concatenate([base, mesh], axis=1).reshape(len(base), -1)
    return (x @ weight + bias).reshape(-1, 68, 2)


def _weighted_nme(pred, truth, weights) -> float:
    e = nme(pred, truth)
    return float((e * weights).sum() / weights.sum())


def cross_validate(samples: dict) -> dict:
    """Weighted held-out NME per (K, lambda) and of the default, over min(images, MAX_FOLDS) folds; best =
    the lowest (ties: fewer neighbours, more shrinkage). The faces of one image share a fold (images in
    the rows' order, modulo the folds): faces of one photo share its light and camera, and splitting them
    made the held-out score optimistic."""
    base, mesh, pts, w = samples["base"], samples["mesh"], samples["points"], samples["weights"]
    _, first, image_index = np.unique(samples["image_ids"], return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))  # image number by first appearance
    folds = min(len(first), MAX_FOLDS)
    fold = order[image_index] % folds
    scores = {}
    for k in GRID_K:
        for lam in sorted(GRID_LAMBDA, reverse=True):
            pred = np.zeros_like(pts)
            for f in range(folds):
                tr, te = fold != f, fold == f
                head = fit(base[tr], mesh[tr], pts[tr], w[tr], k, lam)
                weight, bias = matrices(head, mesh.shape[1])
                pred[te] = apply_matrices(weight, bias, base[te], mesh[te])
            scores[(k, lam)] = _weighted_nme(pred, pts, w)
    best = min(scores, key=lambda key: (round(scores[key], 6), key[0], -key[1]))
    return {
        "folds": folds,
        "default_nme": _weighted_nme(base, pts, w),
        "scores": [{"k": k, "lambda": lam, "nme": round(v, 6)} for (k, lam), v in scores.items()],
        "k": best[0],
        "lambda": best[1],
        "nme": scores[best],
    }


def export_head(weight: np.ndarray, bias: np.ndarray, n_mesh: int, out: str | Path, seed: int = 0) -> dict:
    """Write the head as ONNX (Concat, Reshape, MatMul, Add, Reshape), onnx.checker, then parity against
    apply_matrices on onnxruntime (random faces near the mean shape, batches 1 and 5)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    f32 = np.float32
    inits = [
        numpy_helper.from_array(weight.astype(f32), "weight"),
        numpy_helper.from_array(bias.astype(f32), "bias"),
        numpy_helper.from_array(np.array([-1, 2 * (68 + n_mesh)], np.int64), "flat_shape"),
        numpy_helper.from_array(np.array([-1, 68, 2], np.int64), "out_shape"),
    ]
    nodes = [
        helper.make_node("Concat", ["base", "mesh"], ["points"], axis=1, name="concat"),
        helper.make_node("Reshape", ["points", "flat_shape"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "weight"], ["mixed"], name="mix"),
        helper.make_node("Add", ["mixed", "bias"], ["shifted"], name="offset"),
        helper.make_node("Reshape", ["shifted", "out_shape"], ["landmarks"], name="unflatten"),
    ]
    graph = helper.make_graph(
        nodes,
        "meshhead68",
        [
            helper.make_tensor_value_info("base", TensorProto.FLOAT, ["batch", 68, 2]),
            helper.make_tensor_value_info("mesh", TensorProto.FLOAT, ["batch", n_mesh, 2]),
        ],
        [helper.make_tensor_value_info("landmarks", TensorProto.FLOAT, ["batch", 68, 2])],
        inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="oiap",
        doc_string=meshhead68.ARCH,
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(out))
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    worst = 0.0
    for batch in (1, 5):
        base = (rng.normal(0, 0.5, (batch, 68, 2))).astype(f32)
        mesh = (rng.normal(0, 0.5, (batch, n_mesh, 2))).astype(f32)
        ref = apply_matrices(weight, bias, base.astype(np.float64), mesh.astype(np.float64))
        got = sess.run(["landmarks"], {"base": base, "mesh": mesh})[0]
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
        worst = max(worst, float(np.abs(got - ref).max()))
    return {"max_abs_diff": worst, "opset": OPSET}


def train_meshhead(db, config, run_id, parent, hyper, progress) -> dict:
    """Fit a head on the default mesh from the train split's rows and register it as a candidate."""
    base_row = base_model(db)
    base = base_annotator(base_row)
    bar = tqdm(desc="mesh on training faces", unit="face", disable=not progress)
    samples = mesh_samples(
        db,
        config,
        base,
        ("train",),
        hyper["include_unrated"],
        hyper["unrated_weight"],
        progress=lambda n: bar.update(n - bar.n),
    )
    bar.close()
    if len(samples["base"]) == 0:
        raise InvalidInput(
            "no face_landmarks68 training rows in the train split (human or machine not rated bad); "
            "label some faces first"
        )
    used = samples["weights"] > 0
    kept = {k: samples[k][used] for k in ("base", "mesh", "points", "weights", "image_ids")}
    if not used.any():
        raise InvalidInput("every face_landmarks68 training row has weight 0: nothing to fit")
    n, n_mesh = len(kept["base"]), kept["mesh"].shape[1]
    # One image cannot be split: no cross-validation, the strongest shrinkage of the grid.
    cv = cross_validate(kept) if len(set(kept["image_ids"])) >= 2 else None
    k, lam = (cv["k"], cv["lambda"]) if cv else (GRID_K[0], max(GRID_LAMBDA))
    head = fit(kept["base"], kept["mesh"], kept["points"], kept["weights"], k, lam)
    weight, bias = matrices(head, n_mesh)
    fitted = _weighted_nme(
        apply_matrices(weight, bias, kept["base"], kept["mesh"]), kept["points"], kept["weights"]
    )
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "meshhead68.onnx"
        parity = export_head(weight, bias, n_mesh, onnx_path, hyper["seed"])
        params = {
            "runner": "meshhead68",
            "annotator": "meshhead68",
            "arch": meshhead68.ARCH,
            "base": {"id": base_row["id"], "name": base_row["name"], "runner": base_row["params"]["runner"]},
            "files": {"mesh": {"path": base_row["path"], "sha256": base_row["sha256"]}},
            "n_mesh": n_mesh,
            "head": {"k": k, "lambda": lam},
            "cross_validation": cv,
            "training": {
                "sha256": samples["sha256"],
                "rows": samples["rows"],
                "samples": n,
                "zero_weight": int((~used).sum()),
                "skipped": len(samples["skipped"]),
                "splits": ["train"],
                "nme_default": _weighted_nme(kept["base"], kept["points"], kept["weights"]),
                "nme_fitted": fitted,
            },
            "hyper": {key: hyper[key] for key in ("seed", "include_unrated", "unrated_weight")}
            | {"k": k, "lambda": lam},
            "onnx_parity": parity,
            "run_id": run_id,
        }
        model_id = register_model(
            db,
            onnx_path,
            "face_landmarks68",
            name=f"meshhead68-run{run_id}",
            source="trained",
            models_dir=config["MODELS_DIR"],
            params=params,
            parent_id=parent["id"] if parent else None,
            licence=f"head trained on this instance's labels, on {base_row['name']} ({base_row['licence']})",
            origin=f"flask oiap train --kind face_landmarks68 (run {run_id})",
        )
    return {
        "model_id": model_id,
        "samples": n,
        "head": {"k": k, "lambda": lam},
        "cross_validation": cv,
        "nme_train": {"default": params["training"]["nme_default"], "fitted": fitted},
    }
