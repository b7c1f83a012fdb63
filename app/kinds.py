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
