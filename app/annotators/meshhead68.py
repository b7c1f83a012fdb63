"""68 iBUG points from a face mesh and a trained mapping head (ONNX, onnxruntime + numpy only).

A base annotator (the default mesh chain) gives, per face, its 68 points and all N mesh vertices in
image pixels (`predict_many_with_mesh`). Both are brought into the face's normalised frame: the
similarity that maps the base's 68 points onto the mean shape (outer eye corners one unit apart,
centroid at the origin). The head, one MatMul and one Add, maps them to the 68 points in that frame:

    landmarks (B, 68, 2) = reshape(concat(base, mesh) as (B, 2 (68 + N)) @ weight + bias)

and the inverse similarity maps them back to pixels. A head with weight = identity on the base points
and bias 0 gives the base's answer; the trainer (app/training/meshhead.py) fits per iBUG point a
ridge-regularised 2x2 mix of its K nearest mesh vertices around that start.

The head file's inputs are named "base" (B, 68, 2) and "mesh" (B, N, 2), its output "landmarks":
N is read from the file, so one head runs on the mesh it was fitted on (468 vertices for MediaPipe's
face mesh, 478 for the attention mesh); another mesh is refused by name.
"""

from pathlib import Path

import numpy as np

from .session import session
from .template68 import apply, mean_shape, similarity

ARCH = "oiap-meshhead68-v1"  # params["arch"] of trained heads


def to_frame(points68: np.ndarray, mesh: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple]:
    """(68, 2) base points and (N, 2) mesh vertices in pixels -> both in the face's normalised frame,
    and the similarity (m, t) that took them there."""
    m, t = similarity(points68, mean_shape())
    return apply(m, t, points68), apply(m, t, mesh), (m, t)


def from_frame(points: np.ndarray, xform: tuple) -> np.ndarray:
    """Points in a face's normalised frame back to image pixels (the inverse of to_frame's similarity)."""
    m, t = xform
    return (np.asarray(points, dtype=np.float64) - t) @ np.linalg.inv(m).T


def head_mesh_size(model_path: str | Path) -> int:
    """N, the mesh vertices a head file takes."""
    return int(session(model_path).get_inputs()[1].shape[1])


class MeshHead68:
    """A trained mapping head on a base mesh annotator (see the module docstring)."""

    name = "meshhead68"

    def __init__(self, model_path: str | Path, base):
        if not hasattr(base, "predict_many_with_mesh"):
            raise ValueError(
                f"the {base.name} annotator gives no mesh vertices: a mesh head cannot run on it"
            )
        self.model_path = Path(model_path)
        self.base = base

    def predict(self, img_rgb: np.ndarray, box_px, points5_px=None) -> np.ndarray:
        """Return (68, 2) pixel coordinates for one face."""
        return self.predict_many(img_rgb, [box_px], None if points5_px is None else [points5_px])[0]

    def predict_many(self, img_rgb: np.ndarray, boxes, points5s=None) -> list[np.ndarray]:
        """(68, 2) pixel coordinates for each face of one image: the base's mesh, then one head run."""
        if len(boxes) == 0:
            return []
        outs = self.base.predict_many_with_mesh(img_rgb, boxes, points5s)
        framed = [to_frame(p, v) for p, v in outs]
        sess = session(self.model_path)
        n = head_mesh_size(self.model_path)
        if framed[0][1].shape[0] != n:
            raise ValueError(
                f"the head {self.model_path.name} was fitted on a {n}-vertex mesh; the base "
                f"{self.base.name} gives {framed[0][1].shape[0]}: train a new head on this base"
            )
        base = np.stack([f[0] for f in framed]).astype(np.float32)
        mesh = np.stack([f[1] for f in framed]).astype(np.float32)
        out = sess.run(["landmarks"], {"base": base, "mesh": mesh})[0]
        return [from_frame(o, f[2]) for o, f in zip(out, framed, strict=True)]
