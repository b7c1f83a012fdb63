"""dlib's 68-point shape predictor (an ensemble of regression trees, Kazemi and Sullivan 2014) in numpy,
without dlib: a reader for dlib's serialized `shape_predictor` file and its cascade.

The file (e.g. shape_predictor_68_face_landmarks.dat from Debian's libdlib-data or dlib.net) is never
shipped: it was trained on iBUG 300-W, whose terms exclude commercial use (LICENCE_CAVEAT), so a user
adds it with `flask oiap models add FILE.dat --kind face_landmarks68` and decides.

What the code follows, from dlib's source (dlib/image_processing/shape_predictor.h, dlib/serialize.h,
dlib/float_details.h, dlib/geometry/point_transforms.h):

- Every value in the file is one of dlib's variable-length integers: a control byte (low 4 bits: how many
  little-endian bytes follow, 1 to 8; bit 7: negative; bits 4-6 zero) and the bytes. A float is two of
  them, mantissa then exponent (value = mantissa * 2**exponent); a matrix is -rows, -cols and its
  elements; a std::vector is its size and its elements.
- shape_predictor: version (1), initial_shape (2N x 1 floats, x y x y ... in box-normalised units),
  forests (per cascade level, per tree: splits [idx1, idx2, thresh] of a complete binary tree and its
  2**depth leaf vectors of 2N floats), anchor_idx (per level, per feature pixel: the shape point it is
  anchored to) and deltas (per level, per feature pixel: its offset from that point in the initial shape).
- Prediction of a box (dlib rectangle, inclusive right and bottom): the shape starts as initial_shape; at
  each level, M = the similarity (Umeyama, no translation) from initial_shape to the current shape, cast
  to float; a feature pixel is at box(M @ delta + current[anchor]), rounded to the nearest pixel, its
  grey value (r + g + b) // 3, or 0 outside the image; every tree goes left while value[idx1] -
  value[idx2] > thresh, and every tree's leaf vector is added to the shape, in tree order, in float32.
  The points are box(shape). dlib rounds them to integer pixels; predict() keeps the fractions.
"""

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InvalidInput

LICENCE_CAVEAT = (
    "dlib's shape_predictor_68_face_landmarks.dat was trained on the iBUG 300-W data set, whose terms "
    "exclude commercial use; whether you may use this model (and annotations it makes) is your decision."
)
LICENCE = "iBUG 300-W terms (no commercial use); dlib's file itself: CC0 per Debian's libdlib-data"
ORIGIN = "dlib shape_predictor_68_face_landmarks.dat (Debian libdlib-data or dlib.net), added by a user"
DEBIAN_PATH = Path("/usr/share/dlib/shape_predictor_68_face_landmarks.dat")

# MTCNN's boxes mapped into the convention of dlib's frontal face detector (the boxes its predictor was
# trained on): centre moved by (DX * width, DY * height), sides scaled by (SW, SH). Fitted by
# scripts/calibrate_dlib_boxes.py on the photos of app/demo_data/training_with_face_landmarks.xml and
# their mirror images (dlib-bin 20.0.1's HOG detector at upsample 1 against our MTCNN: 34 faces found by
# both; no landmark read): mean IoU with dlib's boxes 0.695 as MTCNN gives them, 0.747 mapped.
BOX_MAP = {"dx": -0.0112, "dy": 0.0229, "sw": 1.2173, "sh": 0.9027}
# The same from MTCNN's five points, used when a face has them (bulk-annotate's chain): the box centred on
# the points' centroid moved by (DX, DY) * S, sides (SW, SH) * S, where S is the mean of the eye-to-eye
# and eye-midpoint-to-mouth-midpoint distances. Same script and faces; mean IoU with dlib's boxes 0.810.
# Less sensitive to MTCNN's box regression: on the training photos' faces NME 0.0328 and no face above
# 0.10 against 0.0725 and 3 faces from BOX_MAP; on the testing file 0.0213 against 0.0206.
FIVE_MAP = {"dx": -0.0795, "dy": -0.1334, "sw": 2.6038, "sh": 2.5959}


class DlibFormatError(InvalidInput):
    """The file is not a (complete) dlib shape_predictor."""


