"""The 478 -> 68 table: each iBUG 300-W point as a weighted mix of two neighbouring mesh vertices,
derived from published geometry only (no landmark labels of any photo).

Inputs: MediaPipe's canonical face model (data/mediapipe_face_model_478.txt, seen from the front, y
flipped to point down), its published contour index lists (the face oval, brows and nose of
face_mesh_connections.py; the eye and lip contours of the attention model's refinement, mesh478.py)
and iBUG's point definitions, whose spacing along each contour is read off the mean 300-W shape
(data/mean_face_68.json, SPIGA's, symmetrised left/right):
- jaw 0-16 along the lower face oval, ear to ear, 8 at the chin (152); the ends at the mean shape's
  height between the eye line and the chin;
- brows 17-21 / 22-26: 17 and 21 at the brow's two tips, where its upper and lower edges meet (the
  midpoint of the two edges' end vertices), 18-20 along the upper brow edge between the tips;
- nose bridge 27-30 on the midline, from the sellion (27: the deepest point of the bridge, least
  depth on the canonical model's midline above the tip) to the pronasale (30: the nose tip, the most
  anterior midline vertex); nostril base 31-35 through the subnasale (2), the ends at the mean shape's width;
- eyes 36-47: the corners and two points on each lid of the refined eye contours;
- lips 48-67: corners 48/54 and 60/64, and the points between along the refined lip contours.
Each point between two contour ends sits at the mean shape's arc-length fraction of its contour,
measured on the canonical model's frontal outline; the result is a linear interpolation between the
two mesh vertices around that arc length. `python -m app.annotators.mesh_ibug68` rewrites the shipped
data/mesh478_to_ibug68.json; tests recompute it and compare.
"""

import json
from functools import cache
from pathlib import Path

import numpy as np

from .template68 import mean_shape

DATA = Path(__file__).parent / "data"
CANONICAL_PATH = DATA / "mediapipe_face_model_478.txt"
TABLE_PATH = DATA / "mesh478_to_ibug68.json"

