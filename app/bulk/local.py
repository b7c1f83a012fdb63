"""`flask oiap bulk-annotate`: run the active models over the data set into new model annotation sets.

Chains per kind:
- face_box: MTCNN boxes;
- face_landmarks5: MTCNN boxes and five points (each landmark row's parent_id is its box);
- face_landmarks68: boxes of the active face_box model (MTCNN, whose five points align the crop) or,
  with boxes_from, the boxes of an existing set (e.g. Open Images' human face boxes); then the active
  68-point annotator; parent_id is the box;
- object_box: the active object detector (or --model), every class it knows or those of --classes;
  one set per run, each box labelled with its class MID and its score;
- object_mask: the boxes of an existing set (--boxes-from, narrowed to --classes), a mask each by the
  active object_mask model (or --model), one set per run; parent_id is the box (app/bulk/masks.py).
Boxes a chain makes are written to a box set of their own, next to the set of the kind asked for.

Speed: a thread pool decodes and annotates whole batches (JPEGs decoded reduced when larger than
max_side; RNet/ONet see all faces of a batch at once); the main thread writes each batch in one
transaction, in selection (id) order.

Resume: images are taken in id order, and each batch's annotations, run_errors and the run's cursor
(the last image id of the batch) commit in one transaction. After Ctrl-C or kill -9, resume(run_id)
continues after the cursor, so no image is done twice or missed.
"""

import json
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from time import perf_counter, thread_time

from sqlite_utils import Database

from ..annotations.rows import annotation_row, insert_annotation, insert_annotations
from ..db import immediate
from ..errors import Interrupted, InvalidInput, NotFound
from ..kinds import FACE_LABEL
from ..runs import add_run_errors, claim_run, finish_run, set_progress, shown_status, start_run
from .chain import ChainSpec
from .engine_choice import choose_engine
from .selection import count_images, read_images_file, select_images

KINDS = ("face_box", "face_landmarks5", "face_landmarks68", "object_box", "object_mask")
COMMAND = "bulk-annotate"
DEFAULT_MAX_SIDE = 1024


# --- the pipeline ------------------------------------------------------------------------------


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _create_sets(db, run_id, kind, box_model, kind_model, boxes_from, classes=None) -> dict:
    from ..sets.queries import create_set

    stamp = _stamp()
    sets = {}
    if kind == "object_mask":
        # Masks of many classes, each labelled with its box's class.
        sets["mask"] = create_set(
            db,
            f"{kind_model['name']}-object_mask-{stamp}-run{run_id}",
            "object_mask",
            "model",
            model_id=kind_model["id"],
            params={"run_id": run_id, "boxes_set_id": boxes_from, "classes": classes},
        )
        return sets
    if kind == "object_box":
        # Boxes of many classes: the label is on each row, not on the set.
        sets["box"] = create_set(
            db,
            f"{box_model['name']}-object_box-{stamp}-run{run_id}",
            "object_box",
            "model",
            model_id=box_model["id"],
            params={"run_id": run_id, "classes": classes},
        )
        return sets
    if boxes_from is None:
        sets["box"] = create_set(
            db,
            f"{box_model['name']}-face_box-{stamp}-run{run_id}",
            "face_box",
            "model",
            label=FACE_LABEL,
            model_id=box_model["id"],
            params={"run_id": run_id},
        )
    if kind != "face_box":
        sets["points"] = create_set(
            db,
            f"{kind_model['name']}-{kind}-{stamp}-run{run_id}",
            kind,
            "model",
            label=FACE_LABEL,
            model_id=kind_model["id"],
            params={"run_id": run_id, "boxes_set_id": sets.get("box", boxes_from)},
        )
    return sets