@dataclass(frozen=True)
class ShapePredictor:
    """The arrays of a dlib shape_predictor, every cascade level stacked (levels x trees x ...)."""

    initial: np.ndarray  # (N, 2) float32, box-normalised
    idx1: np.ndarray  # (C, T, S) int32: feature pixel of a split
    idx2: np.ndarray  # (C, T, S) int32
    thresh: np.ndarray  # (C, T, S) float32
    leaves: np.ndarray  # (C, T, L, 2N) float32
    anchor: np.ndarray  # (C, P) int32: the shape point a feature pixel hangs on
    deltas: np.ndarray  # (C, P, 2) float32: its offset in the initial shape

    @property
    def num_parts(self) -> int:
        """Points per shape (68 for the 68-point model)."""
        return len(self.initial)


# ---------------------------------------------------------------------------------------------------
# Reading the file


# Per control byte: not one (bits 4-6 set, or a size of 0 or above 8), and how far the next value is.
_BAD_CONTROL = np.array([(c & 0x70) != 0 or not 1 <= (c & 0x0F) <= 8 for c in range(256)])
_STEP = np.array([1 + (c & 0x0F) for c in range(256)], dtype=np.int64)


def _token_starts(b: np.ndarray, name: str, block: int = 1 << 13) -> np.ndarray:
    """Byte offsets (int64) where each variable-length integer of the file starts.

    Each value says how long it is, so the starts form one chain from offset 0. Following it one value
    at a time in Python would take ~30 s for the 68-point file (33 M values); instead every 8 KiB block
    is walked at once, vectorised across blocks, from its first byte that starts a chain of valid
    control bytes to the block's end (a walk that is out of step soon reads a byte that cannot be a
    control byte, and restarts one byte later). Then, block by block, the true chain's entry (where the
    previous block's chain left off) must lie on that walk, and the bytes before it are unmarked; a
    block where it does not is walked again from its true entry.
    """
    n = len(b)
    if n == 0:
        raise DlibFormatError(f"{name}: empty file; it is not a dlib shape_predictor")
    nblocks = (n + block - 1) // block
    first = np.arange(nblocks, dtype=np.int64) * block
    end = np.minimum(first + block, n)
    # marks[p] = 1 + the attempt (restart) of its block's walk that visited p, 0 if none.
    marks = np.zeros(nblocks * block, dtype=np.uint8)
    attempt = np.zeros(nblocks, dtype=np.uint8)
    pos = first.copy()
    active = np.arange(nblocks)
    tag, stop = attempt[active] + 1, end[active]
    while active.size:
        p = pos[active]
        h = b[p]
        bad = _BAD_CONTROL[h]
        if bad.any():
            restart = active[bad]
            attempt[restart] += 1
            p[bad] = first[restart] + attempt[restart]
            # After 9 restarts no phase is valid: leave the block to the check below.
            gave_up = attempt[restart] > 9
            p[np.flatnonzero(bad)[gave_up]] = end[restart[gave_up]]
            tag = attempt[active] + 1
            ok = ~bad
            marks[p[ok]] = tag[ok]
            p[ok] += _STEP[h[ok]]
        else:
            marks[p] = tag
            p += _STEP[h]
        pos[active] = p
        going = p < stop
        if not going.all():
            active, tag, stop = active[going], tag[going], stop[going]
    walked = (marks.reshape(nblocks, block) == (attempt + 1)[:, None]).ravel()[:n]
    del marks
    entry = 0
    for k in range(nblocks):
        s, e = int(first[k]), int(end[k])
        start = s + entry
        if start >= e:  # a value longer than the block (never, as values are at most 9 bytes)
            walked[s:e] = False
            entry = start - e
            continue
        if walked[start] and attempt[k] <= 9:
            walked[s:start] = False
            out = int(pos[k])
        else:
            walked[s:e] = False
            out = start
            while out < e:
                walked[out] = True
                out += 1 + (int(b[out]) & 0x0F)
        entry = out - e
    if entry != 0:
        raise DlibFormatError(
            f"{name}: truncated (its last value runs {entry} bytes past the end of the file); "
            "get the file again (Debian's libdlib-data or dlib.net)"
        )
    return np.flatnonzero(walked)


