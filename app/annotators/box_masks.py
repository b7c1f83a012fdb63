"""Box -> mask annotators: given an image and object boxes, one instance mask per box.

Each annotator has `predict_many(rgb, boxes_px) -> list[np.ndarray]`: rgb is H x W x 3 uint8 (upright,
as bulk-annotate decodes it), boxes are (x0, y0, x1, y1) in its pixels, and each mask is a boolean
H x W array over the whole image, inside the box (an instance mask belongs to its box: what sticks
out of a box belongs to the objects around it).

- `SlicCutMasks` (any class, the builtin's choice): a graph cut over SLIC superpixels initialised by
  the box; measured better than GrabCut on the training photos (mean IoU 0.762 vs 0.708);
- `GrabCutMasks` (any class): OpenCV's GrabCut initialised by the box, on a crop around the box
  reduced to at most `side` pixels (GrabCut's cost grows with pixels; a mask's outline needs few).
- `SelfieMasks` (people): MediaPipe's selfie segmentation (ONNX, scripts/export_selfie_segmentation.py)
  on the box's crop with a margin, stretched to its 256 x 256 input as MediaPipe does.
- `PromptedMasks` (any class, never shipped): a user's SAM-family encoder/decoder pair (ONNX),
  prompted by the box's two corners (see app/annotators/sam_masks.py).

Numpy, OpenCV, scikit-image/scipy and onnxruntime only: no store, no Flask, no torch.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .session import session

SELFIE_PATH = Path(__file__).parent / "models" / "selfie_segmentation.onnx"


def _clip_box(box: Sequence[float], w: int, h: int) -> tuple[int, int, int, int]:
    """The box as whole pixels covering it, inside the image, at least 1 pixel each way."""
    x0, y0, x1, y1 = (float(v) for v in box)
    ix0 = int(np.clip(np.floor(min(x0, x1)), 0, w - 1))
    iy0 = int(np.clip(np.floor(min(y0, y1)), 0, h - 1))
    ix1 = int(np.clip(np.ceil(max(x0, x1)), ix0 + 1, w))
    iy1 = int(np.clip(np.ceil(max(y0, y1)), iy0 + 1, h))
    return ix0, iy0, ix1, iy1


def _crop_around(box: tuple[int, int, int, int], margin: float, w: int, h: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    mx, my = round((x1 - x0) * margin), round((y1 - y0) * margin)
    return max(0, x0 - mx), max(0, y0 - my), min(w, x1 + mx), min(h, y1 + my)


def _paste(mask_crop: np.ndarray, crop: tuple[int, int, int, int], box, shape) -> np.ndarray:
    """A crop's mask placed in a full-image mask and cut to the box."""
    out = np.zeros(shape, dtype=bool)
    cx0, cy0, cx1, cy1 = crop
    out[cy0:cy1, cx0:cx1] = mask_crop
    x0, y0, x1, y1 = box
    keep = np.zeros(shape, dtype=bool)
    keep[y0:y1, x0:x1] = True
    return out & keep


