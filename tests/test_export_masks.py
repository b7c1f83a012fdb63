"""object_mask exports: COCO segmentation loads in pycocotools, Open Images' layout imports back,
YOLO polygons redraw the masks; the merge keeps one mask per object (same class, box IoU >= 0.5)."""

import contextlib
import io
import json
import zipfile

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from app.annotations import masks
from app.annotations.rows import annotation_row, insert_annotations, rate
from app.db import immediate
from app.export import iter_training_rows
from app.imports.folder import register_image_file
from app.imports.openimages_masks import import_openimages_masks
from app.sets.queries import create_set
from tests.person_masks import PERSON, photos

TIE = "/m/01rkbr"


@pytest.fixture
def mask_store(db):
    """The four labelled photos (train split): the hand-drawn people as a human set; a model set with a
    shrunken copy of each person (the same objects) rated good, and one tie-class mask on a person's box."""
    truth = {}
    with immediate(db):
        human = create_set(db, "human-object_mask", "object_mask", "human")
        machine = create_set(db, "machine-masks", "object_mask", "model")
        rows, machine_rows = [], []
        for p in photos():
            image_id, _ = register_image_file(db, p.path, "train")
            truth[image_id] = p.masks
            for m in p.masks:
                rows.append(annotation_row(human, image_id, "object_mask", label=PERSON, mask=m))
                eroded = masks.decode(m)
                eroded[::1, :] &= np.roll(eroded, 3, axis=0)
                machine_rows.append(
                    annotation_row(machine, image_id, "object_mask", label=PERSON, mask=eroded)
                )
            machine_rows.append(annotation_row(machine, image_id, "object_mask", label=TIE, mask=p.masks[0]))
        insert_annotations(db, rows)
        insert_annotations(db, machine_rows)
    for (aid,) in db.execute("SELECT id FROM annotations WHERE set_id = ?", [machine]).fetchall():
        rate(db, aid, None, "good")
    return truth


def _export(runner, fmt, out, split="train"):
    r = runner.invoke(
        args=["oiap", "export", "--kind", "object_mask", "--format", fmt, "--split", split, "-o", str(out)]
    )
    assert r.exit_code == 0, r.output
    return r


def test_merge_keeps_the_human_mask_per_person_and_the_other_class(db, mask_store):
    rows = list(iter_training_rows(db, "object_mask"))
    people = [r for r in rows if r.label == PERSON]
    ties = [r for r in rows if r.label == TIE]
    # One row per person (the human one overrides the good machine copy), and the tie is another
    # object although its box is a person's box exactly.
    assert len(people) == 10 and all(r.source == "human" for r in people)
    assert len(ties) == 4 and all(r.source == "machine_good" for r in ties)
    for r in people:
        assert any(masks.iou(r.mask, t) == 1.0 for t in mask_store[r.image_id])


def test_coco_segmentation_loads_in_pycocotools_and_scores_itself_perfectly(runner, mask_store, tmp_path):
    path = tmp_path / "coco.json"
    _export(runner, "coco", path)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(path))
    # Named as Open Images names them (the shipped list), the MID beside the name.
    assert {(c["name"], c["mid"]) for c in gt.loadCats(gt.getCatIds())} == {("Person", PERSON), ("Tie", TIE)}
    by_image = {img["id"]: img["oiap_image_id"] for img in gt.loadImgs(gt.getImgIds())}
    n = 0
    for ann in gt.loadAnns(gt.getAnnIds()):
        rle = gt.annToRLE(ann)
        stored = json.dumps({"size": rle["size"], "counts": rle["counts"]})
        assert masks.area(stored) == ann["area"] > 0
        if gt.loadCats(ann["category_id"])[0]["mid"] == PERSON:
            assert any(masks.iou(stored, t) == 1.0 for t in mask_store[by_image[ann["image_id"]]])
            n += 1
    assert n == 10
    # The export as its own detections (score 1): COCO's mask AP is 1.
    dets = [a | {"score": 1.0} for a in gt.loadAnns(gt.getAnnIds())]
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(dets), iouType="segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[1] == pytest.approx(1.0)  # AP at IoU 0.5