def _write(db: Database, results: list[dict], kind: str, sets: dict, run_id: int) -> tuple[int, int]:
    """Rows of one batch, in the caller's transaction; returns (annotations, errors)."""
    errors = [{"image_id": r["image_id"], "reason": r["error"]} for r in results if "error" in r]
    if errors:
        add_run_errors(db, run_id, errors)
    n = 0
    if kind == "object_mask":
        rows = [
            annotation_row(
                sets["mask"],
                r["image_id"],
                "object_mask",
                f["box"],
                label=f["label"],
                parent_id=f["parent_id"],
                mask=f["mask"],
            )
            for r in results
            for f in r.get("faces", [])
        ]
        return insert_annotations(db, rows), len(errors)
    if kind in ("object_box", "face_box"):
        # An object detector labels each box with its class; a face detector's boxes are faces.
        rows = [
            annotation_row(
                sets["box"], r["image_id"], kind, f["box"], label=f.get("label", FACE_LABEL), score=f["score"]
            )
            for r in results
            for f in r.get("faces", [])
        ]
        return insert_annotations(db, rows), len(errors)
    key = "points5" if kind == "face_landmarks5" else "points68"
    for r in results:
        for f in r.get("faces", []):
            parent = f.get("parent_id")
            if parent is None:
                parent = insert_annotation(
                    db,
                    annotation_row(
                        sets["box"], r["image_id"], "face_box", f["box"], label=FACE_LABEL, score=f["score"]
                    ),
                )
                n += 1
            insert_annotation(
                db,
                annotation_row(
                    sets["points"],
                    r["image_id"],
                    kind,
                    f["box"],
                    f[key],
                    label=FACE_LABEL,
                    score=f["score"],
                    parent_id=parent,
                ),
            )
            n += 1
            if "points5" in sets and f.get("points5") is not None:
                insert_annotation(
                    db,
                    annotation_row(
                        sets["points5"],
                        r["image_id"],
                        "face_landmarks5",
                        f["box"],
                        f["points5"],
                        label=FACE_LABEL,
                        score=f["score"],
                        parent_id=parent,
                    ),
                )
                n += 1
    return n, len(errors)


def _batches(
    db, kind, sel: dict, after: str | None, remaining: int | None, batch: int, boxes_from, classes=None
) -> Iterator[list]:
    """Selected rows in id order, in batches, paging through the table (never the whole selection at once)."""
    page = max(batch * 64, 1024)
    while remaining is None or remaining > 0:
        take = page if remaining is None else min(page, remaining)
        rows = select_images(db, kind, after=after, limit=take, **sel)
        if not rows:
            return
        if boxes_from is not None:
            _attach_boxes(db, rows, boxes_from, classes)
        for k in range(0, len(rows), batch):
            yield rows[k : k + batch]
        after = rows[-1]["id"]
        if remaining is not None:
            remaining -= len(rows)


def _attach_boxes(db, rows, set_id, classes=None) -> None:
    """Each row's boxes of the set ({"id", "label", "box"}, in id order), only those of classes if given."""
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


def _models(db, kind, model=None):
    from ..models.builtin import ensure_builtin_models
    from ..models.registry import active_model

    ensure_builtin_models(db)
    if kind == "object_mask":
        from ..models.mask_models import ensure_mask_models

        ensure_mask_models(db)  # registers and activates the builtin row in its own transaction
        masker = _chosen_model(db, kind, model) if model is not None else active_model(db, kind)
        if masker is None:
            raise InvalidInput("no active model for object_mask; `flask oiap models activate ID`")
        return None, masker
    if kind == "object_box":
        detector = _chosen_model(db, kind, model) if model is not None else active_model(db, kind)
        if detector is None:
            raise InvalidInput("no active model for object_box; `flask oiap models activate ID`")
        return detector, detector
    if model is not None:
        raise InvalidInput(
            "--model is for --kind object_box and object_mask; other kinds run their active models"
        )
    box_model = active_model(db, "face_box")
    kind_model = active_model(db, kind) if kind != "face_box" else box_model
    if kind == "face_landmarks5":
        # Five points come with their detector's boxes: one model makes both sets.
        box_model = kind_model
    if box_model is None or kind_model is None:
        raise InvalidInput(f"no active model for {kind}; `flask oiap models activate ID`")
    return box_model, kind_model


