"""Benchmark bulk-annotate against a naive loop with the same models, on real-photo-sized JPEGs.

Makes N JPEGs of 1024 px on the long side (1024x768) in a temporary folder, each a 2x2 tiling of the
dev photos in app/demo_data (upscaled, in a different order and mirroring per image, so every file
is distinct), registers them in a temporary store, then in the same process:

- bulk: `bulk_annotate()` exactly as `flask oiap bulk-annotate` runs it, once per `--engine` item
  (local: thread pool; process: worker processes, their start-up inside the timing; ENGINE@N: with
  --min-face-size N), each a full run over the same images;
- naive: full decode, one image at a time, one onnxruntime thread, a Python loop per candidate
  (PNet cells, then a PIL crop+resize and one RNet/ONet call per candidate face), one write
  transaction per image; for the 68 chain, one landmark call per face.
- original: the original project's pipeline on the same files, one core (this process's main thread):
  dlib's decoder, its HOG frontal face detector at upsample 1 and, for face_landmarks68, its 68-point
  predictor per face (dlib-bin and Debian's libdlib-data, dev-only: requirements-dev.txt, `make test`).

With --boxes-from openimages-human-face no detector runs: the reference boxes (below) are imported as
a face_box set of that name, as Open Images' own human face boxes would be, bulk-annotate puts 68
points on them (`--boxes-from`), the naive loop one face at a time, and the original pipeline its
predictor on the same boxes.

Reference faces: faces-dev's hand-drawn boxes (app/demo_data's XMLs, dlib's brow-to-chin squares)
carried through each image's resizing, mirroring and placement. A detector's faces are "found" when
they pair one to one with a reference face at IoU >= 0.5 (MTCNN's taller boxes still overlap dlib's
squares by more than 0.5 on these faces).

Prints where the time goes (CPU seconds per stage, summed over worker threads or processes), images/s
of each bulk run and naive and their ratio, and on the last lines each bulk run against the original:
images/s (wall) and images per CPU-second (this process and its ended children: the workers) with
both ratios, and the faces each found.

    python scripts/bench_annotate.py                         # 200 images, face_box
    python scripts/bench_annotate.py --kind face_landmarks68 -n 100 --tiles 1 --naive-n 20 \
        --engine local,process,process@40
    python scripts/bench_annotate.py --boxes-from openimages-human-face -n 100 --tiles 1 --engine process
    python scripts/bench_annotate.py -n 40 --naive-n 20      # quicker
    python scripts/bench_annotate.py --no-original           # without dlib-bin
    python scripts/bench_annotate.py --kind object_box       # NanoDet (scripts/bench_objects.py)
    python scripts/bench_annotate.py --kind object_box --model objectron   # Objectron's SSD
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.annotators import mtcnn as M  # noqa: E402


class NaiveMTCNN:
    """detect(PIL image) -> [(box_px, score, points5_px)], with a Python loop per candidate."""

    def __init__(self):
        self.det = M.MTCNN(threads=1)
        self.t = {}

    def _add(self, key, t0):
        t = time.process_time()
        self.t[key] = self.t.get(key, 0.0) + t - t0
        return t

    def _crop(self, img: Image.Image, row, size: int):
        x0, y0, x1, y1 = (int(np.trunc(v)) for v in row[:4])
        x0, y0 = max(x0, 1), max(y0, 1)
        x1, y1 = min(x1, img.width), min(y1, img.height)
        if y1 <= y0 - 1 or x1 <= x0 - 1:
            return None
        crop = img.crop((x0 - 1, y0 - 1, x1, y1)).resize((size, size), Image.Resampling.BOX)
        return M.to_input(np.asarray(crop, dtype=np.float32)[None])

    def detect(self, img: Image.Image):
        """Faces in one RGB PIL image."""
        w, h = img.size
        found = []
        t0 = time.process_time()
        for scale in self.det.scales(h, w):
            level = img.resize((int(w * scale + 1), int(h * scale + 1)), Image.Resampling.BOX)
            x = M.to_input(np.asarray(level, dtype=np.float32)[None])
            t0 = self._add("pyramid", t0)
            reg, ys, xs, score = self.det._pnet(x)
            t0 = self._add("pnet", t0)
            rows = []
            for y, x, p in zip(ys, xs, score, strict=True):
                q1 = np.floor((2 * np.array([x, y]) + 1) / scale)
                q2 = np.floor((2 * np.array([x, y]) + 12) / scale)
                rows.append([*q1, *q2, p, *reg[0, :, y, x]])
            if rows:
                rows = np.array(rows)
                found.append(rows[M.nms_greedy(rows[:, :4], rows[:, 4], 0.5)])
            t0 = self._add("nms", t0)
        if not found:
            return []
        rows = np.concatenate(found)
        rows = rows[M.nms_greedy(rows[:, :4], rows[:, 4], 0.7)]
        boxes = []
        for r in rows:
            bw, bh = r[2] - r[0], r[3] - r[1]
            boxes.append([r[0] + r[5] * bw, r[1] + r[6] * bh, r[2] + r[7] * bw, r[3] + r[8] * bh, r[4]])
        boxes = M.rerec(np.array(boxes))
        t0 = self._add("nms", t0)

        kept, regs = [], []
        for b in boxes:
            x = self._crop(img, b, 24)
            t0 = self._add("crops", t0)
            if x is None:
                continue
            reg, prob = self.det._run("rnet", x)
            t0 = self._add("rnet", t0)
            if prob[0, 1] > self.det.thresholds[1]:
                kept.append([*b[:4], prob[0, 1]])
                regs.append(reg[0])
        if not kept:
            return []
        b, reg = np.array(kept), np.array(regs)
        pick = M.nms_greedy(b[:, :4], b[:, 4], 0.7)
        b = M.rerec(M.bbreg(b[pick], reg[pick]))
        t0 = self._add("nms", t0)

        out = []
        for row in b:
            x = self._crop(img, row, 48)
            t0 = self._add("crops", t0)
            if x is None:
                continue
            reg, lm, prob = self.det._run("onet", x)
            t0 = self._add("onet", t0)
            if prob[0, 1] <= self.det.thresholds[2]:
                continue
            bw, bh = row[2] - row[0] + 1, row[3] - row[1] + 1
            pts = np.stack([bw * lm[0, :5] + row[0] - 1, bh * lm[0, 5:] + row[1] - 1], axis=1)
            box = M.bbreg(np.array([[*row[:4], prob[0, 1]]]), reg)[0]
            out.append((box, pts))
        if not out:
            return []
        boxes = np.array([o[0] for o in out])
        pick = M.nms_greedy(boxes[:, :4], boxes[:, 4], 0.7, "min")
        self._add("nms", t0)
        return [(tuple(boxes[i, :4]), float(boxes[i, 4]), out[i][1]) for i in pick]


def _dev_photos() -> list[tuple[Image.Image, list]]:
    """The dev photos with their hand-drawn face boxes (faces-dev's XMLs, dlib's brow-to-chin squares)."""
    from app.models.eval_detector import DEMO_DATA, dev_faces

    faces = dev_faces(DEMO_DATA)
    return [
        (Image.open(p).convert("RGB"), [f.box for f in faces.get(p.name, [])])
        for p in sorted(DEMO_DATA.glob("*.jpg"))
    ]


def _placed(boxes, src: tuple[int, int], size: tuple[int, int], at: tuple[int, int], flip: bool, canvas):
    """Boxes of a photo of size src, resized to size, mirrored when flip, pasted at `at` on a canvas of
    size `canvas`: clipped to the canvas, dropped when less than half of a box is left."""
    sx, sy = size[0] / src[0], size[1] / src[1]
    out = []
    for x0, y0, x1, y1 in boxes:
        x0, x1 = x0 * sx, x1 * sx
        if flip:
            x0, x1 = size[0] - x1, size[0] - x0
        b = (x0 + at[0], y0 * sy + at[1], x1 + at[0], y1 * sy + at[1])
        c = (max(b[0], 0), max(b[1], 0), min(b[2], canvas[0]), min(b[3], canvas[1]))
        if (
            c[2] > c[0]
            and c[3] > c[1]
            and (c[2] - c[0]) * (c[3] - c[1]) >= 0.5 * (b[2] - b[0]) * (b[3] - b[1])
        ):
            out.append(c)
    return out


def make_images(folder: Path, n: int, side: int = 1024, tiles: int = 4) -> tuple[list[Path], list[list]]:
    """n distinct side x (3/4 side) JPEGs, each a 2x2 tiling of (upscaled) dev photos (about 19 faces an
    image), or with tiles=1 one dev photo upscaled to nearly the whole image (about 5 faces); and each
    image's reference face boxes in pixels (the dev photos' hand-drawn boxes carried along)."""
    photos = _dev_photos()
    if tiles == 1:
        return _single_photo_images(folder, n, side, photos)
    tw, th = side // 2, side * 3 // 8
    tiles = [p.resize((tw, th), Image.Resampling.BICUBIC) for p, _ in photos]
    flipped = [t.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for t in tiles]
    out, refs = [], []
    for k in range(n):
        canvas = Image.new("RGB", (2 * tw, 2 * th), (k % 256, 90, 160))
        # A different tile order, mirroring and offset per image: every file (and image id) is distinct.
        dx, dy = k % 11, (k // 11) % 7
        placed = []
        for j in range(4):
            idx = (k * 7 + j * 3 + k // 9) % len(tiles)
            flip = bool((k >> j) & 1)
            tile = (flipped if flip else tiles)[idx]
            at = ((j % 2) * tw + dx, (j // 2) * th + dy)
            canvas.paste(tile, at)
            # A later tile covers what an earlier one put under it.
            placed = [b for b in placed if not _inside(b, at, (tw, th))]
            placed += _placed(photos[idx][1], photos[idx][0].size, (tw, th), at, flip, canvas.size)
        p = folder / f"bench_{k:04d}.jpg"
        canvas.save(p, quality=90)
        out.append(p)
        refs.append(placed)
    return out, refs


def _inside(b, at, size) -> bool:
    """Whether most of box b lies under a tile pasted at `at`."""
    ix = max(0.0, min(b[2], at[0] + size[0]) - max(b[0], at[0]))
    iy = max(0.0, min(b[3], at[1] + size[1]) - max(b[1], at[1]))
    return ix * iy >= 0.5 * (b[2] - b[0]) * (b[3] - b[1])


def _single_photo_images(folder: Path, n: int, side: int, photos: list) -> tuple[list[Path], list[list]]:
    """n distinct JPEGs, each one dev photo (mirrored every other round) on a coloured canvas, at an
    offset; and their reference boxes."""
    w, h = side, side * 3 // 4
    inner = (w - 16, h - 12)
    scaled = [p.resize(inner, Image.Resampling.BICUBIC) for p, _ in photos]
    out, refs = [], []
    for k in range(n):
        idx = k % len(scaled)
        photo = scaled[idx]
        flip = bool((k // len(scaled)) % 2)
        if flip:
            photo = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        canvas = Image.new("RGB", (w, h), (k % 256, 90, 160))
        at = ((k // 2) % 16, (k // 3) % 12)
        canvas.paste(photo, at)
        p = folder / f"bench_{k:04d}.jpg"
        canvas.save(p, quality=90)
        out.append(p)
        refs.append(_placed(photos[idx][1], photos[idx][0].size, inner, at, flip, (w, h)))
    return out, refs


def cpu_seconds() -> float:
    """CPU seconds of this process and of its children that have ended (the process engine's workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def run_naive(db, paths_by_id: dict, kind: str, set_id: int, given: dict | None = None):
    """The naive loop; returns (wall seconds, CPU seconds, CPU seconds per stage). With given boxes
    ({image id: boxes in pixels}) no detector runs: 68 points on each given box, one face at a time."""
    from app.annotations.rows import annotation_row, insert_annotation
    from app.annotators.landmarks68 import DEFAULT_LANDMARKS68, get_landmarks68
    from app.db import immediate

    naive = NaiveMTCNN()
    lm = get_landmarks68(DEFAULT_LANDMARKS68) if kind == "face_landmarks68" else None
    w0, c0 = time.perf_counter(), cpu_seconds()
    for image_id, path in paths_by_id.items():
        t0 = time.process_time()
        with Image.open(path) as im:
            img = im.convert("RGB")
        naive.t["decode"] = naive.t.get("decode", 0.0) + time.process_time() - t0
        if given is None:
            faces = naive.detect(img)
        else:
            faces = [(b, None, None) for b in given.get(image_id, [])]
        rows = []
        t0 = time.process_time()
        arr = np.asarray(img) if lm else None
        for box, score, pts in faces:
            nb = (box[0] / img.width, box[1] / img.height, box[2] / img.width, box[3] / img.height)
            rows.append(annotation_row(set_id, image_id, "face_box", np.clip(nb, 0, 1), score=score))
            if lm is not None:
                lm.predict(arr, box, pts)  # one face at a time
        naive.t["landmarks68"] = naive.t.get("landmarks68", 0.0) + time.process_time() - t0
        t0 = time.process_time()
        with immediate(db):
            for r in rows:
                insert_annotation(db, r)
        naive.t["db_write"] = naive.t.get("db_write", 0.0) + time.process_time() - t0
    return time.perf_counter() - w0, cpu_seconds() - c0, naive.t


def run_original(paths_by_id: dict, kind: str, predictor_path: str, given: dict | None = None):
    """The original pipeline, one image after another in this thread; returns (wall s, CPU s, {image id:
    boxes as (x0, y0, x1, y1) pixels, x1 y1 exclusive}, 68-point shapes made). With given boxes, its
    68-point predictor runs on them and no detector."""
    import dlib

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(predictor_path) if kind == "face_landmarks68" else None
    detector(dlib.load_rgb_image(str(next(iter(paths_by_id.values())))), 1)  # warm, outside the timing
    boxes, shapes = {}, 0
    w0, c0 = time.perf_counter(), cpu_seconds()
    for image_id, path in paths_by_id.items():
        img = dlib.load_rgb_image(str(path))
        if given is None:
            rects = detector(img, 1)
        else:
            rects = [
                dlib.rectangle(*(round(v) for v in b[:2]), *(round(v) - 1 for v in b[2:]))
                for b in given[image_id]
            ]
        if predictor is not None:
            for r in rects:
                predictor(img, r).parts()
                shapes += 1
        boxes[image_id] = [(r.left(), r.top(), r.right() + 1, r.bottom() + 1) for r in rects]
    return time.perf_counter() - w0, cpu_seconds() - c0, boxes, shapes


def bulk_boxes(db, set_id: int, size: tuple[int, int]) -> dict:
    """{image id: face boxes in pixels} of a bulk-annotate box set (every bench image has one size)."""
    w, h = size
    out: dict = {}
    for r in db.query("SELECT image_id, x0, y0, x1, y1 FROM annotations WHERE set_id = ?", [set_id]):
        out.setdefault(r["image_id"], []).append((r["x0"] * w, r["y0"] * h, r["x1"] * w, r["y1"] * h))
    return out


def matched_faces(ours: dict, theirs: dict, ids, threshold: float = 0.5) -> int:
    """Faces paired one to one between two sets of boxes at IoU >= threshold, over the images."""
    from app.models.eval_detector import match

    return sum(sum(j is not None for j in match(theirs.get(i, []), ours.get(i, []), threshold)) for i in ids)


def add_given_boxes(db, refs: dict, size: tuple[int, int]) -> None:
    """The set `openimages-human-face` (face_box, an import): the reference boxes, as Open Images' own
    human face boxes would be imported."""
    from app.annotations.rows import annotation_row, insert_annotations
    from app.db import immediate
    from app.kinds import FACE_LABEL
    from app.sets.queries import create_set

    w, h = size
    with immediate(db):
        set_id = create_set(db, "openimages-human-face", "face_box", "import", label=FACE_LABEL)
        insert_annotations(
            db,
            [
                annotation_row(
                    set_id, i, "face_box", (b[0] / w, b[1] / h, b[2] / w, b[3] / h), label=FACE_LABEL
                )
                for i, boxes in refs.items()
                for b in boxes
            ],
        )


def main(argv=None) -> int:
    """Build the images and store, run bulk (per engine), naive and the original, print the figures."""
    from app.bulk.engine_choice import CHOICES as ENGINES
    from app.bulk.local import KINDS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=200, help="images (default 200)")
    p.add_argument(
        "--naive-n", type=int, default=None, help="images for the naive loop (default: all; 0: none)"
    )
    p.add_argument("--side", type=int, default=1024, help="long side in pixels (default 1024)")
    p.add_argument("--kind", choices=[k for k in KINDS if k != "face_landmarks5"], default="face_box")
    p.add_argument(
        "--classes", default=None, help="object_box: only these MIDs, comma-separated (default: all)"
    )
    p.add_argument(
        "--boxes-from",
        choices=["openimages-human-face"],
        help="68 points on given boxes (an imported face_box set of that name, made from the reference "
        "boxes, as Open Images' human face boxes): no detector runs; implies --kind face_landmarks68",
    )
    p.add_argument(
        "--tiles",
        type=int,
        choices=[1, 4],
        default=4,
        help="dev photos per image: 4 (2x2, about 19 faces an image; default) or 1 (about 5)",
    )
    p.add_argument(
        "--model", default=None, help="object_box: a builtin detector by name (default: the active, nanodet)"
    )
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--engine",
        default="local",
        help=f"bulk runs, comma-separated, each a full run on the same images: ENGINE ({', '.join(e for e in ENGINES if e != 'ray')}) "
        "or ENGINE@N (MTCNN's smallest face N px, bulk-annotate --min-face-size), e.g. local,process,process@40 "
        "(default local)",
    )
    p.add_argument("--max-side", type=int, default=1024, help="bulk's --max-side (default 1024, as the CLI)")
    p.add_argument(
        "--predictor",
        default="/usr/share/dlib/shape_predictor_68_face_landmarks.dat",
        help="the original pipeline's 68-point .dat (default: Debian's libdlib-data file)",
    )
    p.add_argument("--no-original", action="store_true", help="skip the original pipeline (needs dlib-bin)")
    p.add_argument(
        "--landmarks-dat",
        metavar="PATH",
        help="bulk's 68 points from dlib's predictor in this .dat (our numpy port, app/annotators/dlib68.py) "
        "instead of the default model; the naive loop keeps the default",
    )
    args = p.parse_args(argv)
    if args.kind == "object_box":
        # No original pipeline to compare with: the original project had no object detector.
        from bench_objects import run

        return run(args, lambda *a: make_images(*a)[0])
    engines = [e.strip() for e in args.engine.split(",") if e.strip()]
    bad = [
        e
        for e in engines
        if e.partition("@")[0] not in ENGINES
        or e.startswith("ray")
        or not (e.partition("@")[2] or "0").isdigit()
    ]
    if bad or not engines:
        p.error(f"--engine {args.engine!r}: give auto, local, process, or one of them @N, comma-separated")
    if args.boxes_from:
        args.kind = "face_landmarks68"
    if not args.no_original:
        try:
            import dlib  # noqa: F401
        except ImportError:
            p.error("dlib-bin is not installed: pip install -r requirements-dev.txt, or pass --no-original")
        if args.kind == "face_landmarks68" and not Path(args.predictor).is_file():
            p.error(
                f"--predictor {args.predictor} does not exist: apt-get install libdlib-data, or give its path"
            )

    from app import create_app
    from app.bulk.local import bulk_annotate
    from app.db import connect, migrate
    from app.imports.folder import register_image_file
    from app.sets.queries import create_set

    with tempfile.TemporaryDirectory(prefix="oiap-bench-") as tmp:
        tmp = Path(tmp)
        (tmp / "img").mkdir()
        t = time.perf_counter()
        paths, ref_list = make_images(tmp / "img", args.n, args.side, args.tiles)
        size = Image.open(paths[0]).size
        print(f"made {len(paths)} JPEGs of {size[0]}x{size[1]} in {time.perf_counter() - t:.1f} s")
        app = create_app(
            {
                "TESTING": True,
                "INSTANCE_PATH": str(tmp / "inst"),
                "DATABASE": str(tmp / "b.db"),
                "SECRET_KEY": "x",
            }
        )
        db = connect(app.config["DATABASE"])
        migrate(db)
        ids, refs = {}, {}
        with db.conn:
            for path, boxes in zip(paths, ref_list, strict=True):
                image_id = register_image_file(db, path, "train")[0]
                ids[image_id], refs[image_id] = path, boxes
        n_ref = sum(len(v) for v in refs.values())
        given = refs if args.boxes_from else None
        if args.boxes_from:
            add_given_boxes(db, refs, size)

        if args.landmarks_dat:
            from app.models.builtin import ensure_builtin_models, load_annotator
            from app.models.dlib68 import add_dlib_predictor
            from app.models.registry import activate_model, get_model

            ensure_builtin_models(db)
            t = time.perf_counter()
            model_id = add_dlib_predictor(
                db, args.landmarks_dat, "face_landmarks68", app.config["MODELS_DIR"]
            )
            activate_model(db, model_id)
            db.conn.commit()
            load_annotator(get_model(db, model_id))  # read once, outside the timings, as a worker would
            print(
                f"bulk's 68 points: dlib68 from {args.landmarks_dat} (read in {time.perf_counter() - t:.1f} s)"
            )

        # Warm this process's sessions (first-call allocation) on one image, outside the timings; the
        # process engine's workers start (spawn, imports, sessions) inside its timing.
        M.MTCNN(threads=1).detect(np.asarray(Image.open(paths[0]).convert("RGB")))
        M.MTCNN().detect(np.asarray(Image.open(paths[0]).convert("RGB")))

        runs = {}
        for variant in engines:
            engine, _, min_face = variant.partition("@")
            w0, c0 = time.perf_counter(), cpu_seconds()
            s = bulk_annotate(
                db,
                app.config,
                args.kind,
                batch=args.batch,
                workers=args.workers,
                max_side=args.max_side or None,
                boxes_from=args.boxes_from,
                engine=engine,
                progress=False,
                min_face_size=int(min_face) if min_face else None,
            )
            wall, cpu = time.perf_counter() - w0, cpu_seconds() - c0
            if args.boxes_from:
                found = n_faces = s["sets"]["points"]["annotations"]
                boxes = refs
            else:
                n_faces = s["sets"]["box"]["annotations"]
                boxes = bulk_boxes(db, s["sets"]["box"]["id"], size)
                found = matched_faces(boxes, refs, ids)
            if engine == "auto":  # say what auto chose: auto:process@40
                variant = variant.replace("auto", f"auto:{s['engine']}")
            runs[variant] = {
                "wall": wall,
                "cpu": cpu,
                "s": s,
                "faces": n_faces,
                "found": found,
                "boxes": boxes,
            }

        naive_n = len(ids) if args.naive_n is None else args.naive_n
        naive_ids = dict(list(ids.items())[:naive_n])
        if naive_ids:
            set_id = create_set(db, "naive", "face_box", "model")
            db.conn.commit()
            naive_wall, naive_cpu, naive_t = run_naive(db, naive_ids, args.kind, set_id, given)
            naive_faces = db.execute(
                "SELECT count(*) FROM annotations WHERE set_id = ?", [set_id]
            ).fetchone()[0]
            naive_ips = len(naive_ids) / naive_wall

        if naive_ids:
            print(f"naive: {naive_faces} faces ({naive_faces / len(naive_ids):.2f}/image)")
        stages = "decode integral pyramid pnet crops rnet onet nms landmarks68 db_write".split()
        print(
            f"\nkind {args.kind}{' on given boxes (' + args.boxes_from + ')' if args.boxes_from else ''}; "
            f"bulk: {len(ids)} images, batch {args.batch}, {args.workers} workers; naive: {len(naive_ids)} images"
        )
        print(
            f"reference faces (faces-dev's hand-drawn boxes carried into the images): {n_ref} ({n_ref / len(ids):.2f}/image)"
        )
        cols = list(runs) + (["naive"] if naive_ids else [])
        print(f"{'CPU s per image':<16}" + "".join(f" {c:>8}" for c in cols))
        for k in stages:
            vals = []
            for r in runs.values():
                prof = r["s"]["profile_s"]
                vals.append(prof.get(f"detect.{k}", prof.get(k, 0.0)) / len(ids))
            if naive_ids:
                vals.append(naive_t.get(k, 0.0) / len(naive_ids))
            print(f"{k:<16}" + "".join(f" {v:>8.4f}" for v in vals))
        tot = [r["cpu"] / len(ids) for r in runs.values()] + (
            [naive_cpu / len(naive_ids)] if naive_ids else []
        )
        wal = [r["wall"] / len(ids) for r in runs.values()] + (
            [naive_wall / len(naive_ids)] if naive_ids else []
        )
        print(f"{'total CPU':<16}" + "".join(f" {v:>8.4f}" for v in tot))
        print(f"{'wall':<16}" + "".join(f" {v:>8.4f}" for v in wal))
        print(
            "(CPU seconds in the thread or process doing each stage, summed over workers; total CPU includes "
            "every thread and the process engine's workers, start-up included)"
        )
        for e, r in runs.items():
            ips = len(ids) / r["wall"]
            line = f"bulk ({e}) {ips:.2f} images/s"
            if naive_ids:
                line += f", naive {naive_ips:.2f} images/s, ratio {ips / naive_ips:.2f}x"
            print(line)
        if args.no_original:
            db.close()
            return 0
        orig_wall, orig_cpu, orig_boxes, orig_shapes = run_original(ids, args.kind, args.predictor, given)
        n_orig = sum(len(v) for v in orig_boxes.values())
        orig_found = n_orig if given else matched_faces(orig_boxes, refs, ids)
        orig_ips, orig_cps = len(ids) / orig_wall, len(ids) / orig_cpu
        what = (
            "68-point predictor on the given boxes"
            if given
            else "HOG detector at upsample 1"
            + (" + 68-point predictor" if args.kind == "face_landmarks68" else "")
        )
        print(
            f"\noriginal pipeline (dlib-bin {__import__('dlib').__version__}: {what}), one core, same {len(ids)} images"
        )
        print(
            f"{'':<16} {'images/s':>9} {'per CPU-s':>10} {'wall s':>8} {'CPU s':>8} {'faces':>6} {'found':>6}"
        )
        for e, r in runs.items():
            print(
                f"{'ours (' + e + ')':<16} {len(ids) / r['wall']:>9.2f} {len(ids) / r['cpu']:>10.2f} "
                f"{r['wall']:>8.1f} {r['cpu']:>8.1f} {r['faces']:>6} {r['found']:>6}"
            )
        print(
            f"{'original':<16} {orig_ips:>9.2f} {orig_cps:>10.2f} {orig_wall:>8.1f} {orig_cpu:>8.1f} {n_orig:>6} {orig_found:>6}"
        )
        if args.kind == "face_landmarks68":
            shapes = ", ".join(f"{e} {r['s']['sets']['points']['annotations']}" for e, r in runs.items())
            print(f"68-point shapes: ours ({shapes}), original {orig_shapes}")
        print(
            f"found: faces matched one to one at IoU >= 0.5 to the {n_ref} reference faces (faces-dev's hand-drawn "
            "boxes, carried into each image)"
            + ("; on given boxes every given box is a face" if given else "")
        )
        for e, r in runs.items():
            ips, cps = len(ids) / r["wall"], len(ids) / r["cpu"]
            print(
                f"ours ({e}) vs original: {ips / orig_ips:.2f}x images/s (wall, ours on {args.workers} workers, "
                f"original on 1 core), {cps / orig_cps:.2f}x images per CPU-second; faces found "
                f"{r['found']} vs {orig_found} of {n_ref}"
            )
        db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
