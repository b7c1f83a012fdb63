"""Human-readable titles of the landmark points, shown when the editor's pointer hovers one.

Left and right are as seen in the image: iBUG point 36 is the outer corner of the eye on the image's
left, which is the subject's right eye (kinds.LANDMARK68_GROUPS calls that group right_eye).
"""

LANDMARK68_TITLES: list[str] = [
    "jaw, left end (by the ear)",
    *["jaw, left side"] * 7,
    "chin",
    *["jaw, right side"] * 7,
    "jaw, right end (by the ear)",
    # 17-21, 22-26: brows
    "left brow, outer end",
    "left brow, outer part",
    "left brow, middle",
    "left brow, inner part",
    "left brow, inner end",
    "right brow, inner end",
    "right brow, inner part",
    "right brow, middle",
    "right brow, outer part",
    "right brow, outer end",
    # 27-35: nose
    "nose bridge, top (between the eyes)",
    "nose bridge, upper",
    "nose bridge, lower",
    "nose tip",
    "nose, left wing",
    "nose, left nostril",
    "nose, base (below the tip)",
    "nose, right nostril",
    "nose, right wing",
    # 36-47: eyes
    "left eye, outer corner",
    "left eye, upper lid, outer",
    "left eye, upper lid, inner",
    "left eye, inner corner",
    "left eye, lower lid, inner",
    "left eye, lower lid, outer",
    "right eye, inner corner",
    "right eye, upper lid, inner",
    "right eye, upper lid, outer",
    "right eye, outer corner",
    "right eye, lower lid, outer",
    "right eye, lower lid, inner",
    # 48-59: outer lip
    "mouth, left corner",
    "upper lip, left outer",
    "upper lip, left peak",
    "upper lip, top middle",
    "upper lip, right peak",
    "upper lip, right outer",
    "mouth, right corner",
    "lower lip, right outer",
    "lower lip, right",
    "lower lip, bottom middle",
    "lower lip, left",
    "lower lip, left outer",
    # 60-67: inner lip
    "mouth, left inner corner",
    "upper lip inside, left",
    "upper lip inside, middle",
    "upper lip inside, right",
    "mouth, right inner corner",
    "lower lip inside, right",
    "lower lip inside, middle",
    "lower lip inside, left",
]

# The 5-point order (as kinds.LANDMARK5_NAMES), named the same way as the 68 points.
LANDMARK5_TITLES: list[str] = [
    "left eye",
    "right eye",
    "nose tip",
    "mouth, left corner",
    "mouth, right corner",
]

assert len(LANDMARK68_TITLES) == 68


def point_titles(kind: str) -> list[str]:
    """The point names of a kind, each followed by its index: "left eye, outer corner (36)"."""
    names = {"face_landmarks68": LANDMARK68_TITLES, "face_landmarks5": LANDMARK5_TITLES}.get(kind, [])
    return [f"{name} ({i})" for i, name in enumerate(names)]
