"""`flask oiap bulk-annotate --kind object_mask`: one mask per box of a set, by the active object_mask model.

The boxes come from a set (`--boxes-from`: an object_box or face_box set, an import or a model run),
narrowed to `--classes`; each box's mask is written to one new object_mask set per run, with the
box's class as its label, the box as its box and parent_id the box's row. Images are taken as for
the other kinds (those no human labelled for object_mask, or whose machine mask was rated bad), in id
order.

The photo is decoded upright (as the other kinds); the annotator's masks are turned back and resized
to the stored file's grid before they are encoded, so masks sit on the same grid as boxes.

Resume and errors as bulk-annotate's other kinds (app/bulk/local.py): each batch's rows, run_errors
(a missing or corrupt photo), the supersession of older runs' unrated masks of the same boxes and the
run's cursor commit in one transaction; `--resume RUN` continues after the cursor.
"""

import json
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from time import perf_counter

import numpy as np
from PIL import Image
from sqlite_utils import Database

from ..annotations import masks
from ..annotations.rows import annotation_row, insert_annotations
from ..db import immediate
from ..errors import Interrupted, InvalidInput, NotFound
from ..images.decode import BadImage, Decoded, decode
from ..runs import add_run_errors, claim_run, finish_run, set_progress, start_run
from .selection import count_images, read_images_file, select_images

KIND = "object_mask"
COMMAND = "bulk-annotate"


def mask_to_file(d: Decoded, m: np.ndarray) -> np.ndarray:
    """A mask on the decoded (upright, maybe reduced) pixels -> the stored file's grid (width x height)."""
    o = d.orientation
    if not o.identity:
        # The inverse of Orientation.apply: turn back, then undo the mirror.
        m = np.rot90(m, -(o.turns % 4))
        if o.mirror:
            m = m[:, ::-1]
    if m.shape != (d.height, d.width):
        m = (
            np.asarray(
                Image.fromarray(m.astype(np.uint8) * 255).resize(
                    (d.width, d.height), Image.Resampling.NEAREST
                )
            )
            > 0
        )
    return np.ascontiguousarray(m)


def _chosen_model(db: Database, model: str | None) -> dict:
    from ..models.mask_models import ensure_mask_models
    from ..models.registry import active_model, get_model, list_models

    ensure_mask_models(db)
    db.conn.commit()
    if model is None:
        m = active_model(db, KIND)
        if m is None:
            raise InvalidInput("no active object_mask model; `flask oiap models activate ID`")
        return m
    models = list_models(db, KIND)
    for m in models:
        if str(m["id"]) == str(model) or m["name"] == model:
            return get_model(db, m["id"])
    known = ", ".join(f"{m['id']} ({m['name']})" for m in models)
    raise InvalidInput(
        f"--model {model!r}: no object_mask model of that id or name; object_mask models: {known}"
    )


def _load(model: dict, threads: int | None):
    from ..models.builtin import verified_files
    from ..models.mask_models import load_mask_annotator

    return load_mask_annotator(model, verified_files(model), threads)


def _attach_boxes(db: Database, rows: list[dict], set_id: int, classes: list[str] | None) -> None:
    ids = [r["id"] for r in rows]
    by_image: dict[str, list] = {i: [] for i in ids}
    sql = (
        "SELECT id, image_id, label, x0, y0, x1, y1 FROM annotations WHERE set_id = ? AND deleted = 0"
        " AND image_id IN (SELECT value FROM json_each(?))"
    )
    params: list = [set_id, json.dumps(ids)]
    if classes:
        sql += " AND label IN (SELECT value FROM json_each(?))"
        params.append(json.dumps(classes))
    for b in db.query(sql + " ORDER BY id", params):
        by_image[b["image_id"]].append(
            {"id": b["id"], "label": b["label"], "box": (b["x0"], b["y0"], b["x1"], b["y1"])}
        )
    for r in rows:
        r["boxes"] = by_image[r["id"]]


