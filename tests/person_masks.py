"""The hand-drawn person masks of tests/data/person_masks.json on the demo photos, as stored masks."""

import json
from dataclasses import dataclass

from app.annotations import masks
from tests.conftest import DEMO_DATA, TEST_DATA

PERSON = "/m/01g317"


@dataclass
class Photo:
    name: str
    width: int
    height: int
    file: str  # faces-dev file: "training" (may choose) or "testing" (only measures)
    masks: list[str]  # stored RLE strings, one per person

    @property
    def path(self):
        return DEMO_DATA / self.name

    def boxes(self) -> list[tuple[float, float, float, float]]:
        """Each person's box, normalised, from the mask (as Open Images' boxes fit their masks)."""
        return [masks.bbox(m) for m in self.masks]


def photos(file: str | None = None) -> list[Photo]:
    """The labelled photos (of one faces-dev file, or all)."""
    data = json.loads((TEST_DATA / "person_masks.json").read_text())
    out = []
    for im in data["images"]:
        if file is not None and im["file"] != file:
            continue
        ms = [masks.from_polygons(o["polygons"], im["height"], im["width"]) for o in im["objects"]]
        out.append(Photo(im["name"], im["width"], im["height"], im["file"], ms))
    return out