# The low `size` bytes of a uint64, for size 0 to 8.
_SIZE_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)


class _Tokens:
    """The file's values in order, decoded on demand."""

    def __init__(self, b: np.ndarray, starts: np.ndarray, name: str):
        self.b, self.starts, self.name, self.i = b, starts, name, 0
        # Every byte offset seen as the start of a little-endian uint64 (an overlapping, unaligned
        # view over the bytes and 8 zeros): one gather reads a value's 1 to 8 bytes, a mask keeps them.
        padded = np.concatenate([b, np.zeros(8, dtype=np.uint8)])
        self.words = np.ndarray((len(b) + 1,), dtype="<u8", buffer=padded, strides=(1,))

    def _bad(self, what: str) -> DlibFormatError:
        return DlibFormatError(
            f"{self.name}: not a dlib shape_predictor file ({what} at value {self.i}); "
            "it may be corrupt or truncated: get the file again (Debian's libdlib-data or dlib.net)"
        )

    def take(self, k: int, what: str) -> np.ndarray:
        """The next k values as int64 (signed)."""
        if k < 0 or self.i + k > len(self.starts):
            raise self._bad(f"the file ends inside {what}")
        st = self.starts[self.i : self.i + k]
        h = self.b[st]
        size = (h & 0x0F).astype(np.int64)
        if np.any(h & 0x70) or np.any(size == 0) or np.any(size > 8):
            raise self._bad(f"an invalid value in {what}")
        # Fancy indexing, not np.take: np.take would first copy the whole overlapping view.
        out = (self.words[st + 1] & _SIZE_MASKS[size]).astype(np.int64)
        neg = (h & 0x80) != 0
        out[neg] = -out[neg]
        self.i += k
        return out

    def one(self, what: str) -> int:
        """The next value."""
        return int(self.take(1, what)[0])

    def size(self, what: str, limit: int = 1 << 24) -> int:
        """The next value as a count, refused when negative or absurd."""
        v = self.one(what)
        if not 0 <= v <= limit:
            raise self._bad(f"a size of {v} for {what}")
        return v

    def floats(self, k: int, what: str) -> np.ndarray:
        """The next k floats (mantissa, exponent pairs) as float32."""
        t = self.take(2 * k, what)
        man, exp = t[0::2], t[1::2]
        if np.any(np.abs(exp) > 32002):
            raise self._bad(f"an invalid float exponent in {what}")
        special = exp >= 32000
        val = np.ldexp(man.astype(np.float64), np.where(special, 0, exp))
        if special.any():
            val[exp == 32000], val[exp == 32001], val[exp == 32002] = np.inf, -np.inf, np.nan
        return val.astype(np.float32)


