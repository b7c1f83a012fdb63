"""MTCNN face detector (boxes, scores, five landmarks) on onnxruntime and numpy, no torch.

Follows facenet-pytorch 2.6.0's detect_face step for step (min_face_size 20, factor 0.709, (x - 127.5) *
0.0078125 on NCHW RGB), so its weights behave as they were trained; one setting differs: PNet's
threshold (THRESHOLDS below).
Every resize is torch's "area" interpolation (adaptive average pooling), computed exactly from one
integral image per picture: the pyramid levels and every RNet/ONet crop are gathers over it, for all
candidates at once, with no per-candidate loop or PIL call. RNet and ONet each see all candidates of
all images of a batch in one run.
"""

import threading
from collections.abc import Sequence
from pathlib import Path
from time import thread_time

import numpy as np

from .session import session

MODELS_DIR = Path(__file__).resolve().parent / "models"
FILES = {"pnet": "pnet.onnx", "rnet": "rnet.onnx", "onet": "onet.onnx"}

# facenet-pytorch's defaults and preprocessing, the constants the weights were trained with, except
# PNet's threshold: 0.7 where facenet has 0.6. PNet's candidates are what RNet and the crops cost (630
# an image of 1024 px at 0.6, 450 at 0.7: 0.254 -> 0.201 CPU s an image for the 68-point chain), and
# on faces-dev's training file 0.7 finds the same faces at every size down to 20 px with the same NME
# from MTCNN (0.05531 at both); 0.75 moves a face's box (NME 0.087 -> 0.105).
# scripts/eval_pnet_threshold.py.
MIN_FACE_SIZE = 20
THRESHOLDS = (0.7, 0.7, 0.7)
FACTOR = 0.709
MEAN = 127.5
SCALE = 0.0078125

# Candidates per onnxruntime call: CPU per candidate is lowest where a call's activations stay in a
# core's 1 MB L2 (measured on the bench images: RNet 32 .054 s/image vs 64 .060, 256 .077; ONet 4 .049
# vs 16 .055, 32 .067).
CHUNK = {"rnet": 32, "onet": 4}

# Packed integral image: R + G * 2**21 + B * 2**42 in one int64 per pixel. Box sums are linear, so the
# four-corner sum of packed values (mod 2**64) is the packed box sum, exact while every channel's box
# sum stays below 2**21; one 8-byte gather then serves all three channels (np.take's fast path), where
# (pixels, 3) int32 rows take 12-byte copies: crops 24 -> 16.5 ms/image, integral 8.4 -> 4.8 ms.
PACK_BITS = 21
_MASK = (1 << PACK_BITS) - 1