def _batches(db, sel: dict, after, remaining, batch, boxes_set, classes) -> Iterator[list]:
    page = max(batch * 64, 1024)
    while remaining is None or remaining > 0:
        take = page if remaining is None else min(page, remaining)
        rows = select_images(db, KIND, after=after, limit=take, **sel)
        if not rows:
            return
        _attach_boxes(db, rows, boxes_set, classes)
        for k in range(0, len(rows), batch):
            yield rows[k : k + batch]
        after = rows[-1]["id"]
        if remaining is not None:
            remaining -= len(rows)


class MaskChain:
    """Decode a batch's photos and run the annotator on their boxes (in worker threads)."""

    def __init__(self, annotator, config, max_side: int | None):
        self.annotator, self.config, self.max_side = annotator, config, max_side

    def _one(self, row: dict) -> dict:
        from ..images.layout import image_path

        try:
            d = decode(image_path(self.config, row), self.max_side, row.get("rotation"))
        except BadImage as e:
            return {"image_id": row["id"], "error": str(e)}
        except (NotFound, InvalidInput) as e:
            return {"image_id": row["id"], "error": f"missing: {e}"}
        boxes = row["boxes"]
        if not boxes:
            return {"image_id": row["id"], "masks": []}
        preds = self.annotator.predict_many(
            d.rgb, [d.box_to_decoded(b["box"]) for b in boxes], [b["label"] for b in boxes]
        )
        out = []
        for b, m in zip(boxes, preds, strict=True):
            full = mask_to_file(d, m)
            if full.any():
                out.append(
                    {"parent_id": b["id"], "label": b["label"], "box": b["box"], "mask": masks.encode(full)}
                )
        return {"image_id": row["id"], "masks": out}

    def run(self, rows: list[dict]) -> list[dict]:
        """One result per row: {"image_id", "error"} or {"image_id", "masks"}."""
        return [self._one(r) for r in rows]


def write_batch(
    db: Database, run_id: int, set_id: int, rows: list, results: list, done: int
) -> tuple[int, int]:
    """A batch's masks, run_errors, supersession and the run's cursor in one transaction."""
    from ..sets.supersede import supersede_batch

    errors = [{"image_id": r["image_id"], "reason": r["error"]} for r in results if "error" in r]
    with immediate(db):
        if errors:
            add_run_errors(db, run_id, errors)
        n = insert_annotations(
            db,
            [
                annotation_row(
                    set_id,
                    r["image_id"],
                    KIND,
                    m["box"],
                    label=m["label"],
                    parent_id=m["parent_id"],
                    mask=m["mask"],
                )
                for r in results
                for m in r.get("masks", [])
            ],
        )
        supersede_batch(db, {"mask": set_id}, (r["id"] for r in rows))
        set_progress(db, run_id, done + len(rows), cursor=rows[-1]["id"])
    return n, len(errors)


def run_kind(db: Database, run_id: int) -> str | None:
    """The kind of a bulk-annotate run (None when there is no such run)."""
    row = db.execute(
        "SELECT json_extract(params, '$.kind') FROM runs WHERE id = ? AND command = ?", [run_id, COMMAND]
    ).fetchone()
    return row[0] if row else None