def read_shape_predictor(path: str | Path) -> ShapePredictor:
    """Read dlib's serialized shape_predictor; DlibFormatError names the file and what is wrong."""
    path = Path(path)
    try:
        b = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise DlibFormatError(f"{path}: cannot be read ({e.strerror})") from e
    name = str(path)
    # Version 1 and a negative row count (a matrix) open every shape_predictor: refuse other files
    # before reading them as one (a photo would otherwise read as a "truncated" predictor).
    if len(b) >= 3 and not (b[0] == 1 and b[1] == 1 and b[2] & 0xF0 == 0x80):
        raise DlibFormatError(
            f"{name}: not a dlib shape_predictor file (it does not start like one); add dlib's "
            "shape_predictor_68_face_landmarks.dat (Debian's libdlib-data or dlib.net)"
        )
    t = _Tokens(b, _token_starts(b, name), name)
    if t.one("the version") != 1:
        raise t._bad("a version other than 1")
    rows, cols = -t.one("the initial shape's rows"), -t.one("the initial shape's columns")
    if cols != 1 or rows <= 0 or rows % 2 or rows > 100_000:
        raise t._bad(f"an initial shape of {rows} x {cols}")
    initial = t.floats(rows, "the initial shape").reshape(-1, 2)
    n_levels = t.size("the number of cascade levels", 1000)
    idx1, idx2, thresh, leaves = [], [], [], []
    for level in range(n_levels):
        n_trees = t.size(f"level {level}'s number of trees", 100_000)
        n_splits = int(t.take(1, "a tree's number of splits")[0])
        t.i -= 1
        if not 0 < n_splits < 1 << 12:
            raise t._bad(f"a tree of {n_splits} splits")
        n_leaves = n_splits + 1
        if n_leaves & (n_leaves - 1):
            raise t._bad(f"a tree of {n_splits} splits (dlib's trees are complete)")
        # Every tree of a level has the same layout: size, splits, size, leaves (each -rows, -1, floats).
        per_leaf = 2 + 2 * rows
        per_tree = 1 + 4 * n_splits + 1 + n_leaves * per_leaf
        a = t.take(n_trees * per_tree, f"level {level}'s trees").reshape(n_trees, per_tree)
        splits = a[:, 1 : 1 + 4 * n_splits].reshape(n_trees, n_splits, 4)
        lv = a[:, 2 + 4 * n_splits :].reshape(n_trees, n_leaves, per_leaf)
        if (
            np.any(a[:, 0] != n_splits)
            or np.any(a[:, 1 + 4 * n_splits] != n_leaves)
            or np.any(lv[:, :, 0] != -rows)
            or np.any(lv[:, :, 1] != -1)
        ):
            raise t._bad(f"trees of different shapes in level {level}")
        idx1.append(splits[:, :, 0])
        idx2.append(splits[:, :, 1])
        thresh.append(_to_float(splits[:, :, 2], splits[:, :, 3]))
        leaves.append(_to_float(lv[:, :, 2::2], lv[:, :, 3::2]))
    if t.size("the number of anchor lists") != n_levels:
        raise t._bad("anchor lists that do not match the levels")
    anchor = []
    for level in range(n_levels):
        anchor.append(t.take(t.size(f"level {level}'s number of feature pixels"), "anchor indices"))
    if t.size("the number of delta lists") != n_levels:
        raise t._bad("delta lists that do not match the levels")
    deltas = []
    for level in range(n_levels):
        k = t.size(f"level {level}'s number of deltas")
        deltas.append(t.floats(2 * k, "deltas").reshape(k, 2))
    if t.i != len(t.starts):
        raise t._bad(f"{len(t.starts) - t.i} values after the end of the predictor")
    if len({len(x) for x in anchor} | {len(x) for x in deltas}) != 1:
        raise t._bad("levels with different numbers of feature pixels")
    sp = ShapePredictor(
        initial=initial,
        idx1=np.stack(idx1).astype(np.int32),
        idx2=np.stack(idx2).astype(np.int32),
        thresh=np.stack(thresh),
        leaves=np.stack(leaves),
        anchor=np.stack(anchor).astype(np.int32),
        deltas=np.stack(deltas),
    )
    n_pix = sp.anchor.shape[1]
    if (
        sp.idx1.min() < 0
        or sp.idx2.min() < 0
        or max(sp.idx1.max(), sp.idx2.max()) >= n_pix
        or sp.anchor.min() < 0
        or sp.anchor.max() >= len(initial)
    ):
        raise t._bad("an index out of range")
    return sp


def _to_float(man: np.ndarray, exp: np.ndarray) -> np.ndarray:
    """dlib floats (mantissa, exponent) as float32 (no special values in a predictor's trees)."""
    return np.ldexp(man.astype(np.float64), exp).astype(np.float32)


# ---------------------------------------------------------------------------------------------------
# Prediction


