"""`flask oiap demo`: a small instance built from the real photos that ship in app/demo_data.

Nine PASCAL VOC photos (via dlib's examples, public domain dedication) with 43 faces and their
68-point landmarks, and scikit-image's astronaut (NASA, public domain). The face boxes were drawn
by hand (dlib's imglab), so they come in as a human set: the loop has ground truth to train on and
to measure against from the start. The 68 points are the output of dlib's landmark model, so they
come in as a model set, to be rated like any machine annotation. Splits: dlib's training photos
and the astronaut are train; its testing photos are split between validation and test, so no
split is empty.
"""

from sqlite_utils import Database

from ..db import immediate
from ..paths import REPO_ROOT
from .dlib_xml import import_dlib_xml
from .folder import register_image_file

DEMO_DIR = REPO_ROOT / "app" / "demo_data"
FACES_SET = "demo-faces"
LANDMARKS_SET = "demo-landmarks68"

PHOTO_SPLITS = {
    "2007_007763.jpg": "train",
    "2008_001009.jpg": "train",
    "2008_001322.jpg": "train",
    "2008_002079.jpg": "train",
    "2008_002470.jpg": "validation",
    "2008_002506.jpg": "validation",
    "2008_004176.jpg": "test",
    "2008_007676.jpg": "test",
    "2009_004587.jpg": "test",
}
VOC_META = {
    "licence": "public domain dedication (dlib examples/faces, LICENSE_FOR_EXAMPLE_PROGRAMS.txt)",
    "author": "PASCAL VOC 2011 (Flickr)",
    "url": "http://host.robots.ox.ac.uk/pascal/VOC/voc2011/",
}
ASTRONAUT_META = {
    "licence": "public domain (NASA)",
    "author": "NASA",
    "title": "Eileen Collins (scikit-image astronaut.png)",
    "url": "https://commons.wikimedia.org/wiki/File:Eileen_Collins.jpg",
}


def _rel(path) -> str:
    # Relative to the repository, so the demo instance survives moving the clone.
    return str(path.resolve().relative_to(REPO_ROOT))


def build_demo(db: Database, if_empty: bool = False, boxes_source: str = "human") -> dict | None:
    """Register the demo photos, import their hand-drawn boxes as a human set and their 68 points as a
    model set; None when skipped. boxes_source="model" brings the boxes in as machine rows instead
    (so bulk-annotate takes every photo: the bulk and cluster tests use it)."""
    if if_empty and db.execute("SELECT 1 FROM images LIMIT 1").fetchone():
        return None
    with immediate(db):
        for name, split in PHOTO_SPLITS.items():
            register_image_file(
                db, DEMO_DIR / name, split, stored_path=_rel(DEMO_DIR / name), title=name, **VOC_META
            )
        register_image_file(
            db,
            DEMO_DIR / "astronaut.png",
            "train",
            stored_path=_rel(DEMO_DIR / "astronaut.png"),
            **ASTRONAUT_META,
        )
    result = {"sets": {}}
    for xml in ("training_with_face_landmarks.xml", "testing_with_face_landmarks.xml"):
        faces = import_dlib_xml(
            db,
            DEMO_DIR / xml,
            FACES_SET,
            "face_box",
            boxes_source,
            params={"origin": "dlib examples/faces: face boxes drawn by hand with imglab"},
            stored_path=_rel,
        )
        marks = import_dlib_xml(
            db,
            DEMO_DIR / xml,
            LANDMARKS_SET,
            "face_landmarks68",
            "model",
            parent_set_id=faces["set_id"],
            params={"origin": "dlib examples/faces: shape_predictor_68_face_landmarks output"},
            stored_path=_rel,
        )
        for name, r in ((FACES_SET, faces), (LANDMARKS_SET, marks)):
            result["sets"].setdefault(name, 0)
            result["sets"][name] += r["added"]
    result["images"] = db.execute("SELECT count(*) FROM images").fetchone()[0]
    return result
