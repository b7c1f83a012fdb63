"""Benchmark bulk-annotate against a naive loop with the same models, on real-photo-sized JPEGs.

Makes N JPEGs of 1024 px on the long side (1024x768) in a temporary folder, each a 2x2 tiling of the
dev photos in app/demo_data (upscaled, in a different order and mirroring per image, so every file
is distinct), registers them in a temporary store, then in the same process:

- bulk: `bulk_annotate()` exactly as `flask oiap bulk-annotate` runs it (thread pool, reduced JPEG
  decoding when larger than --max-side, batched RNet/ONet, batched write transactions);
- naive: full decode, one image at a time, one onnxruntime thread, a Python loop per candidate
  (PNet cells, then a PIL crop+resize and one RNet/ONet call per candidate face), one write
  transaction per image; for the 68 chain, one landmark call per face.

- original: the original project's pipeline on the same files, one core (this process's main thread):
  dlib's decoder, its HOG frontal face detector at upsample 1 and, for face_landmarks68, its 68-point
  predictor per face (dlib-bin and Debian's libdlib-data, dev-only: requirements-dev.txt, `make test`).

Prints where the time goes (CPU seconds per stage; bulk's worker threads add up), images/s of bulk and
naive and their ratio, and on the last lines bulk against the original: images/s (wall) and images per
CPU-second with both ratios, and the faces each found, matched one to one at IoU >= 0.5.

    python scripts/bench_annotate.py                         # 200 images, face_box
    python scripts/bench_annotate.py --kind face_landmarks68 # the full chain: MTCNN + facemesh68
    python scripts/bench_annotate.py -n 40 --naive-n 20      # quicker
    python scripts/bench_annotate.py --no-original           # without dlib-bin
    python scripts/bench_annotate.py --kind object_box       # NanoDet (scripts/bench_objects.py)
"""

import argparse
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
            reg, prob = self.det._run("pnet", x)
            t0 = self._add("pnet", t0)
            rows = []
            for y, x in zip(*np.nonzero(prob[0, 1] >= self.det.thresholds[0]), strict=True):
                q1 = np.floor((2 * np.array([x, y]) + 1) / scale)
                q2 = np.floor((2 * np.array([x, y]) + 12) / scale)
                rows.append([*q1, *q2, prob[0, 1, y, x], *reg[0, :, y, x]])
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