def test_openimages_layout_imports_back_unchanged(db, runner, mask_store, tmp_path):
    out = tmp_path / "oi"
    _export(runner, "openimages", out)
    csv_lines = (out / "train-annotations-object-segmentation.csv").read_text().splitlines()
    assert (
        csv_lines[0] == "MaskPath,ImageID,LabelName,BoxID,BoxXMin,BoxXMax,BoxYMin,BoxYMax,PredictedIoU,Clicks"
    )
    assert len(csv_lines) == 1 + 14
    members = set()
    for z in out.glob("train-masks-*.zip"):
        with zipfile.ZipFile(z) as zf:
            members |= set(zf.namelist())
            assert all(name[0] == z.stem[-1] for name in zf.namelist())
    assert {line.split(",")[0] for line in csv_lines[1:]} == members
    s = import_openimages_masks(db, {}, out, splits=["train"], classes=PERSON)
    assert s["masks_added"] == 10 and s["errors"] == 0
    (set_name,) = s["sets"]
    for image_id, mask in db.execute(
        "SELECT a.image_id, a.mask FROM annotations a JOIN annotation_sets s ON s.id = a.set_id WHERE s.name = ?",
        [set_name],
    ).fetchall():
        assert any(masks.iou(mask, t) == 1.0 for t in mask_store[image_id])


def test_yolo_seg_polygons_redraw_the_masks(runner, mask_store, tmp_path):
    out = tmp_path / "yolo"
    _export(runner, "yolo-seg", out)
    data = (out / "data.yaml").read_text()
    assert "train: images/train" in data and "kpt_shape" not in data
    sizes = {p.name: (p.width, p.height) for p in photos()}
    ious = []
    for label_file in (out / "labels" / "train").glob("*.txt"):
        image_id = label_file.stem
        link = next((out / "images" / "train").glob(f"{image_id}.*"))
        w, h = sizes[link.resolve().name]
        for line in label_file.read_text().splitlines():
            cls, *coords = line.split()
            xy = np.array(coords, float).reshape(-1, 2) * [w, h]
            drawn = masks.from_polygons([xy.reshape(-1).tolist()], h, w)
            if cls == "0":
                ious.append(max(masks.iou(drawn, t) for t in mask_store[image_id]))
    # The outline of the largest part, redrawn by COCO's rasteriser: the same mask but for edge pixels.
    assert len(ious) == 10 and min(ious) > 0.95, ious


def test_formats_without_masks_are_refused(runner, mask_store, tmp_path):
    for fmt in ("dlib-xml", "yolo-pose"):
        r = runner.invoke(
            args=["oiap", "export", "--kind", "object_mask", "--format", fmt, "-o", str(tmp_path / "x")]
        )
        assert r.exit_code != 0 and "object_mask" in r.output
    r = runner.invoke(
        args=["oiap", "export", "--kind", "face_box", "--format", "yolo-seg", "-o", str(tmp_path / "y")]
    )
    assert r.exit_code != 0 and "yolo-seg" in r.output


def test_web_export_streams_coco_masks_and_a_yolo_seg_zip(admin_client, mask_store):
    resp = admin_client.get("/export/download?kind=object_mask&format=coco")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    doc = json.loads(resp.data)
    assert len(doc["annotations"]) == 14 and all("counts" in a["segmentation"] for a in doc["annotations"])
    resp = admin_client.get("/export/download?kind=object_mask&format=yolo-seg")
    assert resp.status_code == 200 and resp.mimetype == "application/zip"
    with zipfile.ZipFile(io.BytesIO(resp.data)) as zf:
        labels = [n for n in zf.namelist() if n.startswith("labels/train/")]
        assert len(labels) == 4
        assert all(len(line.split()) > 7 for n in labels for line in zf.read(n).decode().splitlines())
