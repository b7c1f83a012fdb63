"""Evaluate an object detector (kind object_box) by Open Images' detection metric on a split.

Ground truth (gather_object_truth): the merged object boxes of the split (export.merge.ground_truth:
human rows, machine rows rated good, and Open Images' own imported boxes, which its annotators drew
or verified), each with its IsGroupOf flag, plus the human-verified image-level labels
(images/labels), with Open Images' class hierarchy applied when an import stored it. The detector runs on every image that has either; detections on other images would
all be ignored by the metric, so they are not made.

measure_objects: the model's detections (upright pixels, mapped back to the file's grid as
bulk-annotate does) scored by models/metrics_openimages.py: AP@0.5 per class, mAP over the classes
that have ground truth. A face detector (its detections carry five points, not a class) finds Open
Images' Human face, so a face_box model can be measured on object ground truth too.
"""

from collections.abc import Iterable, Mapping

from sqlite_utils import Database
from tqdm import tqdm

from ..errors import InvalidInput, NotFound
from ..export.merge import ground_truth
from ..images.decode import BadImage, decode
from ..images.labels import class_hierarchy, labels_by_image
from ..images.layout import image_path
from ..kinds import FACE_LABEL
from .metrics_openimages import ImageTruth, expand_hierarchy, open_images_metric

KIND = "object_box"


def gather_object_truth(db: Database, split: str) -> dict[str, dict]:
    """image id -> {"image": images row (id, split, path, rotation), "truth": ImageTruth}; InvalidInput
    when the split has neither boxes nor verified labels."""
    out: dict[str, dict] = {}
    for r in ground_truth(db, KIND, split, imports=True):
        if r.box is None or not r.label:
            continue
        entry = out.setdefault(r.image_id, {"truth": ImageTruth()})
        entry["truth"].boxes.append((r.label, r.box, bool(r.flags.get("IsGroupOf"))))
    for image_id, labels in labels_by_image(db, split).items():
        out.setdefault(image_id, {"truth": ImageTruth()})["truth"].labels = labels
    ancestors, descendants = class_hierarchy(db)
    if ancestors:
        expanded = expand_hierarchy({k: v["truth"] for k, v in out.items()}, ancestors, descendants)
        for image_id, truth in expanded.items():
            out[image_id]["truth"] = truth
    if not out:
        raise InvalidInput(
            f"no object_box ground truth on the {split} split: import Open Images' boxes and "
            "image-level labels (`flask oiap import-openimages --classes ...`), or label or rate some boxes"
        )
    for image_id, entry in out.items():
        row = db.execute("SELECT id, split, path, rotation FROM images WHERE id = ?", [image_id]).fetchone()
        entry["image"] = {"id": row[0], "split": row[1], "path": row[2], "rotation": row[3]}
    return out


def _label(det: tuple) -> str:
    # An object detector gives (box, score, MID); a face detector (box, score, five points).
    return det[2] if len(det) > 2 and isinstance(det[2], str) else FACE_LABEL


EVAL_THRESHOLD = 0.05  # the lowest detection score an evaluation keeps


def measure_objects(
    config: Mapping,
    annotator,
    gt: dict[str, dict],
    *,
    classes: Iterable[str] | None = None,
    progress: bool = False,
    desc: str = "evaluate",
    bar=None,
) -> dict:
    """Run a detector (detect(rgb) -> [(box_px, score, MID), ...]) over gather_object_truth's images and
    score it; stores nothing. Images whose file cannot be read are counted in "skipped"."""
    # AP is computed over the whole ranking of detections: the threshold a detector uses for review
    # (0.3-0.35) would cut off its low-score end and understate AP, so evaluation keeps boxes down to
    # EVAL_THRESHOLD, as the detectors' own EVAL_THRESHOLD says. load_annotator makes a fresh
    # instance per call, so this changes no bulk run.
    if getattr(annotator, "score_threshold", None) is not None:
        annotator.score_threshold = min(annotator.score_threshold, EVAL_THRESHOLD)
    detections = []
    truth = {}
    skipped = 0
    if bar is None:
        bar = tqdm(total=len(gt), desc=desc, unit="img", disable=not progress)
    for image_id, entry in gt.items():
        bar.update(1)
        image = entry["image"]
        try:
            d = decode(image_path(config, image), None, image["rotation"])
        except (NotFound, InvalidInput, BadImage, OSError):
            skipped += 1
            continue
        truth[image_id] = entry["truth"]
        for det in annotator.detect(d.rgb):
            detections.append((image_id, _label(det), d.normalise_box(det[0]), float(det[1])))
    bar.close()
    if not truth:
        raise InvalidInput("no ground-truth image could be read (missing image files?)")
    result = open_images_metric(detections, truth, classes)
    result["skipped"] = skipped
    return result


def _ap_text(ap: float | None) -> str:
    return "—" if ap is None else f"{ap:.4f}"


def echo_lines(model_id: int, split: str, m: dict, names: Mapping[str, str] | None = None) -> list[str]:
    """What `flask oiap evaluate` prints of an object_box result: mAP, counts, then AP per class."""
    names = names or {}
    classes = m.get("classes") or {}
    with_truth = sum(1 for c in classes.values() if c["ap"] is not None)
    lines = [
        f"model {model_id} on {split}: mAP@0.5 {_ap_text(m['map'])} (Open Images' metric) over {with_truth} "
        f"classes with ground truth, {m['images']} images; {m['detections']} detections, "
        f"{m['ignored_unverified']} ignored (class not verified on the image), {m['ignored_group_of']} ignored "
        f"inside group-of boxes, {m.get('skipped', 0)} images unreadable"
    ]
    for label, c in sorted(classes.items(), key=lambda kv: (kv[1]["ap"] is None, -(kv[1]["ap"] or 0))):
        name = names.get(label) or ("Human face" if label == FACE_LABEL else label)
        lines.append(
            f"  {_ap_text(c['ap']):>6}  {name} ({label}): {c['true_positives']:g} of {c['ground_truth']:g} "
            f"found, {c['false_positives']} false positives"
        )
    return lines