def make_images(folder: Path, n: int, side: int = 1024, tiles: int = 4) -> list[Path]:
    """n distinct side x (3/4 side) JPEGs, each a 2x2 tiling of (upscaled) dev photos (about 19 faces an
    image), or with tiles=1 one dev photo upscaled to nearly the whole image (about 5 faces)."""
    photos = [Image.open(p).convert("RGB") for p in sorted((ROOT / "app" / "demo_data").glob("*.jpg"))]
    if tiles == 1:
        return _single_photo_images(folder, n, side, photos)
    tw, th = side // 2, side * 3 // 8
    tiles = [p.resize((tw, th), Image.Resampling.BICUBIC) for p in photos]
    flipped = [t.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for t in tiles]
    out = []
    for k in range(n):
        canvas = Image.new("RGB", (2 * tw, 2 * th), (k % 256, 90, 160))
        # A different tile order, mirroring and offset per image: every file (and image id) is distinct.
        dx, dy = k % 11, (k // 11) % 7
        for j in range(4):
            idx = (k * 7 + j * 3 + k // 9) % len(tiles)
            tile = (flipped if (k >> j) & 1 else tiles)[idx]
            canvas.paste(tile, ((j % 2) * tw + dx, (j // 2) * th + dy))
        p = folder / f"bench_{k:04d}.jpg"
        canvas.save(p, quality=90)
        out.append(p)
    return out


def _single_photo_images(folder: Path, n: int, side: int, photos: list) -> list[Path]:
    """n distinct JPEGs, each one dev photo (mirrored every other round) on a coloured canvas, at an offset."""
    w, h = side, side * 3 // 4
    inner = (w - 16, h - 12)
    scaled = [p.resize(inner, Image.Resampling.BICUBIC) for p in photos]
    out = []
    for k in range(n):
        photo = scaled[k % len(scaled)]
        if (k // len(scaled)) % 2:
            photo = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        canvas = Image.new("RGB", (w, h), (k % 256, 90, 160))
        canvas.paste(photo, ((k // 2) % 16, (k // 3) % 12))
        p = folder / f"bench_{k:04d}.jpg"
        canvas.save(p, quality=90)
        out.append(p)
    return out


def run_naive(db, paths_by_id: dict, kind: str, set_id: int) -> tuple[float, float, dict]:
    """The naive loop; returns (wall seconds, CPU seconds, CPU seconds per stage)."""
    from app.annotations.rows import annotation_row, insert_annotation
    from app.annotators.landmarks68 import DEFAULT_LANDMARKS68, get_landmarks68
    from app.db import immediate

    naive = NaiveMTCNN()
    lm = get_landmarks68(DEFAULT_LANDMARKS68) if kind == "face_landmarks68" else None
    w0, c0 = time.perf_counter(), time.process_time()
    for image_id, path in paths_by_id.items():
        t0 = time.process_time()
        with Image.open(path) as im:
            img = im.convert("RGB")
        naive.t["decode"] = naive.t.get("decode", 0.0) + time.process_time() - t0
        faces = naive.detect(img)
        rows = []
        t0 = time.process_time()
        arr = np.asarray(img) if lm else None
        for box, score, pts in faces:
            nb = (box[0] / img.width, box[1] / img.height, box[2] / img.width, box[3] / img.height)
            rows.append(annotation_row(set_id, image_id, "face_box", np.clip(nb, 0, 1), score=score))
            if lm is not None:
                p68 = lm.predict(arr, box, pts)  # one face at a time
                rows[-1]["_p68"] = p68 / [img.width, img.height]
        naive.t["landmarks68"] = naive.t.get("landmarks68", 0.0) + time.process_time() - t0
        t0 = time.process_time()
        with immediate(db):
            for r in rows:
                r.pop("_p68", None)
                insert_annotation(db, r)
        naive.t["db_write"] = naive.t.get("db_write", 0.0) + time.process_time() - t0
    return time.perf_counter() - w0, time.process_time() - c0, naive.t


def run_original(paths_by_id: dict, kind: str, predictor_path: str) -> tuple[float, float, dict, int]:
    """The original pipeline, one image after another in this thread; returns (wall s, CPU s, {image id:
    boxes as (x0, y0, x1, y1) pixels, x1 y1 exclusive}, 68-point shapes made)."""
    import dlib

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(predictor_path) if kind == "face_landmarks68" else None
    detector(dlib.load_rgb_image(str(next(iter(paths_by_id.values())))), 1)  # warm, outside the timing
    boxes, shapes = {}, 0
    w0, c0 = time.perf_counter(), time.process_time()
    for image_id, path in paths_by_id.items():
        img = dlib.load_rgb_image(str(path))
        rects = detector(img, 1)
        if predictor is not None:
            for r in rects:
                predictor(img, r).parts()
                shapes += 1
        boxes[image_id] = [(r.left(), r.top(), r.right() + 1, r.bottom() + 1) for r in rects]
    return time.perf_counter() - w0, time.process_time() - c0, boxes, shapes


def bulk_boxes(db, set_id: int, size: tuple[int, int]) -> dict:
    """{image id: face boxes in pixels} of a bulk-annotate box set (every bench image has one size)."""
    w, h = size
    out: dict = {}
    for r in db.query("SELECT image_id, x0, y0, x1, y1 FROM annotations WHERE set_id = ?", [set_id]):
        out.setdefault(r["image_id"], []).append((r["x0"] * w, r["y0"] * h, r["x1"] * w, r["y1"] * h))
    return out


def matched_faces(ours: dict, theirs: dict, ids) -> int:
    """Faces paired one to one between two detectors' boxes at IoU >= 0.5, over the images."""
    from app.models.eval_detector import match

    return sum(sum(j is not None for j in match(ours.get(i, []), theirs.get(i, []), 0.5)) for i in ids)


def main(argv=None) -> int:
    """Build the images and store, run bulk and naive, print the figures."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=200, help="images (default 200)")
    p.add_argument("--naive-n", type=int, default=None, help="images for the naive loop (default: all)")
    p.add_argument("--side", type=int, default=1024, help="long side in pixels (default 1024)")
    p.add_argument("--kind", choices=["face_box", "face_landmarks68", "object_box"], default="face_box")
    p.add_argument(
        "--classes", default=None, help="object_box: only these MIDs, comma-separated (default: all)"
    )
    p.add_argument(
        "--tiles",
        type=int,
        choices=[1, 4],
        default=4,
        help="dev photos per image: 4 (2x2, about 19 faces an image; default) or 1 (about 5)",
    )
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
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

        return run(args, make_images)
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
        paths = make_images(tmp / "img", args.n, args.side, args.tiles)
        print(
            f"made {len(paths)} JPEGs of {args.side}x{args.side * 3 // 4} in {time.perf_counter() - t:.1f} s"
        )
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
        ids = {}
        with db.conn:
            for path in paths:
                ids[register_image_file(db, path, "train")[0]] = path

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

        # Warm both paths (sessions, first-call allocation) on one image, outside the timings.
        M.MTCNN(threads=1).detect(np.asarray(Image.open(paths[0]).convert("RGB")))
        M.MTCNN().detect(np.asarray(Image.open(paths[0]).convert("RGB")))

        w0, c0 = time.perf_counter(), time.process_time()
        s = bulk_annotate(
            db, app.config, args.kind, batch=args.batch, workers=args.workers, max_side=args.max_side or None
        )
        bulk_wall, bulk_cpu = time.perf_counter() - w0, time.process_time() - c0
        n_faces = s["sets"]["box"]["annotations"]

        naive_ids = dict(list(ids.items())[: args.naive_n or len(ids)])
        set_id = create_set(db, "naive", "face_box", "model")
        db.conn.commit()
        naive_wall, naive_cpu, naive_t = run_naive(db, naive_ids, args.kind, set_id)
        naive_faces = db.execute("SELECT count(*) FROM annotations WHERE set_id = ?", [set_id]).fetchone()[0]

        bulk_ips = len(ids) / bulk_wall
        naive_ips = len(naive_ids) / naive_wall
        prof = s["profile_s"]
        stages = ["decode", "pyramid", "pnet", "crops", "rnet", "onet", "nms", "landmarks68", "db_write"]
        bulk_t = {k: prof.get(f"detect.{k}", prof.get(k, 0.0)) for k in stages}
        print(
            f"\nkind {args.kind}; bulk: {len(ids)} images, batch {args.batch}, {args.workers} workers; naive: {len(naive_ids)} images"
        )
        print(
            f"faces found: bulk {n_faces} ({n_faces / len(ids):.2f}/image), naive {naive_faces} ({naive_faces / len(naive_ids):.2f}/image)"
        )
        print(f"{'CPU s per image':<16} {'bulk':>8} {'naive':>8}")
        for k in stages:
            print(f"{k:<16} {bulk_t[k] / len(ids):>8.4f} {naive_t.get(k, 0.0) / len(naive_ids):>8.4f}")
        print(f"{'total CPU':<16} {bulk_cpu / len(ids):>8.4f} {naive_cpu / len(naive_ids):>8.4f}")
        print(f"{'wall':<16} {bulk_wall / len(ids):>8.4f} {naive_wall / len(naive_ids):>8.4f}")
        print(
            "(CPU seconds in the thread doing each stage; bulk's workers run in parallel, so its wall can be below its CPU)"
        )
        print(
            f"bulk {bulk_ips:.2f} images/s, naive {naive_ips:.2f} images/s, ratio {bulk_ips / naive_ips:.2f}x"
        )
        if not args.no_original:
            orig_wall, orig_cpu, orig_boxes, orig_shapes = run_original(ids, args.kind, args.predictor)
            ours_boxes = bulk_boxes(db, s["sets"]["box"]["id"], Image.open(paths[0]).size)
            n_orig = sum(len(v) for v in orig_boxes.values())
            both = matched_faces(ours_boxes, orig_boxes, ids)
            ours_cps, orig_cps = len(ids) / bulk_cpu, len(ids) / orig_cpu
            orig_ips = len(ids) / orig_wall
            what = "HOG detector at upsample 1" + (
                " + 68-point predictor" if args.kind == "face_landmarks68" else ""
            )
            print(
                f"\noriginal pipeline (dlib-bin {__import__('dlib').__version__}: {what}), one core, same {len(ids)} images"
            )
            print(f"{'':<10} {'images/s':>9} {'per CPU-s':>10} {'wall s':>8} {'CPU s':>8} {'faces':>6}")
            print(
                f"{'ours':<10} {bulk_ips:>9.2f} {ours_cps:>10.2f} {bulk_wall:>8.1f} {bulk_cpu:>8.1f} {n_faces:>6}"
            )
            print(
                f"{'original':<10} {orig_ips:>9.2f} {orig_cps:>10.2f} {orig_wall:>8.1f} {orig_cpu:>8.1f} {n_orig:>6}"
            )
            if args.kind == "face_landmarks68":
                n_pts = s["sets"]["points"]["annotations"]
                print(f"68-point shapes: ours {n_pts}, original {orig_shapes}")
            print(
                f"faces: ours {n_faces}, original {n_orig}, matched at IoU 0.5: {both} "
                f"({both / max(n_orig, 1):.1%} of the original's, {both / max(n_faces, 1):.1%} of ours)"
            )
            print(
                f"ours vs original: {bulk_ips / orig_ips:.2f}x images/s (wall, ours on {args.workers} workers, "
                f"original on 1 core), {ours_cps / orig_cps:.2f}x images per CPU-second"
            )
        db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