def _chosen_model(db, kind: str, model: str) -> dict:
    """A model of the kind by id or name (the newest of that name); InvalidInput lists the kind's models."""
    from ..models.registry import get_model, list_models

    models = list_models(db, kind)
    for m in sorted(models, key=lambda m: -m["id"]):
        if str(m["id"]) == model or m["name"] == model:
            return get_model(db, m["id"])
    known = ", ".join(f"{m['id']} ({m['name']})" for m in models) or "none"
    raise InvalidInput(f"--model {model!r}: no {kind} model of that id or name; {kind} models: {known}")


def bulk_annotate(
    db: Database,
    config,
    kind: str = "face_box",
    *,
    split: str | None = None,
    prefix: str | None = None,
    limit: int | None = None,
    images_file: str | None = None,
    boxes_from: str | None = None,
    resume: int | None = None,
    batch: int = 8,
    workers: int = 2,
    max_side: int | None = DEFAULT_MAX_SIDE,
    progress: bool = True,
    with_landmarks5: bool = False,
    on_batch: Callable[[int], None] | None = None,
    engine: str = "auto",
    engine_options: dict | None = None,
    classes: list[str] | None = None,
    model: str | None = None,
    min_face_size: int | None = None,
) -> dict:
    """Annotate the selected images with the active models into new sets; returns the run's summary.

    with_landmarks5: the face_landmarks68 chain also writes the detector's five points as a
    face_landmarks5 set (free when the boxes come from MTCNN; `flask oiap demo` uses it).
    on_batch(images_done) is called after each committed batch (tests use it to interrupt a run).
    engine: "local" (threads here), "process" (spawned worker processes, app/bulk/process_engine.py),
    "ray" (app/bulk/ray_engine.py; engine_options: address, actor_cpus, ...) or "auto" (the default:
    process or local by the images left to do and the CPUs, app/bulk/engine_choice.py); all write
    through write_batch, so a run started by one can be resumed by another.
    min_face_size: the smallest face (pixels of the decoded image) MTCNN looks for in this run, instead
    of its model row's (20); 40 looks for the faces dlib's HOG detector finds at upsample 1, at less
    than half the CPU.
    classes (object_box, object_mask): the Open Images MIDs to keep; model (object_box, object_mask): a
    model id or name instead of the active one. object_mask needs boxes_from: the object_box or face_box
    set whose boxes get masks.
    """
    from tqdm import tqdm

    from ..models.registry import get_model

    if batch < 1 or workers < 1:
        raise InvalidInput("--batch and --workers must be at least 1")
    if min_face_size is not None and min_face_size < 12:
        raise InvalidInput(f"--min-face-size {min_face_size}: MTCNN looks at faces of 12 pixels and up")
    choose_engine(engine, 0, workers)  # an unknown engine is refused before a run is recorded
    if engine == "ray":
        from .ray_engine import check_address

        check_address((engine_options or {}).get("address"))  # before a run is recorded
    if resume is not None:
        run = _resumable_run(db, resume)
        p = json.loads(run["params"])
        kind, limit, max_side = p["kind"], p["limit"], p["max_side"]
        boxes_set, classes = p["boxes_set_id"], p.get("classes")
        sel = _selection(p)
        sets = {k: int(v) for k, v in p["sets"].items()}
        box_model = get_model(db, p["box_model_id"]) if p.get("box_model_id") else None
        kind_model = get_model(db, p["kind_model_id"])
        min_face_size = p.get("min_face_size")
        run_id, done, cursor = run["id"], run["progress"], run["cursor"]
        claim_run(db, run_id)
    else:
        if kind not in KINDS:
            raise InvalidInput(f"bulk-annotate does {', '.join(KINDS)}, not {kind!r}")
        if classes is not None and kind not in ("object_box", "object_mask"):
            raise InvalidInput("--classes is for --kind object_box and object_mask")
        boxes_set = boxes_set_id(db, kind, boxes_from)
        if kind == "object_mask" and min_face_size is not None:
            raise InvalidInput("--min-face-size is for MTCNN's face kinds, not object_mask")
        box_model, kind_model = _models(db, kind, model)
        _with_min_face(box_model, min_face_size)  # refused before the run starts
        if kind == "object_mask":
            from .masks import load_masker

            load_masker(kind_model, 1)  # a model that cannot run fails here, before a run or a set exists
        elif classes is not None:
            from ..models.builtin import load_annotator

            load_annotator(kind_model, 1, classes=classes)  # a class the model cannot give fails here
        if boxes_set is not None:
            box_model = None  # the set's boxes, not a detector's
        image_ids = read_images_file(images_file) if images_file else None
        params = {
            "kind": kind,
            "split": split,
            "prefix": prefix,
            "limit": limit,
            "images_file": images_file,
            "image_ids": image_ids,
            "boxes_from": boxes_from,
            "boxes_set_id": boxes_set,
            "max_side": max_side,
            "box_model_id": box_model["id"] if box_model else None,
            "kind_model_id": kind_model["id"],
            "classes": classes,
            "min_face_size": min_face_size,
        }
        sel = _selection(params)
        total = count_images(db, kind, **sel)
        total = min(total, limit) if limit is not None else total
        run_id = start_run(db, COMMAND, params, total=total, model_id=kind_model["id"])
        with immediate(db):
            sets = _create_sets(db, run_id, kind, box_model, kind_model, boxes_set, classes)
            if with_landmarks5 and kind == "face_landmarks68" and box_model is not None:
                sets["points5"] = _create_sets(
                    db, run_id, "face_landmarks5", box_model, box_model, sets["box"]
                )["points"]
            params["sets"] = sets
            db.execute(
                "UPDATE runs SET params = ?, set_id = ? WHERE id = ?",
                [json.dumps(params), sets.get("points", sets.get("box", sets.get("mask"))), run_id],
            )
        done, cursor = 0, None

    total = db.execute("SELECT total FROM runs WHERE id = ?", [run_id]).fetchone()[0]
    remaining = None if limit is None else max(0, limit - done)
    box_run = _with_min_face(box_model, min_face_size)
    engine = choose_engine(engine, max(0, (total or 0) - done), workers, config)  # total: limit included
    spec = ChainSpec(
        kind,
        box_run,
        kind_model if kind == "face_landmarks68" else None,
        max_side,
        boxes_set,
        classes,
        mask_model=kind_model if kind == "object_mask" else None,
    )
    if engine == "ray":
        from .ray_engine import RayEngine

        runner = RayEngine(spec, config, workers=workers, progress=progress, **(engine_options or {}))
    elif engine == "process":
        from .process_engine import ProcessEngine

        runner = ProcessEngine(spec, config, workers)
    else:
        runner = LocalEngine(spec, config, workers)
    n_ann = n_err = n_img = 0
    t_start = perf_counter()
    bar = tqdm(total=total, initial=done, unit="img", desc=f"bulk-annotate {kind}", disable=not progress)
    results = runner.results(_batches(db, kind, sel, cursor, remaining, batch, boxes_set, classes))
    try:
        for rows, batch_results in results:
            t0 = thread_time()
            a, e = write_batch(db, run_id, kind, sets, rows, batch_results, done)
            done += len(rows)
            runner.timer.add("db_write", thread_time() - t0)
            n_ann, n_err, n_img = n_ann + a, n_err + e, n_img + len(rows)
            bar.update(len(rows))
            if on_batch:
                on_batch(done)
    except KeyboardInterrupt:
        results.close()
        finish_run(
            db,
            run_id,
            "interrupted",
            f"interrupted; continue with `flask oiap bulk-annotate --resume {run_id}`",
        )
        bar.close()
        raise Interrupted(run_id) from None
    except BaseException as exc:
        results.close()
        finish_run(db, run_id, "failed", f"{type(exc).__name__}: {exc}; `--resume {run_id}` continues")
        bar.close()
        raise
    bar.close()
    finish_run(db, run_id, "done")
    seconds = perf_counter() - t_start
    return summary(db, run_id) | {
        "engine": engine,
        "images_this_session": n_img,
        "annotations_this_session": n_ann,
        "errors_this_session": n_err,
        "seconds": round(seconds, 3),
        "images_per_s": round(n_img / seconds, 3) if seconds > 0 else None,
        "profile_s": runner.profile(),
    }