def to_grey(img: np.ndarray) -> np.ndarray:
    """dlib's grey value of an RGB image: (r + g + b) // 3; a grey image is returned as it is."""
    if img.ndim == 2:
        return np.ascontiguousarray(img, dtype=np.uint8)
    s = img[..., 0].astype(np.uint16) + img[..., 1] + img[..., 2]
    return (s // 3).astype(np.uint8)


def similarity_m(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(F, 2, 2) float32: the linear part of the least-squares similarity from src (N, 2) to each dst
    (F, N, 2), as dlib's find_similarity_transform, computed in float64.

    dlib takes Umeyama's SVD route, whose sign correction keeps the best proper rotation; in 2-D that is
    the closed form [[p, -q], [q, p]] with p = (cov00 + cov11) / var, q = (cov10 - cov01) / var."""
    a = src.astype(np.float64)
    a = a - a.mean(0)
    d = dst.astype(np.float64)
    d = d - d.mean(1, keepdims=True)
    var = (a**2).sum() / len(a)
    if var == 0:
        return np.repeat(np.eye(2, dtype=np.float32)[None], len(dst), axis=0)
    # cov[i, j] = mean over points of d_i * a_j
    cov = np.einsum("fni,nj->fij", d, a) / len(a)
    p = (cov[:, 0, 0] + cov[:, 1, 1]) / var
    q = (cov[:, 1, 0] - cov[:, 0, 1]) / var
    return np.stack([np.stack([p, -q], 1), np.stack([q, p], 1)], 1).astype(np.float32)


def run_cascade(sp: ShapePredictor, grey: np.ndarray, rects: np.ndarray) -> np.ndarray:
    """(F, N, 2) float64 image points for F dlib rectangles (left, top, right, bottom; right and bottom
    inclusive, as dlib's), every face and tree at once."""
    rects = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
    n_faces = len(rects)
    if n_faces == 0:
        return np.zeros((0, sp.num_parts, 2))
    h, w = grey.shape
    origin = rects[:, None, :2]  # (F, 1, 2)
    span = (rects[:, 2:] - rects[:, :2])[:, None, :]
    shape = np.repeat(sp.initial[None], n_faces, axis=0)  # (F, N, 2) float32
    n_trees, n_splits = sp.idx1.shape[1:]
    n_leaves = n_splits + 1
    depth = int(np.log2(n_leaves))
    trees = np.arange(n_trees)[None, :]
    tree_splits = trees * n_splits
    face_pixels = np.arange(n_faces)[:, None] * sp.anchor.shape[1]
    for level in range(len(sp.idx1)):
        m = similarity_m(sp.initial, shape)
        dx, dy = sp.deltas[level, :, 0], sp.deltas[level, :, 1]
        anchored = shape[:, sp.anchor[level], :]  # (F, P, 2)
        # Float32 in dlib's order of operations: (m0 * dx + m1 * dy) + anchor point.
        px = m[:, 0:1, 0] * dx + m[:, 0:1, 1] * dy + anchored[:, :, 0]
        py = m[:, 1:2, 0] * dx + m[:, 1:2, 1] * dy + anchored[:, :, 1]
        ix = np.floor(origin[:, :, 0] + span[:, :, 0] * px.astype(np.float64) + 0.5).astype(np.int64)
        iy = np.floor(origin[:, :, 1] + span[:, :, 1] * py.astype(np.float64) + 0.5).astype(np.int64)
        inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
        values = np.where(inside, grey[iy.clip(0, h - 1), ix.clip(0, w - 1)], 0).astype(np.float32)
        # Every tree of every face one level down at a time, by flat indices (np.take is the fast gather).
        flat_values = values.ravel()
        i1, i2, th = sp.idx1[level].ravel(), sp.idx2[level].ravel(), sp.thresh[level].ravel()
        node = np.zeros((n_faces, n_trees), dtype=np.int64)
        for _ in range(depth):
            split = tree_splits + node
            a = np.take(flat_values, face_pixels + np.take(i1, split))
            b = np.take(flat_values, face_pixels + np.take(i2, split))
            node = 2 * node + np.where(a - b > np.take(th, split), 1, 2)
        leaves = sp.leaves[level].reshape(n_trees * n_leaves, -1)
        leaf = np.take(leaves, trees * n_leaves + node - n_splits, axis=0)  # (F, T, 2N)
        # dlib adds the trees' leaves to the shape one after another in float32. A reduction over an axis
        # that is not the innermost adds in order (numpy sums pairwise only along the innermost), so
        # the first leaf takes the shape and the reduce gives dlib's sums bit for bit.
        leaf[:, 0] += shape.reshape(n_faces, -1)
        shape = np.add.reduce(leaf, axis=1).reshape(n_faces, -1, 2)
    return origin + span * shape.astype(np.float64)


def box_to_rect(box_px) -> tuple[float, float, float, float]:
    """Our box (x0, y0, x1, y1; x1, y1 exclusive) as a dlib rectangle (right and bottom inclusive)."""
    x0, y0, x1, y1 = (float(v) for v in box_px)
    return (x0, y0, x1 - 1, y1 - 1)


def rect_to_box(rect) -> tuple[float, float, float, float]:
    """A dlib rectangle (left, top, right, bottom inclusive) as our box."""
    left, top, right, bottom = (float(v) for v in rect)
    return (left, top, right + 1, bottom + 1)


def map_box(box_px, box_map: dict) -> tuple[float, float, float, float]:
    """A detector's box moved and scaled into dlib's detector convention (see BOX_MAP)."""
    x0, y0, x1, y1 = (float(v) for v in box_px)
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2 + box_map["dx"] * w, (y0 + y1) / 2 + box_map["dy"] * h
    w, h = w * box_map["sw"], h * box_map["sh"]
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def five_scale(points5) -> tuple[np.ndarray, float]:
    """The centroid of five points (MTCNN order: eyes, nose, mouth corners) and their scale S."""
    p = np.asarray(points5, dtype=np.float64).reshape(5, 2)
    eyes, mouth = (p[0] + p[1]) / 2, (p[3] + p[4]) / 2
    return p.mean(0), float((np.linalg.norm(p[1] - p[0]) + np.linalg.norm(mouth - eyes)) / 2)


def five_to_box(points5, five_map: dict) -> tuple[float, float, float, float]:
    """A box in dlib's detector convention from a face's five points (see FIVE_MAP)."""
    c, scale = five_scale(points5)
    cx, cy = c[0] + five_map["dx"] * scale, c[1] + five_map["dy"] * scale
    w, h = five_map["sw"] * scale, five_map["sh"] * scale
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


_lock = threading.Lock()
_predictors: dict[str, ShapePredictor] = {}


def get_predictor(path: str | Path, sha256: str | None = None) -> ShapePredictor:
    """The predictor of a file, read once per process (~2 s for the 68-point file); keyed by the file's
    sha256 when given, so the registry's copy of a file already read is not read again."""
    key = sha256 or str(Path(path).resolve())
    if key not in _predictors:
        with _lock:
            if key not in _predictors:
                _predictors[key] = read_shape_predictor(path)
    return _predictors[key]


class DlibLandmarks68:
    """68 points from a dlib shape_predictor file. Its start box, in dlib's detector convention: from a
    face's five points by five_map when both are given, else from its box by box_map when given, else
    the box as it is."""

    name = "dlib68"

    def __init__(
        self,
        model_path: str | Path,
        box_map: dict | None = None,
        sha256: str | None = None,
        five_map: dict | None = None,
    ):
        self.model_path = Path(model_path)
        self.box_map, self.five_map = box_map, five_map
        self.predictor = get_predictor(self.model_path, sha256)
        if self.predictor.num_parts != 68:
            raise DlibFormatError(
                f"{self.model_path}: a shape_predictor of {self.predictor.num_parts} points, not 68"
            )

    def predict(self, img_rgb: np.ndarray, box_px, points5_px=None) -> np.ndarray:
        """Return (68, 2) pixel coordinates for one face."""
        return self.predict_many(img_rgb, [box_px])[0]

    def predict_many(self, img_rgb: np.ndarray, boxes, points5s=None) -> list[np.ndarray]:
        """(68, 2) pixel coordinates for each face of one image, all faces through the cascade at once."""
        if len(boxes) == 0:
            return []
        points5s = points5s if points5s is not None else [None] * len(boxes)
        rects = np.array([box_to_rect(self.start_box(b, p)) for b, p in zip(boxes, points5s, strict=True)])
        return list(run_cascade(self.predictor, to_grey(np.asarray(img_rgb)), rects))

    def start_box(self, box_px, points5_px=None) -> tuple[float, float, float, float]:
        """The box the cascade starts from (our convention: x1, y1 exclusive)."""
        if points5_px is not None and self.five_map is not None:
            return five_to_box(points5_px, self.five_map)
        if self.box_map is not None:
            return map_box(box_px, self.box_map)
        return tuple(float(v) for v in box_px)