def _resize_prob(prob: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    return cv2.resize(prob.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


class GrabCutMasks:
    """GrabCut (OpenCV) initialised by each box: inside probably object, outside background."""

    name = "grabcut"

    # Chosen on the training photos of tests/data/person_masks.json only (scripts/eval_masks.py --file
    # training): side 128/192/256 gave mean IoU 0.50/0.55/0.71, margin 0.05/0.15/0.3 at side 256 gave
    # 0.52/0.67/0.71; 3 or 6 iterations the same.
    def __init__(self, iterations: int = 3, side: int = 384, margin: float = 0.3):
        import cv2

        # Parallelism comes from bulk-annotate's workers (as onnxruntime's 1 intra-op thread).
        cv2.setNumThreads(1)
        self.iterations, self.side, self.margin = iterations, side, margin

    def predict_one(self, rgb: np.ndarray, box_px: Sequence[float]) -> np.ndarray:
        """The mask of one box."""
        import cv2

        h, w = rgb.shape[:2]
        box = _clip_box(box_px, w, h)
        crop = _crop_around(box, self.margin, w, h)
        cx0, cy0, cx1, cy1 = crop
        patch = rgb[cy0:cy1, cx0:cx1]
        ph, pw = patch.shape[:2]
        k = min(1.0, self.side / max(ph, pw))
        sw, sh = max(1, round(pw * k)), max(1, round(ph * k))
        small = cv2.resize(patch, (sw, sh), interpolation=cv2.INTER_AREA) if k < 1 else patch
        bx0 = int(np.floor((box[0] - cx0) * sw / pw))
        by0 = int(np.floor((box[1] - cy0) * sh / ph))
        bx1 = int(np.ceil((box[2] - cx0) * sw / pw))
        by1 = int(np.ceil((box[3] - cy0) * sh / ph))
        # GrabCut needs some background: a box that fills the crop (an object filling the photo) keeps
        # a one-pixel frame outside its rectangle.
        bx0, by0 = max(bx0, 1), max(by0, 1)
        bx1, by1 = min(bx1, sw - 1), min(by1, sh - 1)
        if bx1 - bx0 < 2 or by1 - by0 < 2:
            return _paste(np.ones((ph, pw), bool), crop, box, (h, w))
        mask = np.zeros((sh, sw), np.uint8)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(0)  # GrabCut's k-means starts from random centres: the same input, the same mask
        bgr = np.ascontiguousarray(small[:, :, ::-1])
        cv2.grabCut(
            bgr, mask, (bx0, by0, bx1 - bx0, by1 - by0), bgd, fgd, self.iterations, cv2.GC_INIT_WITH_RECT
        )
        fg = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.float32)
        return _paste(_resize_prob(fg, pw, ph) >= 0.5, crop, box, (h, w))

    def predict_many(self, rgb: np.ndarray, boxes_px: Sequence[Sequence[float]]) -> list[np.ndarray]:
        """One mask per box."""
        return [self.predict_one(rgb, b) for b in boxes_px]


class SelfieMasks:
    """MediaPipe's selfie segmentation on each box's crop (people)."""

    name = "selfie"
    SIZE = 256

    def __init__(self, path: str | Path = SELFIE_PATH, threads: int | None = None, margin: float = 0.1):
        self.sess = session(path, threads)
        self.input = self.sess.get_inputs()[0].name
        shape = self.sess.get_inputs()[0].shape
        if list(shape[1:]) != [self.SIZE, self.SIZE, 3]:
            raise ValueError(f"{path}: expected an NHWC {self.SIZE}x{self.SIZE}x3 input, got {shape}")
        self.margin = margin

    def probabilities(self, rgb: np.ndarray, crops: Sequence[tuple[int, int, int, int]]) -> list[np.ndarray]:
        """The person probability of each crop, at the crop's size."""
        import cv2

        xs = []
        for cx0, cy0, cx1, cy1 in crops:
            patch = rgb[cy0:cy1, cx0:cx1]
            xs.append(cv2.resize(patch, (self.SIZE, self.SIZE), interpolation=cv2.INTER_LINEAR))
        out = []
        # The graph's batch is fixed at 1.
        for (cx0, cy0, cx1, cy1), x in zip(crops, xs, strict=True):
            prob = self.sess.run(None, {self.input: (x.astype(np.float32) / 255.0)[None]})[0][0, :, :, 0]
            out.append(_resize_prob(prob, cx1 - cx0, cy1 - cy0))
        return out

    def predict_many(self, rgb: np.ndarray, boxes_px: Sequence[Sequence[float]]) -> list[np.ndarray]:
        """One mask per box: person probability >= 0.5 inside the box."""
        h, w = rgb.shape[:2]
        boxes = [_clip_box(b, w, h) for b in boxes_px]
        crops = [_crop_around(b, self.margin, w, h) for b in boxes]
        probs = self.probabilities(rgb, crops)
        return [_paste(p >= 0.5, c, b, (h, w)) for p, c, b in zip(probs, crops, boxes, strict=True)]


class SlicCutMasks:
    """A graph cut over SLIC superpixels (scikit-image), initialised by each box (any class).

    On a crop around the box: superpixels mostly outside the box are background for good; the others
    start as object. Each round scores every superpixel by its mean Lab colour's distance to the k
    nearest object and background superpixels (weighted by its size), adds a smoothness cost between
    neighbours of similar colour (exp(-beta d^2), beta from the mean, as GrabCut does), and takes the
    minimum cut (scipy's maximum_flow); it stops when the object stops changing.
    """

    name = "slic-cut"

    # Chosen on the training photos of tests/data/person_masks.json only (scripts/eval_masks.py):
    # 300 / 500 superpixels with smoothness 0.1 / 0.3 gave mean IoU 0.760 / 0.743 / 0.731 / 0.762,
    # smoothness 1 and up collapsed some masks to nothing; GrabCut gave 0.708 there.
    def __init__(
        self, n_segments: int = 500, smooth: float = 0.3, margin: float = 0.3, iterations: int = 3, k: int = 5
    ):
        self.n_segments, self.smooth, self.margin, self.iterations, self.k = (
            n_segments,
            smooth,
            margin,
            iterations,
            k,
        )

    def predict_one(self, rgb: np.ndarray, box_px: Sequence[float]) -> np.ndarray:
        """The mask of one box."""
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import breadth_first_order, maximum_flow
        from skimage.color import rgb2lab
        from skimage.segmentation import slic

        h, w = rgb.shape[:2]
        box = _clip_box(box_px, w, h)
        crop = _crop_around(box, self.margin, w, h)
        cx0, cy0, cx1, cy1 = crop
        patch = rgb[cy0:cy1, cx0:cx1]
        seg = slic(patch, n_segments=self.n_segments, compactness=10, start_label=0)
        n = int(seg.max()) + 1
        flat = seg.reshape(-1)
        lab = rgb2lab(patch).reshape(-1, 3)
        count = np.bincount(flat, minlength=n).astype(np.float64)
        mean = (
            np.stack([np.bincount(flat, lab[:, c], minlength=n) for c in range(3)], 1)
            / np.maximum(count, 1)[:, None]
        )
        inbox = np.zeros(patch.shape[:2], bool)
        inbox[box[1] - cy0 : box[3] - cy0, box[0] - cx0 : box[2] - cx0] = True
        outside = np.bincount(flat, inbox.reshape(-1), minlength=n) / np.maximum(count, 1) < 0.5
        obj = ~outside
        # Neighbouring superpixels (4-connected pixels of two labels), each pair once.
        a = np.r_[seg[:, :-1].reshape(-1), seg[:-1, :].reshape(-1)]
        b = np.r_[seg[:, 1:].reshape(-1), seg[1:, :].reshape(-1)]
        pairs = np.unique(np.sort(np.stack([a, b], 1), 1), axis=0)
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
        d2 = np.sum((mean[pairs[:, 0]] - mean[pairs[:, 1]]) ** 2, axis=1)
        # One superpixel has no neighbours (a tiny or flat crop): no pairs, no mean to scale by.
        scale = 2 * d2.mean() + 1e-9 if len(d2) else 1.0
        smooth = (self.smooth * 1000 * np.exp(-d2 / scale)).astype(np.int64)
        size = count / count.mean()
        src, snk = n, n + 1
        for _ in range(self.iterations):
            if not obj.any() or obj.all():
                break
            d_obj, d_bg = self._knn(mean, mean[obj]), self._knn(mean, mean[~obj])
            total = d_obj + d_bg + 1e-9
            # Source side = object: cutting source->i labels i background (costs its closeness to
            # the object), cutting i->sink labels it object.
            to_src = np.where(outside, 0, (d_bg / total * 1000 * size)).astype(np.int64)
            to_snk = np.where(outside, 10**9, (d_obj / total * 1000 * size)).astype(np.int64)
            nodes = np.arange(n)
            rows = np.r_[np.full(n, src), nodes, pairs[:, 0], pairs[:, 1]]
            cols = np.r_[nodes, np.full(n, snk), pairs[:, 1], pairs[:, 0]]
            caps = np.r_[to_src, to_snk, smooth, smooth].astype(np.int32)
            graph = csr_matrix((caps, (rows, cols)), shape=(n + 2, n + 2))
            residual = graph - maximum_flow(graph, src, snk).flow
            residual.data = (residual.data > 0).astype(np.int8)
            residual.eliminate_zeros()
            reached = np.zeros(n + 2, bool)
            reached[breadth_first_order(residual, src, directed=True, return_predecessors=False)] = True
            new = reached[:n] & ~outside
            if np.array_equal(new, obj):
                break
            obj = new
        return _paste(obj[seg], crop, box, (h, w))

    def _knn(self, points: np.ndarray, of: np.ndarray) -> np.ndarray:
        d = np.linalg.norm(points[:, None, :] - of[None], axis=2)
        k = min(self.k, of.shape[0])
        return np.sort(d, axis=1)[:, :k].mean(axis=1)

    def predict_many(self, rgb: np.ndarray, boxes_px: Sequence[Sequence[float]]) -> list[np.ndarray]:
        """One mask per box."""
        return [self.predict_one(rgb, b) for b in boxes_px]