def _selection(params: dict) -> dict:
    """select_images' narrowing from a run's stored params: a new run counts its total and a resumed one
    pages on from its cursor by the same dict. --classes narrow the images to those with a box of the
    classes in --boxes-from (object_mask), and the human rows and bad ratings that count to theirs."""
    return {
        "split": params["split"],
        "prefix": params["prefix"],
        "image_ids": params["image_ids"],
        "with_boxes_in": params["boxes_set_id"],
        "labels": params.get("classes"),
    }


def boxes_set_id(db: Database, kind: str, boxes_from: str | None) -> int | None:
    """The id of the set named by --boxes-from for a run of the kind (None without one), checked:
    InvalidInput or NotFound names the option and what is wrong. object_mask needs one; `loop` calls this
    before it trains, so a wrong or missing set fails in seconds, not after the training."""
    from ..sets.queries import get_set_by_name

    if boxes_from is not None and kind not in ("face_landmarks68", "object_mask"):
        raise InvalidInput("--boxes-from is for --kind face_landmarks68 and object_mask")
    if kind == "object_mask" and boxes_from is None:
        raise InvalidInput(
            "--kind object_mask needs --boxes-from SET: the object_box (or face_box) set whose boxes get "
            f"masks ({_box_sets(db)})"
        )
    if boxes_from is None:
        return None
    s = get_set_by_name(db, boxes_from)
    if kind == "object_mask" and s["kind"] not in ("object_box", "face_box"):
        raise InvalidInput(f"--boxes-from {boxes_from!r} holds {s['kind']}, not object_box or face_box boxes")
    if kind != "object_mask" and s["kind"] != "face_box":
        raise InvalidInput(f"--boxes-from {boxes_from!r} holds {s['kind']}, not face_box")
    return s["id"]


