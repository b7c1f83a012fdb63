"""Annotation kinds: what each one stores and how many points it has."""

from dataclasses import dataclass

FACE_LABEL = "/m/0dzct"  # Open Images' "Human face"


@dataclass(frozen=True)
class Kind:
    name: str
    n_points: int
    title: str


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("face_box", 0, "Face box"),
        Kind("face_landmarks5", 5, "5 face landmarks"),
        Kind("face_landmarks68", 68, "68 face landmarks"),
        Kind("object_box", 0, "Object box"),
        # One instance mask per row (annotations.mask, COCO RLE over the whole image; app/annotations/masks.py),
        # with its box x0..y1 and its class MID in label, as for object_box.
        Kind("object_mask", 0, "Object mask"),
    )
}

# iBUG 300-W 68-point scheme: contour groups, for drawing lines.
LANDMARK68_GROUPS: dict[str, tuple[list[int], bool]] = {
    # name: (indices, closed)
    "jaw": (list(range(0, 17)), False),
    "right_brow": (list(range(17, 22)), False),
    "left_brow": (list(range(22, 27)), False),
    "nose_bridge": (list(range(27, 31)), False),
    "nose_base": (list(range(31, 36)), False),
    "right_eye": (list(range(36, 42)), True),
    "left_eye": (list(range(42, 48)), True),
    "outer_lip": (list(range(48, 60)), True),
    "inner_lip": (list(range(60, 68)), True),
}

# 5-point order, as MTCNN gives it: eyes, nose tip, mouth corners (image left to right).
LANDMARK5_NAMES = ["right eye", "left eye", "nose tip", "mouth, right corner", "mouth, left corner"]


def get_kind(name: str) -> Kind:
    """Look up a kind by name; ValueError names the known ones."""
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown kind {name!r}; known kinds: {', '.join(KINDS)}") from None


def _mirror_pairs(pairs: list[tuple[int, int]], n: int) -> list[int]:
    flip = list(range(n))
    for a, b in pairs:
        flip[a], flip[b] = b, a
    return flip


# Which point a point becomes when the image is flipped left-right (YOLO-pose flip_idx, augmentation).
FLIP_68: list[int] = _mirror_pairs(
    [(i, 16 - i) for i in range(8)]  # jaw; 8 (chin) stays
    + [(17, 26), (18, 25), (19, 24), (20, 23), (21, 22)]  # brows
    + [(31, 35), (32, 34)]  # nose base; the bridge 27-30 and tip 33 stay
    + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]  # outer lip; 51, 57 stay
    + [(60, 64), (61, 63), (65, 67)],  # inner lip; 62, 66 stay
    68,
)
FLIP_5: list[int] = [1, 0, 2, 4, 3]

# Keypoint names for COCO-style exports, from the contour groups (jaw_0 ... inner_lip_7).
LANDMARK68_NAMES: list[str] = [
    f"{group}_{j}" for group, (idx, _closed) in LANDMARK68_GROUPS.items() for j in range(len(idx))
]


def flip_index(kind: str) -> list[int] | None:
    """The left-right mirror map of a kind's points, or None for box kinds."""
    return {68: FLIP_68, 5: FLIP_5}.get(get_kind(kind).n_points)


def point_names(kind: str) -> list[str]:
    """The names of a kind's points in storage order (empty for box kinds)."""
    return {68: LANDMARK68_NAMES, 5: LANDMARK5_NAMES}.get(get_kind(kind).n_points, [])