# Contours as vertex paths, image-left side first (the canonical model's -x side), each from
# face_mesh_connections.py's edge lists (FACEMESH_FACE_OVAL, *_EYEBROW, NOSE) or the attention
# model's refinement lists (eyes, lips); every right-side path is the mirror of its left one.
# fmt: off
OVAL_LEFT = [10, 109, 67, 103, 54, 21, 162, 127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152]
OVAL_RIGHT = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152]
BROW_LEFT = [70, 63, 105, 66, 107]  # upper edge, outer end to inner end
BROW_RIGHT = [300, 293, 334, 296, 336]
BROW_LEFT_LOWER = [46, 53, 52, 65, 55]  # lower edge, outer end to inner end
BROW_RIGHT_LOWER = [276, 283, 282, 295, 285]
# FACEMESH_NOSE from 168 down to the subnasale 2, with 8 (the tessellation's next midline vertex up).
NOSE_MIDLINE = [8, 168, 6, 197, 195, 5, 4, 1, 19, 94, 2]
NOSE_BASE = [64, 98, 97, 2, 326, 327, 294]  # alar base to alar base through the subnasale 2
EYE_LEFT_UPPER = [33, 246, 161, 160, 159, 158, 157, 173, 133]  # outer corner to inner corner
EYE_LEFT_LOWER = [133, 155, 154, 153, 145, 144, 163, 7, 33]  # inner corner to outer corner
EYE_RIGHT_UPPER = [362, 398, 384, 385, 386, 387, 388, 466, 263]  # inner corner to outer corner
EYE_RIGHT_LOWER = [263, 249, 390, 373, 374, 380, 381, 382, 362]  # outer corner to inner corner
LIP_OUTER_UPPER = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291]
LIP_OUTER_LOWER = [291, 375, 321, 405, 314, 17, 84, 181, 91, 146, 61]
LIP_INNER_UPPER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
LIP_INNER_LOWER = [308, 324, 318, 402, 317, 14, 87, 178, 88, 95, 78]
# fmt: on
# iBUG's left/right pairs (mirror image: point i <-> MIRROR68[i]).
MIRROR68 = (
    list(range(16, -1, -1))
    + list(range(26, 16, -1))
    + [27, 28, 29, 30, 35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
    + [64, 63, 62, 61, 60, 67, 66, 65]
)


@cache
def canonical_2d() -> np.ndarray:
    """The canonical model's 478 vertices seen from the front, image axes (x right, y down)."""
    v = np.loadtxt(CANONICAL_PATH)
    out = v[:, :2] * np.array([1.0, -1.0])
    out.setflags(write=False)
    return out


@cache
def canonical_depth() -> np.ndarray:
    """The canonical model's z per vertex: larger is nearer the viewer (the nose tip is the most)."""
    out = np.loadtxt(CANONICAL_PATH)[:, 2]
    out.setflags(write=False)
    return out


def mirrored_mean() -> np.ndarray:
    """The mean 300-W shape averaged with its own mirror image (so the table comes out symmetric)."""
    p = mean_shape()
    m = p[MIRROR68] * np.array([-1.0, 1.0])
    return (p + m) / 2


def arc_fractions(pts: np.ndarray) -> np.ndarray:
    """Cumulative arc length along a polyline, as fractions of its total (0 ... 1)."""
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    return cum / cum[-1]


def at_fraction(path: list[int], frac: float) -> list[tuple[int, float]]:
    """The point at an arc-length fraction of a vertex path, as [(vertex, weight), (vertex, weight)]."""
    f = arc_fractions(canonical_2d()[path])
    k = int(np.clip(np.searchsorted(f, frac, side="right") - 1, 0, len(path) - 2))
    t = float((frac - f[k]) / (f[k + 1] - f[k]))
    return mix(path[k], path[k + 1], t)


def mix(a: int, b: int, t: float) -> list[tuple[int, float]]:
    """(1 - t) a + t b, rounded so that the table is stable; a single vertex when t is 0 or 1."""
    t = round(min(max(t, 0.0), 1.0), 4)
    if t == 0.0:
        return [(a, 1.0)]
    if t == 1.0:
        return [(b, 1.0)]
    return [(a, round(1 - t, 4)), (b, t)]


def where_along(path: list[int], axis: int, value: float) -> float:
    """The first arc-length fraction of a path at which a coordinate (0 = x, 1 = y) reaches value."""
    p = canonical_2d()[path]
    f = arc_fractions(p)
    c = p[:, axis]
    for k in range(len(path) - 1):
        lo, hi = sorted((c[k], c[k + 1]))
        if lo <= value <= hi and c[k] != c[k + 1]:
            t = (value - c[k]) / (c[k + 1] - c[k])
            return float(f[k] + t * (f[k + 1] - f[k]))
    raise ValueError(f"no point of path {path} has coordinate {axis} = {value}")


def spread(path: list[int], start: float, end: float, ref: np.ndarray) -> list[list[tuple[int, float]]]:
    """Points along path between fractions start and end, spaced as the mean shape's polyline ref."""
    return [at_fraction(path, start + (end - start) * f) for f in arc_fractions(ref)]


def spread_nodes(nodes: list[list[tuple[int, float]]], ref: np.ndarray) -> list[list[tuple[int, float]]]:
    """Points along a polyline of nodes (each a weighted mix of vertices), spaced as the mean shape's
    polyline ref: each point mixes the two nodes around its arc-length fraction."""
    c = canonical_2d()
    f = arc_fractions(np.array([sum(a * c[v] for v, a in node) for node in nodes]))
    out = []
    for frac in arc_fractions(ref):
        k = int(np.clip(np.searchsorted(f, frac, side="right") - 1, 0, len(nodes) - 2))
        t = round(min(max(float((frac - f[k]) / (f[k + 1] - f[k])), 0.0), 1.0), 4)
        w: dict[int, float] = {}
        for node, s in ((nodes[k], 1 - t), (nodes[k + 1], t)):
            for v, a in node:
                w[v] = w.get(v, 0.0) + round(s * a, 6)
        out.append([(v, a) for v, a in w.items() if a > 0])
    return out


def brow(upper: list[int], lower: list[int], ref: np.ndarray) -> list[list[tuple[int, float]]]:
    """Five brow points, outer tip to inner tip: the tips where the upper and lower edges meet (the
    midpoint of their end vertices), the others along the upper edge between, spaced like ref."""
    nodes = [[(upper[0], 0.5), (lower[0], 0.5)], *[[(v, 1.0)] for v in upper[1:-1]]]
    return spread_nodes([*nodes, [(upper[-1], 0.5), (lower[-1], 0.5)]], ref)


def derive() -> list[list[tuple[int, float]]]:
    """The 68 points, each [(vertex, weight), ...] with weights summing to 1."""
    ref = mirrored_mean()
    c = canonical_2d()
    eye_y, eye_dist = c[[33, 263], 1].mean(), c[263, 0] - c[33, 0]
    ref_eye_y, ref_eye_dist = ref[[36, 45], 1].mean(), ref[45, 0] - ref[36, 0]
    out: list = [None] * 68

    # Jaw: the ends where the oval reaches the mean shape's height for point 0 (as a fraction of the
    # eye line -> chin drop), points 0-8 spread like the mean shape's, then the mirror side.
    h0 = (ref[0, 1] - ref_eye_y) / (ref[8, 1] - ref_eye_y)
    y0 = eye_y + h0 * (c[152, 1] - eye_y)
    # Each half of the oval descends from the forehead (10) to the chin (152), so it meets y0 once.
    out[0:9] = spread(OVAL_LEFT, where_along(OVAL_LEFT, 1, y0), 1.0, ref[0:9])
    out[16:7:-1] = spread(OVAL_RIGHT, where_along(OVAL_RIGHT, 1, y0), 1.0, ref[16:7:-1])

    out[17:22] = brow(BROW_LEFT, BROW_LEFT_LOWER, ref[17:22])
    out[22:27] = brow(BROW_RIGHT[::-1], BROW_RIGHT_LOWER[::-1], ref[22:27])

    # Nose bridge and tip on the midline, by iBUG's definitions: 30 the nose tip (pronasale: the most
    # anterior vertex above the subnasale 2), 27 the top of the bridge (sellion: the deepest vertex
    # above the tip), 28-29 between like the mean shape's.
    z = canonical_depth()
    tip = max(NOSE_MIDLINE[: NOSE_MIDLINE.index(2)], key=lambda v: z[v])
    top = min(NOSE_MIDLINE[: NOSE_MIDLINE.index(tip)], key=lambda v: z[v])
    f = arc_fractions(c[NOSE_MIDLINE])
    out[27:31] = spread(NOSE_MIDLINE, f[NOSE_MIDLINE.index(top)], f[NOSE_MIDLINE.index(tip)], ref[27:31])

    # Nostril base: 31 and 35 where the base reaches the mean shape's half-width, 33 at the midline.
    half = (ref[35, 0] - ref[31, 0]) / 2 / ref_eye_dist * eye_dist
    base_l = NOSE_BASE[: NOSE_BASE.index(2) + 1]
    base_r = NOSE_BASE[NOSE_BASE.index(2) :][::-1]
    out[31:34] = spread(base_l, where_along(base_l, 0, -half), 1.0, ref[31:34])
    out[35:32:-1] = spread(base_r, where_along(base_r, 0, half), 1.0, ref[35:32:-1])

    # Eyes: corners, and the lid points spaced along each lid like the mean shape's.
    out[36:40] = spread(EYE_LEFT_UPPER, 0.0, 1.0, ref[36:40])
    # A lower lid path ends at the other corner, already placed: its last point is dropped.
    out[39:42] = spread(EYE_LEFT_LOWER, 0.0, 1.0, ref[[39, 40, 41, 36]])[:3]
    out[42:46] = spread(EYE_RIGHT_UPPER, 0.0, 1.0, ref[42:46])
    out[45:48] = spread(EYE_RIGHT_LOWER, 0.0, 1.0, ref[[45, 46, 47, 42]])[:3]

    out[48:55] = spread(LIP_OUTER_UPPER, 0.0, 1.0, ref[48:55])
    out[54:60] = spread(LIP_OUTER_LOWER, 0.0, 1.0, ref[[54, 55, 56, 57, 58, 59, 48]])[:6]
    out[60:65] = spread(LIP_INNER_UPPER, 0.0, 1.0, ref[60:65])
    out[64:68] = spread(LIP_INNER_LOWER, 0.0, 1.0, ref[[64, 65, 66, 67, 60]])[:4]
    return out


def table_matrix(table) -> np.ndarray:
    """(68, 478) weights: 68 points = W @ (478, 2) landmarks."""
    w = np.zeros((68, 478))
    for i, pairs in enumerate(table):
        for v, a in pairs:
            w[i, v] += a
    return w


@cache
def shipped_matrix() -> np.ndarray:
    """The shipped table (data/mesh478_to_ibug68.json) as a (68, 478) matrix."""
    table = json.loads(TABLE_PATH.read_text())["points"]
    w = table_matrix(table)
    w.setflags(write=False)
    return w


def to_json(table) -> str:
    """The table file's text: the points and how they were made."""
    doc = {
        "derivation": "app/annotators/mesh_ibug68.py (python -m app.annotators.mesh_ibug68)",
        "points": [[[int(v), float(a)] for v, a in pairs] for pairs in table],
    }
    return json.dumps(doc, indent=None, separators=(",", ":")) + "\n"


if __name__ == "__main__":
    TABLE_PATH.write_text(to_json(derive()))
    print(f"wrote {TABLE_PATH}")