def _box_sets(db: Database) -> str:
    """The store's box sets by name, newest first, for the error that asks for one."""
    names = [
        r[0]
        for r in db.execute(
            "SELECT name FROM annotation_sets WHERE kind IN ('object_box', 'face_box') ORDER BY id DESC LIMIT 6"
        )
    ]
    if not names:
        return "this store has none yet: import or bulk-annotate object_box first"
    more = ", ..." if len(names) > 5 else ""
    return f"box sets here: {', '.join(names[:5])}{more}; `flask oiap sets list` shows them all"


def _with_min_face(box_model: dict | None, min_face_size: int | None) -> dict | None:
    """The box model's row with this run's smallest face size (MTCNN's rows only)."""
    if box_model is None or min_face_size is None:
        return box_model
    params = box_model.get("params") or {}
    if params.get("runner") != "mtcnn":
        raise InvalidInput(f"--min-face-size is for MTCNN; the active face_box model is {box_model['name']}")
    return box_model | {"params": params | {"min_face_size": min_face_size}}


def write_batch(db: Database, run_id: int, kind: str, sets: dict, rows: list, results: list, done: int):
    """Write one batch's annotations and run_errors, and move the run's cursor to its last image, in one
    transaction (what makes a run resumable without duplicates); returns (annotations, errors).
    The new rows supersede the older runs' unrated rows of the same faces in the same transaction."""
    from ..sets.supersede import supersede_batch

    with immediate(db):
        a, e = _write(db, results, kind, sets, run_id)
        supersede_batch(db, sets, (r["id"] for r in rows))
        set_progress(db, run_id, done + len(rows), cursor=rows[-1]["id"])
    return a, e