def bulk_annotate_masks(
    db: Database,
    config,
    *,
    boxes_from: str | None = None,
    classes: list[str] | None = None,
    model: str | None = None,
    split: str | None = None,
    prefix: str | None = None,
    limit: int | None = None,
    images_file: str | None = None,
    resume: int | None = None,
    batch: int = 8,
    workers: int = 2,
    max_side: int | None = 1024,
    progress: bool = True,
    on_batch: Callable[[int], None] | None = None,
) -> dict:
    """Masks for the boxes of a set into a new object_mask set; returns the run's summary."""
    from tqdm import tqdm

    from ..models.registry import get_model
    from ..sets.queries import create_set, get_set_by_name
    from .local import _resumable_run, _stamp, summary

    if batch < 1 or workers < 1:
        raise InvalidInput("--batch and --workers must be at least 1")
    if resume is not None:
        run = _resumable_run(db, resume)
        p = json.loads(run["params"])
        split, prefix, limit, max_side = p["split"], p["prefix"], p["limit"], p["max_side"]
        image_ids, boxes_set, classes = p["image_ids"], p["boxes_set_id"], p.get("classes")
        set_id = int(p["sets"]["mask"])
        mask_model = get_model(db, p["kind_model_id"])
        run_id, done, cursor = run["id"], run["progress"], run["cursor"]
        claim_run(db, run_id)
    else:
        if boxes_from is None:
            raise InvalidInput(
                "--kind object_mask needs --boxes-from SET: the object_box (or face_box) set whose boxes get masks "
                "(`flask oiap sets list`)"
            )
        s = get_set_by_name(db, boxes_from)
        if s["kind"] not in ("object_box", "face_box"):
            raise InvalidInput(
                f"--boxes-from {boxes_from!r} holds {s['kind']}, not object_box or face_box boxes"
            )
        boxes_set = s["id"]
        mask_model = _chosen_model(db, model)
        _load(mask_model, 1)  # a model that cannot run fails here, before a run or a set exists
        image_ids = read_images_file(images_file) if images_file else None
        sel = {"split": split, "prefix": prefix, "image_ids": image_ids, "with_boxes_in": boxes_set}
        total = count_images(db, KIND, **sel)
        total = min(total, limit) if limit is not None else total
        params = {
            "kind": KIND,
            "split": split,
            "prefix": prefix,
            "limit": limit,
            "images_file": images_file,
            "image_ids": image_ids,
            "boxes_from": boxes_from,
            "boxes_set_id": boxes_set,
            "classes": classes,
            "max_side": max_side,
            "box_model_id": None,
            "kind_model_id": mask_model["id"],
        }
        run_id = start_run(db, COMMAND, params, total=total, model_id=mask_model["id"])
        with immediate(db):
            set_id = create_set(
                db,
                f"{mask_model['name']}-{KIND}-{_stamp()}-run{run_id}",
                KIND,
                "model",
                model_id=mask_model["id"],
                params={"run_id": run_id, "boxes_set_id": boxes_set, "classes": classes},
            )
            params["sets"] = {"mask": set_id}
            db.execute(
                "UPDATE runs SET params = ?, set_id = ? WHERE id = ?", [json.dumps(params), set_id, run_id]
            )
        done, cursor = 0, None

    sel = {"split": split, "prefix": prefix, "image_ids": image_ids, "with_boxes_in": boxes_set}
    total = db.execute("SELECT total FROM runs WHERE id = ?", [run_id]).fetchone()[0]
    remaining = None if limit is None else max(0, limit - done)
    chain = MaskChain(_load(mask_model, 1 if workers > 1 else None), config, max_side)
    n_ann = n_err = n_img = 0
    t_start = perf_counter()
    bar = tqdm(total=total, initial=done, unit="img", desc="bulk-annotate object_mask", disable=not progress)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bulk-masks")
    inflight: deque = deque()
    batches = _batches(db, sel, cursor, remaining, batch, boxes_set, classes)
    try:
        while True:
            while len(inflight) < workers * 2:
                rows = next(batches, None)
                if rows is None:
                    break
                inflight.append((rows, pool.submit(chain.run, rows)))
            if not inflight:
                break
            rows, fut = inflight.popleft()
            a, e = write_batch(db, run_id, set_id, rows, fut.result(), done)
            done += len(rows)
            n_ann, n_err, n_img = n_ann + a, n_err + e, n_img + len(rows)
            bar.update(len(rows))
            if on_batch:
                on_batch(done)
    except KeyboardInterrupt:
        finish_run(
            db,
            run_id,
            "interrupted",
            f"interrupted; continue with `flask oiap bulk-annotate --resume {run_id}`",
        )
        raise Interrupted(run_id) from None
    except BaseException as exc:
        finish_run(db, run_id, "failed", f"{type(exc).__name__}: {exc}; `--resume {run_id}` continues")
        raise
    finally:
        for _, fut in inflight:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    finish_run(db, run_id, "done")
    seconds = perf_counter() - t_start
    return summary(db, run_id) | {
        "engine": "local",
        "images_this_session": n_img,
        "annotations_this_session": n_ann,
        "errors_this_session": n_err,
        "seconds": round(seconds, 3),
        "images_per_s": round(n_img / seconds, 3) if seconds > 0 else None,
    }