def integral(img: np.ndarray, packed: bool | None = None) -> np.ndarray:
    """Integral image for area_crops: packed (H+1, W+1) int64 when every crop bin's sum fits PACK_BITS
    (images up to about 2000 px a side), else (H+1, W+1, 3) (int32 while it cannot overflow)."""
    h, w, c = img.shape
    if packed is None:
        # A bin of a crop resized to 24 (RNet, the smaller size) spans at most ceil(side / 24) + 1 pixels.
        packed = 255 * (-(-h // 24) + 1) * (-(-w // 24) + 1) < 2**PACK_BITS
    if packed:
        ii = np.zeros((h + 1, w + 1), dtype=np.int64)
        v = ii[1:, 1:]
        np.left_shift(img[..., 2], 2 * PACK_BITS, out=v, dtype=np.int64)
        v += np.left_shift(img[..., 1], PACK_BITS, dtype=np.int64)
        v += img[..., 0]
    else:
        dtype = np.int32 if h * w * 255 < 2**31 else np.int64
        ii = np.zeros((h + 1, w + 1, c), dtype=dtype)
        v = ii[1:, 1:]
        v[...] = img
    np.cumsum(v, axis=1, out=v)
    # Down the rows one row-add at a time: numpy's cumsum along axis 0 walks each column with a
    # row-sized stride, several times slower.
    for y in range(1, h + 1):
        np.add(ii[y], ii[y - 1], out=ii[y])
    return ii


def _bins(start: np.ndarray, length: np.ndarray, out: int) -> tuple[np.ndarray, np.ndarray]:
    # torch adaptive_avg_pool bins: [floor(i*L/out), ceil((i+1)*L/out)), shifted by start.
    i = np.arange(out)
    length = length[:, None]
    lo = (i * length) // out
    hi = -((-(i + 1) * length) // out)
    return start[:, None] + lo, start[:, None] + hi


def area_crops(ii: np.ndarray, y0, y1, x0, x1, size: int, out: np.ndarray | None = None) -> np.ndarray:
    """Area-resize the crops [y0, y1) x [x0, x1) (int arrays, N) of an integral() image to normalised
    NCHW (N, 3, size, size) (into out when given)."""
    y0, y1, x0, x1 = (np.asarray(a, dtype=np.int64) for a in (y0, y1, x0, x1))
    n = len(y0)
    if out is None:
        out = np.empty((n, 3, size, size), dtype=np.float32)
    rs, re = _bins(y0, y1 - y0, size)
    cs, ce = _bins(x0, x1 - x0, size)
    # Mean, then (x - MEAN) * SCALE, folded into one multiply and one subtract.
    k = (SCALE / ((re - rs)[:, :, None] * (ce - cs)[:, None, :])).astype(np.float32)
    w1 = ii.shape[1]
    rs, re = (rs * w1).astype(np.int32)[:, :, None], (re * w1).astype(np.int32)[:, :, None]
    cs, ce = cs.astype(np.int32)[:, None, :], ce.astype(np.int32)[:, None, :]
    packed = ii.ndim == 2
    # np.take on a flat (or (pixels, 3)) view is several times faster than 2-D fancy indexing; in
    # chunks of ~128 24x24 crops its temporaries stay in cache (whole batches measured 15% slower).
    px = ii.reshape(-1) if packed else ii.reshape(-1, 3)
    step = max(1, 128 * 576 // (size * size))
    for a in range(0, n, step):
        b = a + step
        r0, r1, c0, c1 = rs[a:b], re[a:b], cs[a:b], ce[a:b]
        s = np.take(px, r1 + c1, axis=0)
        s -= np.take(px, r0 + c1, axis=0)
        s -= np.take(px, r1 + c0, axis=0)
        s += np.take(px, r0 + c0, axis=0)
        _normalise(s, k[a:b], out[a:b], packed)
    return out


def _normalise(s: np.ndarray, k: np.ndarray, out: np.ndarray, packed: bool) -> None:
    """Bin sums s ((N, h, w) packed, or (N, h, w, 3)) times k ((N, h, w): SCALE over each bin's pixel
    count), less MEAN * SCALE, into out (N, 3, h, w): the nets' normalised input."""
    if packed:
        # Sums and k are exact in float64, so each product rounds once to float32, as below.
        for ch in range(3):
            plane = (s >> (PACK_BITS * ch)) & _MASK if ch < 2 else s >> (2 * PACK_BITS)
            np.multiply(plane, k, out=out[:, ch], casting="unsafe")
    else:
        np.multiply(s.transpose(0, 3, 1, 2), k[:, None], out=out)
    out -= np.float32(MEAN * SCALE)


def pyramid_level(ii: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """The whole integral() image area-resized to one pyramid level, normalised NCHW (1, 3, out_h, out_w).

    torch's "area" bins, as facenet-pytorch's imresample, in two gathers: the bins' row sums first
    (whole rows of the integral image: contiguous copies), then their columns. 9 ms for a 1024x768
    photo's eleven levels against 26 for PIL's BOX resize of each level from the photo, which the
    pyramid used before (and which weighs a pixel cut by a bin edge by the part inside, not whole).
    """
    zero = np.zeros(1, dtype=np.int64)
    r0, r1 = (a[0] for a in _bins(zero, np.array([ii.shape[0] - 1]), out_h))
    c0, c1 = (a[0] for a in _bins(zero, np.array([ii.shape[1] - 1]), out_w))
    k = (SCALE / ((r1 - r0)[:, None] * (c1 - c0)[None, :])).astype(np.float32)
    rows = np.take(ii, r1, axis=0)
    rows -= np.take(ii, r0, axis=0)
    s = np.take(rows, c1, axis=1)
    s -= np.take(rows, c0, axis=1)
    x = np.empty((1, 3, out_h, out_w), dtype=np.float32)
    _normalise(s[None], k[None], x, ii.ndim == 2)
    return x


def to_input(pixels: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) float pixels to the nets' NCHW input, normalised."""
    return np.ascontiguousarray(((pixels - MEAN) * SCALE).transpose(0, 3, 1, 2), dtype=np.float32)


NMS_BLOCK = 64


def _overlap(x1, y1, x2, y2, area, i, j, plus: float, method: str) -> np.ndarray:
    # (len(i), len(j)) overlaps, elementwise the same float operations as nms_greedy.
    w = np.maximum(0.0, np.minimum(x2[i][:, None], x2[j]) - np.maximum(x1[i][:, None], x1[j]) + plus)
    h = np.maximum(0.0, np.minimum(y2[i][:, None], y2[j]) - np.maximum(y1[i][:, None], y1[j]) + plus)
    inter = w * h
    if method == "min":
        return inter / np.minimum(area[i][:, None], area[j])
    return inter / (area[i][:, None] + area[j] - inter)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Greedy NMS; returns kept indices, best first.

    "union": torchvision's IoU on (x1, y1, x2, y2) with areas (x2-x1)(y2-y1); "min": facenet's last
    stage, intersection over the smaller area with +1 pixel sizes. Suppresses overlap > threshold.
    Exactly nms_greedy's result, in blocks of the score order: the greedy pass runs inside a block
    (a small matrix), then the block's kept boxes suppress all later boxes in one step.
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    plus = 1.0 if method == "min" else 0.0
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = (np.ascontiguousarray(boxes[order, i]) for i in range(4))
    area = (x2 - x1 + plus) * (y2 - y1 + plus)
    n = len(order)
    alive = np.ones(n, dtype=bool)
    keep = []
    for s in range(0, n, NMS_BLOCK):
        e = min(s + NMS_BLOCK, n)
        blk = np.flatnonzero(alive[s:e]) + s
        if not len(blk):
            continue
        # "not (over <= t)" rather than "over > t": a NaN overlap suppresses, as in nms_greedy.
        sup = ~(_overlap(x1, y1, x2, y2, area, blk, blk, plus, method) <= threshold)
        removed = np.zeros(len(blk), dtype=bool)
        kept = []
        for i in range(len(blk)):
            if not removed[i]:
                kept.append(i)
                removed |= sup[i]
        kb = blk[kept]
        keep.append(kb)
        if e < n:
            rest = np.flatnonzero(alive[e:]) + e
            if len(rest):
                over = _overlap(x1, y1, x2, y2, area, kb, rest, plus, method)
                alive[rest[(~(over <= threshold)).any(axis=0)]] = False
    return order[np.concatenate(keep)].astype(np.int64)


def nms_greedy(boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Greedy NMS, one numpy step per kept box (the reference nms() must match); kept indices, best first.

    "union": torchvision's IoU on (x1, y1, x2, y2) with areas (x2-x1)(y2-y1); "min": facenet's last
    stage, intersection over the smaller area with +1 pixel sizes. Suppresses overlap > threshold.
    Each step compares the kept box with all remaining ones at once.
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    plus = 1.0 if method == "min" else 0.0
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    area = (x2 - x1 + plus) * (y2 - y1 + plus)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + plus)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + plus)
        inter = w * h
        if method == "min":
            over = inter / np.minimum(area[i], area[rest])
        else:
            over = inter / (area[i] + area[rest] - inter)
        order = rest[over <= threshold]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes, scores, groups, threshold, method="union") -> np.ndarray:
    """NMS within each group (image), as torchvision's batched_nms: boxes of groups shifted apart."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    shift = (groups.astype(np.float64) * (boxes[:, :4].max() + 1))[:, None]
    return nms(boxes[:, :4] + shift, scores, threshold, method)


def rerec(b: np.ndarray) -> np.ndarray:
    """Make boxes square around their centre, side = the longer side."""
    b = b.copy()
    h = b[:, 3] - b[:, 1]
    w = b[:, 2] - b[:, 0]
    side = np.maximum(w, h)
    b[:, 0] += w * 0.5 - side * 0.5
    b[:, 1] += h * 0.5 - side * 0.5
    b[:, 2] = b[:, 0] + side
    b[:, 3] = b[:, 1] + side
    return b


def bbreg(b: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Apply RNet/ONet box regression (offsets in units of the +1 box size)."""
    b = b.copy()
    w = b[:, 2] - b[:, 0] + 1
    h = b[:, 3] - b[:, 1] + 1
    b[:, 0] += reg[:, 0] * w
    b[:, 1] += reg[:, 1] * h
    b[:, 2] += reg[:, 2] * w
    b[:, 3] += reg[:, 3] * h
    return b


def crop_bounds(b: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, ...]:
    """facenet's pad(): integer crop rows/cols [y0, y1) x [x0, x1) clipped to each box's image; valid mask."""
    t = np.trunc(b[:, :4]).astype(np.int64)
    x = np.maximum(t[:, 0], 1)
    y = np.maximum(t[:, 1], 1)
    ex = np.minimum(t[:, 2], sizes[:, 1])
    ey = np.minimum(t[:, 3], sizes[:, 0])
    valid = (ey > y - 1) & (ex > x - 1)
    return y - 1, ey, x - 1, ex, valid


class Profile(dict):
    """CPU seconds per stage (thread time, so concurrent workers add up), for scripts/bench_annotate.py."""

    _lock = threading.Lock()

    def add(self, key: str, t0: float) -> float:
        t = thread_time()
        with self._lock:
            self[key] = self.get(key, 0.0) + t - t0
        return t


class MTCNN:
    """The three-stage detector. detect(img) -> [(box_px, score, points5_px)], box as (x0, y0, x1, y1)."""

    def __init__(
        self,
        models_dir: str | Path | None = None,
        *,
        paths: dict | None = None,
        min_face_size: int = MIN_FACE_SIZE,
        thresholds: Sequence[float] = THRESHOLDS,
        factor: float = FACTOR,
        threads: int | None = None,
    ):
        folder = Path(models_dir) if models_dir else MODELS_DIR
        self.paths = {k: Path(p) for k, p in (paths or {k: folder / f for k, f in FILES.items()}).items()}
        self.min_face_size = min_face_size
        self.thresholds = tuple(thresholds)
        self.factor = factor
        self.threads = threads
        self.profile = Profile()

    def _run(self, net: str, x: np.ndarray) -> list[np.ndarray]:
        sess = session(self.paths[net], self.threads)
        step = CHUNK.get(net)
        if step is None or len(x) <= step:
            return sess.run(None, {"image": x})
        # Chunks keep each conv's activations in cache; one huge batch measured up to 15% slower.
        parts = [sess.run(None, {"image": x[k : k + step]}) for k in range(0, len(x), step)]
        return [np.concatenate(p) for p in zip(*parts, strict=True)]

    def _pnet(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """PNet on one level: (reg, ys, xs, score) of the cells whose face probability passes the threshold."""
        reg, out = self._run("pnet", x)
        t = self.thresholds[0]
        if out.shape[1] == 2:  # a PNet file exported before the face logit: softmax probabilities
            ys, xs = np.nonzero(out[0, 1] >= t)
            return reg, ys, xs, out[0, 1, ys, xs]
        # sigmoid(logit) >= t where logit >= log(t / (1 - t)): the sigmoid only for those cells (and
        # checked again on them, so rounding at the boundary keeps exactly the cells it passes).
        ys, xs = np.nonzero(out[0, 0] >= np.float32(np.log(t / (1 - t))) - np.float32(1e-6))
        score = 1 / (1 + np.exp(-out[0, 0, ys, xs]))
        keep = score >= t
        return reg, ys[keep], xs[keep], score[keep]

    def scales(self, h: int, w: int) -> list[float]:
        """The pyramid: scales from 12/min_face_size down by factor while the short side stays >= 12."""
        m = 12.0 / self.min_face_size
        minl = min(h, w) * m
        out, s = [], m
        while minl >= 12:
            out.append(s)
            s *= self.factor
            minl *= self.factor
        return out

    def _stage1(self, ii: np.ndarray) -> np.ndarray:
        """PNet over the pyramid of one image (its integral()): (K, 9) rows x1 y1 x2 y2 score reg*4 after NMS."""
        h, w = ii.shape[0] - 1, ii.shape[1] - 1
        found = []
        for scale in self.scales(h, w):
            t0 = thread_time()
            x = pyramid_level(ii, int(h * scale + 1), int(w * scale + 1))
            t0 = self.profile.add("pyramid", t0)
            reg, ys, xs, score = self._pnet(x)
            t0 = self.profile.add("pnet", t0)
            if len(ys) == 0:
                continue
            bb = np.stack([xs, ys], axis=1).astype(np.float64)
            q1 = np.floor((2 * bb + 1) / scale)
            q2 = np.floor((2 * bb + 12) / scale)
            rows = np.concatenate([q1, q2, score[:, None], reg[0][:, ys, xs].T], axis=1)
            rows = rows[nms(rows[:, :4], rows[:, 4], 0.5)]
            found.append(rows)
            self.profile.add("nms", t0)
        if not found:
            return np.zeros((0, 9))
        rows = np.concatenate(found)
        return rows[nms(rows[:, :4], rows[:, 4], 0.7)]

    def detect(self, img: np.ndarray) -> list[tuple[tuple[float, ...], float, np.ndarray]]:
        """Faces in one HxWx3 uint8 RGB image: [(box_px, score, points5_px (5, 2))], best first."""
        return self.detect_batch([img])[0]

    def detect_batch(
        self, imgs: Sequence[np.ndarray]
    ) -> list[list[tuple[tuple[float, ...], float, np.ndarray]]]:
        """detect() for several images; RNet and ONet see every candidate of every image in one run each."""
        imgs = [np.ascontiguousarray(im, dtype=np.uint8) for im in imgs]
        sizes_img = np.array([im.shape[:2] for im in imgs], dtype=np.int64)
        boxes, groups, iis = [], [], []
        for g, im in enumerate(imgs):
            # One integral image per photo serves its pyramid and its RNet and ONet crops.
            t0 = thread_time()
            iis.append(integral(im))
            self.profile.add("integral", t0)
            rows = self._stage1(iis[-1])
            if len(rows):
                # PNet's regression uses sizes without the +1, as facenet-pytorch does.
                w = rows[:, 2] - rows[:, 0]
                h = rows[:, 3] - rows[:, 1]
                b = np.stack(
                    [
                        rows[:, 0] + rows[:, 5] * w,
                        rows[:, 1] + rows[:, 6] * h,
                        rows[:, 2] + rows[:, 7] * w,
                        rows[:, 3] + rows[:, 8] * h,
                        rows[:, 4],
                    ],
                    axis=1,
                )
                boxes.append(rerec(b))
                groups.append(np.full(len(b), g))
        out: list[list] = [[] for _ in imgs]
        if not boxes:
            return out
        b = np.concatenate(boxes)
        g = np.concatenate(groups)

        # Stage 2: RNet on 24x24 crops of every candidate.
        t0 = thread_time()
        b, g, crops = self._crops(iis, sizes_img, b, g, 24)
        t0 = self.profile.add("crops", t0)
        if len(b) == 0:
            return out
        reg, prob = self._run("rnet", crops)
        t0 = self.profile.add("rnet", t0)
        keep = prob[:, 1] > self.thresholds[1]
        b, g, reg = b[keep], g[keep], reg[keep]
        b[:, 4] = prob[keep, 1]
        pick = batched_nms(b, b[:, 4], g, 0.7)
        b, g, reg = b[pick], g[pick], reg[pick]
        b = rerec(bbreg(b, reg))
        t0 = self.profile.add("nms", t0)
        if len(b) == 0:
            return out

        # Stage 3: ONet on 48x48 crops: score, box regression, five landmarks.
        b, g, crops = self._crops(iis, sizes_img, b, g, 48)
        t0 = self.profile.add("crops", t0)
        if len(b) == 0:
            return out
        reg, lm, prob = self._run("onet", crops)
        t0 = self.profile.add("onet", t0)
        keep = prob[:, 1] > self.thresholds[2]
        b, g, reg, lm = b[keep], g[keep], reg[keep], lm[keep]
        b[:, 4] = prob[keep, 1]
        w = b[:, 2] - b[:, 0] + 1
        h = b[:, 3] - b[:, 1] + 1
        px = w[:, None] * lm[:, :5] + b[:, 0:1] - 1
        py = h[:, None] * lm[:, 5:] + b[:, 1:2] - 1
        pts = np.stack([px, py], axis=2)
        b = bbreg(b, reg)
        pick = batched_nms(b, b[:, 4], g, 0.7, "min")
        b, g, pts = b[pick], g[pick], pts[pick]
        self.profile.add("nms", t0)
        for row, gi, p in zip(b, g, pts, strict=True):
            out[int(gi)].append((tuple(float(v) for v in row[:4]), float(row[4]), p.astype(np.float64)))
        return out

    def _crops(self, iis, sizes_img, b, g, size):
        """Area-resized crops of every box (NCHW input), dropping boxes whose crop is empty."""
        y0, y1, x0, x1, valid = crop_bounds(b, sizes_img[g])
        b, g, y0, y1, x0, x1 = b[valid], g[valid], y0[valid], y1[valid], x0[valid], x1[valid]
        crops = np.empty((len(b), 3, size, size), dtype=np.float32)
        # RNet's candidates come grouped by image (one contiguous run each): crop straight into place.
        starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1], True])
        if len(starts) - 1 == len(np.unique(g)):
            for a, e in zip(starts[:-1], starts[1:], strict=True):
                area_crops(iis[g[a]], y0[a:e], y1[a:e], x0[a:e], x1[a:e], size, out=crops[a:e])
            return b, g, crops
        for gi in np.unique(g):
            sel = g == gi
            crops[sel] = area_crops(iis[gi], y0[sel], y1[sel], x0[sel], x1[sel], size)
        return b, g, crops