class LocalEngine:
    """Batches annotated by a thread pool in this process, yielded in selection order."""

    def __init__(self, spec: ChainSpec, config, workers: int):
        self.chain = spec.chain(config, 1 if workers > 1 else None)
        self.timer = self.chain.timer
        self.workers = workers

    def results(self, batches: Iterator[list]) -> Iterator[tuple[list, list]]:
        """(rows, results) per batch, in order; closing the generator stops the pool."""
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="bulk")
        inflight: deque = deque()
        try:
            while True:
                # Keep a few batches ahead so decoding and inference never wait on the writer.
                while len(inflight) < self.workers * 2:
                    rows = next(batches, None)
                    if rows is None:
                        break
                    inflight.append((rows, pool.submit(self.chain.run, rows)))
                if not inflight:
                    return
                rows, fut = inflight.popleft()
                yield rows, fut.result()
        finally:
            _stop(pool, inflight)

    def profile(self) -> dict:
        """Seconds per stage (and per MTCNN stage)."""
        detector = self.chain.detector
        return {k: round(v, 3) for k, v in self.timer.items()} | (
            {f"detect.{k}": round(v, 3) for k, v in detector.profile.items()}
            if detector is not None and hasattr(detector, "profile")
            else {}
        )


def _stop(pool, inflight) -> None:
    for _, fut in inflight:
        fut.cancel()
    pool.shutdown(wait=True, cancel_futures=True)


def _resumable_run(db, run_id: int) -> dict:
    rows = list(db.query("SELECT * FROM runs WHERE id = ?", [run_id]))
    if not rows or rows[0]["command"] != COMMAND:
        raise NotFound(f"no bulk-annotate run {run_id}; `flask oiap bulk-runs` lists them")
    if rows[0]["status"] == "done":
        raise InvalidInput(f"run {run_id} is done; nothing to resume")
    return rows[0]


def list_runs(db: Database) -> list[dict]:
    """Every bulk-annotate run, newest first: id, status, kind, progress, total, errors, times, pid, host.

    A run stored as running whose process on this host is gone (kill -9, a crash) shows as stopped.
    """
    rows = db.query(
        "SELECT r.id, r.status, json_extract(r.params, '$.kind') AS kind, r.progress, r.total, r.error,"
        " r.started_at, r.finished_at, (SELECT count(*) FROM run_errors e WHERE e.run_id = r.id) AS errors,"
        " r.pid, r.host, r.pid_start FROM runs r WHERE r.command = ? ORDER BY r.id DESC",
        [COMMAND],
    )
    return [r | {"status": shown_status(r["status"], r["pid"], r["host"], r["pid_start"])} for r in rows]


def summary(db: Database, run_id: int) -> dict:
    """A run's state: status, progress, sets with counts, errors by reason."""
    run = db.execute("SELECT * FROM runs WHERE id = ?", [run_id]).fetchone()
    cols = [d[0] for d in db.execute("SELECT * FROM runs LIMIT 0").description]
    run = dict(zip(cols, run, strict=True))
    params = json.loads(run["params"] or "{}")
    sets = {}
    for role, set_id in params.get("sets", {}).items():
        s = db.execute(
            "SELECT id, name, kind, n_total FROM annotation_sets WHERE id = ?", [set_id]
        ).fetchone()
        sets[role] = {"id": s[0], "name": s[1], "kind": s[2], "annotations": s[3]}
    reasons: dict[str, int] = {}
    samples = []
    for image_id, reason in db.execute(
        "SELECT image_id, reason FROM run_errors WHERE run_id = ? ORDER BY id", [run_id]
    ):
        key = reason.split(":", 1)[0]
        reasons[key] = reasons.get(key, 0) + 1
        if len(samples) < 10:
            samples.append(f"{image_id}: {reason}")
    return {
        "run_id": run_id,
        "status": run["status"],
        "kind": params.get("kind"),
        "images": run["progress"],
        "total": run["total"],
        "sets": sets,
        "errors": sum(reasons.values()),
        "errors_by_reason": reasons,
        "error_samples": samples,
    }


def annotate_demo(db: Database, config, progress: bool = False) -> dict | None:
    """Annotate the demo photos with the builtin models once: face boxes, five and 68 points, in one run.

    None when a bulk-annotate run already finished on this store (so `flask oiap demo` stays idempotent).
    """
    if db.execute("SELECT 1 FROM runs WHERE command = ? AND status = 'done'", [COMMAND]).fetchone():
        return None
    return bulk_annotate(db, config, "face_landmarks68", with_landmarks5=True, progress=progress)
