"""Writers: merged rows (merge.TrainingRow) to CSV, COCO keypoints or detection, dlib XML, YOLO(-pose), Open Images;
object masks to COCO segmentation, Open Images mask PNGs + CSV, YOLO segmentation polygons.

Each text writer is a generator of str chunks, so the CLI writes them to a file or stdout and the web
export streams them as a response; none holds more than one image's rows (COCO spools its image
table to a temporary file). Pixel formats take the image size from the store, or read it from the
image file's header when the store has none.

Object boxes (CLASS_KINDS) carry a class each: COCO gets one category per class (numbered as met,
named by `names`, MID -> display name, listed after the images since the classes are known only
then; an Open Images group-of box is COCO's iscrowd), YOLO one class index per class with the names
in data.yaml and classes.txt, and `class_list_chunks` writes the class descriptions file that goes
beside an Open Images CSV.
"""

import json
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import groupby
from xml.sax.saxutils import quoteattr

from ..errors import InvalidInput
from ..kinds import FACE_LABEL, LANDMARK68_GROUPS, flip_index, get_kind, point_names
from .merge import TrainingRow

FORMATS = ("csv", "coco", "dlib-xml", "yolo-pose", "yolo", "openimages", "original-csv", "yolo-seg")
# The YOLO writers write YOLO-pose labels for kinds with points, plain YOLO detection labels for box
# kinds and polygons for masks: "yolo", "yolo-pose" and "yolo-seg" name the same folder/zip writer.
YOLO_FORMATS = ("yolo", "yolo-pose", "yolo-seg")
# Kinds whose boxes each have a class of their own (an Open Images MID), not the one face class.
CLASS_KINDS = ("object_box", "object_mask")
OPENIMAGES_COLUMNS = (
    "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,"
    "IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside"
).split(",")

# A function from a row to (file path text, (width, height) or None): see images.py.
ImageInfo = Callable[[TrainingRow], tuple[str, tuple[int, int] | None]]


def csv_header(kind: str) -> list[str]:
    """The training CSV's columns for a kind."""
    n = get_kind(kind).n_points
    cols = "image_id split source weight annotation_id set x0 y0 x1 y1".split()
    for i in range(1, n + 1):
        cols += [f"{i}x", f"{i}y"]
    return cols


def _num(v: float | None) -> str:
    return "" if v is None else repr(float(v))


def _csv_text(s: str) -> str:
    # Set names are free text; quote as the csv module would.
    if any(c in s for c in ',"\r\n'):
        return '"' + s.replace('"', '""') + '"'
    return s


_VISIBLE_SEP = re.compile(r",-?[0-9]+\],\[")


def _points_xy(points_json: str | None, n: int) -> str:
    """The 'x,y,x,y,...' CSV text of n points from the stored JSON, without a float round trip."""
    if n == 0:
        return ""
    if not points_json:
        return ",".join(["0,0"] * n)
    # Stored as [[x,y,v],[x,y,v],...]: drop each ",v],[" with one regex pass rather than parse and
    # re-format 136 floats per row (the hot loop of a million-row export).
    inner = points_json.replace(" ", "")[2:-2]
    flat = _VISIBLE_SEP.sub(",", inner)
    head, _, last_v = flat.rpartition(",")
    if flat.count(",") == 2 * n and last_v.lstrip("-").isdigit():
        return head
    # Anything else (points without a visibility flag, a wrong count): the slow, general way.
    pts = json.loads(points_json)
    xy = [f"{p[0]!r},{p[1]!r}" for p in pts[:n]]
    return ",".join(xy + ["0,0"] * (n - len(xy)))


def csv_chunks(rows: Iterable[TrainingRow], kind: str, batch: int = 2000) -> Iterator[str]:
    """The training CSV (header, then one line per row), in chunks of `batch` lines."""
    n = get_kind(kind).n_points
    yield ",".join(csv_header(kind)) + "\n"
    lines: list[str] = []
    set_text: dict[str, str] = {}
    for r in rows:
        s = set_text.get(r.set_name)
        if s is None:
            s = set_text[r.set_name] = _csv_text(r.set_name)
        head = (
            f"{r.image_id},{r.split},{r.source},{r.weight!r},{r.annotation_id},{s},"
            f"{_num(r.x0)},{_num(r.y0)},{_num(r.x1)},{_num(r.y1)}"
        )
        lines.append(head + "," + _points_xy(r.points_json, n) if n else head)
        if len(lines) >= batch:
            yield "\n".join(lines) + "\n"
            lines = []
    if lines:
        yield "\n".join(lines) + "\n"


# Google's Source values: an Open Images box keeps its own (xclick, activemil, ...); a box drawn or
# corrected here is drawn by hand (freeform); a machine box a reviewer rated good is a machine box
# verified by a human (activemil); an unrated machine box is a machine label (Google's "machine", whose
# Confidence is the model's score). Verified boxes have Confidence 1, as in Google's bbox files.
OPENIMAGES_SOURCE = {"human": "freeform", "machine_good": "activemil", "machine_unrated": "machine"}


def openimages_source(r: TrainingRow) -> tuple[str, float]:
    """(Source, Confidence) of a row with Google's meaning."""
    own = r.flags.get("Source")
    if own:
        return str(own), 1.0
    if r.source == "machine_unrated":
        return "machine", float(r.score) if r.score is not None else r.weight
    # A source the map does not know (a later merge rule's) is written as it is, not dropped.
    return OPENIMAGES_SOURCE.get(r.source, r.source), 1.0


def openimages_chunks(
    rows: Iterable[TrainingRow], kind: str, not_openimages: list[str] | None = None
) -> Iterator[str]:
    """Open Images bbox CSV (ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,Is...).

    Only Open Images images: rows of an image with a stored path (a folder import, the demo) are
    left out, their image ids appended once each to not_openimages.
    """
    yield ",".join(OPENIMAGES_COLUMNS) + "\n"
    last_skipped = None
    for r in rows:
        if r.x0 is None:
            continue
        if r.path is not None:
            if not_openimages is not None and r.image_id != last_skipped:
                not_openimages.append(r.image_id)
            last_skipped = r.image_id
            continue
        f = r.flags
        flags = ",".join(str(int(f.get(k, 0) or 0)) for k in OPENIMAGES_COLUMNS[8:])
        source, confidence = openimages_source(r)
        yield (
            f"{r.image_id},{source},{r.label or FACE_LABEL},{confidence!r},"
            f"{_num(r.x0)},{_num(r.x1)},{_num(r.y0)},{_num(r.y1)},{flags}\n"
        )


ORIGINAL_KINDS = ("face_box", "face_landmarks68")


def original_csv_chunks(rows: Iterable[TrainingRow], kind: str) -> Iterator[str]:
    """The original project's files: face_bbox_*.csv (img_id,left,top,right,bottom) for face_box, and
    face_landmarks_*.csv (img_id,source,bbox_*,face_bbox_*,1x,1y..68x,68y) for face_landmarks68.

    Normalised coordinates, as its FaceBoundingBoxAnnotationSet / FaceLandmarkAnnotationSet write
    them. A landmark row's box goes in face_bbox (source 'face_bbox': the landmarks sit on a face
    detector's box), bbox stays zeros (it meant an Open Images box); absent points are 0,0.
    """
    if kind not in ORIGINAL_KINDS:
        # Checked here, not on the first chunk: before any output file is opened.
        raise InvalidInput(
            f"original-csv writes {' and '.join(ORIGINAL_KINDS)} (the original project's files), not {kind}"
        )
    return _original_bbox_chunks(rows) if kind == "face_box" else _original_landmarks_chunks(rows)


def _original_bbox_chunks(rows: Iterable[TrainingRow]) -> Iterator[str]:
    yield "img_id,left,top,right,bottom\n"
    for r in rows:
        if r.x0 is not None:
            yield f"{r.image_id},{_num(r.x0)},{_num(r.y0)},{_num(r.x1)},{_num(r.y1)}\n"


def _original_landmarks_chunks(rows: Iterable[TrainingRow]) -> Iterator[str]:
    head = ["img_id", "source"] + [f"{b}_{s}" for b in ("bbox", "face_bbox") for s in SIDES]
    head += [f"{i}{c}" for i in range(1, 69) for c in "xy"]
    yield ",".join(head) + "\n"
    for r in rows:
        box = r.box or (0.0, 0.0, 0.0, 0.0)
        yield (
            f"{r.image_id},face_bbox,0.0,0.0,0.0,0.0,{','.join(_num(v) for v in box)},"
            f"{_points_xy(r.points_json, 68)}\n"
        )


SIDES = ("left", "top", "right", "bottom")


def _visibility(p: list) -> int:
    """COCO/YOLO visibility: 0 absent (0, 0), 1 labelled but occluded, 2 visible."""
    if not p[0] and not p[1]:
        return 0
    return 2 if (p[2] if len(p) > 2 else 1) else 1


def coco_category(kind: str) -> dict:
    """The COCO category of a kind: keypoint names and the skeleton (1-based) from the contour groups."""
    names = point_names(kind)
    cat = {"id": 1, "name": "face", "supercategory": "person"}
    if names:
        cat["keypoints"] = names
        skeleton = []
        if len(names) == 68:
            for idx, closed in LANDMARK68_GROUPS.values():
                chain = idx + [idx[0]] if closed else idx
                skeleton += [[a + 1, b + 1] for a, b in zip(chain, chain[1:], strict=False)]
        cat["skeleton"] = skeleton
    return cat


def coco_chunks(
    rows: Iterable[TrainingRow], kind: str, image_info: ImageInfo, names: Mapping[str, str] | None = None
) -> Iterator[str]:
    """COCO keypoints (or, for object boxes, detection) JSON, written incrementally; the image table is
    spooled and written last (object boxes: then the categories, one per class met, named by `names`)."""
    n = get_kind(kind).n_points
    per_class = kind in CLASS_KINDS
    categories: dict[str, int] = {}
    yield '{"info": ' + json.dumps({"description": f"oiap export, {kind}", "version": "1.0"})
    yield ', "licenses": []'
    if not per_class:
        yield ', "categories": [' + json.dumps(coco_category(kind)) + "]"
    yield ', "annotations": ['
    images = tempfile.SpooledTemporaryFile(max_size=4 << 20, mode="w+")
    first_ann = True
    for image_no, w, h, group in _coco_images(rows, image_info, images):
        for r in group:
            box = r.box
            if box is None:
                continue
            bx, by, bw, bh = box[0] * w, box[1] * h, (box[2] - box[0]) * w, (box[3] - box[1]) * h
            ann = {
                "id": r.annotation_id,
                "image_id": image_no,
                "category_id": 1,
                "bbox": [round(bx, 2), round(by, 2), round(bw, 2), round(bh, 2)],
                "area": round(bw * bh, 2),
                "iscrowd": 0,
            }
            if per_class:
                ann["category_id"] = categories.setdefault(r.label or FACE_LABEL, len(categories) + 1)
                flags = r.flags
                # A group-of box (several objects, one box) is what COCO's crowd regions are.
                ann["iscrowd"] = int(bool(flags.get("IsGroupOf")))
                ann["flags"] = {k: v for k, v in flags.items() if k.startswith("Is")}
            if n:
                kps: list[float] = []
                pts = r.points or []
                for i in range(n):
                    p = pts[i] if i < len(pts) else [0, 0, 0]
                    v = _visibility(p)
                    kps += [round(p[0] * w, 2), round(p[1] * h, 2), v] if v else [0, 0, 0]
                ann["keypoints"] = kps
                ann["num_keypoints"] = sum(1 for v in kps[2::3] if v)
            ann["source"] = r.source
            ann["weight"] = r.weight
            yield ("" if first_ann else ",") + json.dumps(ann)
            first_ann = False
    yield from _coco_tail(images, _class_categories(categories, names) if per_class else None)


def _sized_images(
    rows: Iterable[TrainingRow], image_info: ImageInfo
) -> Iterator[tuple[str, int, int, list[TrainingRow]]]:
    """(image file, width, height, rows) per image whose size is known; the pixel formats skip the
    others (image_info counts them in `missing`)."""
    for _image_id, group in groupby(rows, key=lambda r: (r.split, r.image_id)):
        group = list(group)
        file_name, size = image_info(group[0])
        if size is not None:
            yield file_name, size[0], size[1], group


def _coco_images(
    rows: Iterable[TrainingRow], image_info: ImageInfo, images
) -> Iterator[tuple[int, int, int, list[TrainingRow]]]:
    """(COCO image id, width, height, rows) per image of known size, its entry written to `images`
    (the spooled image table); images of unknown size are left out (image_info counts them)."""
    image_no = 0
    for file_name, w, h, group in _sized_images(rows, image_info):
        image_no += 1
        images.write(
            ("," if image_no > 1 else "")
            + json.dumps(
                {
                    "id": image_no,
                    "file_name": file_name,
                    "width": w,
                    "height": h,
                    "oiap_image_id": group[0].image_id,
                    "split": group[0].split,
                }
            )
        )
        yield image_no, w, h, group


def _coco_tail(images, categories: list[dict] | None) -> Iterator[str]:
    """The spooled image table (closed after), then the categories when they come last."""
    yield '], "images": ['
    images.seek(0)
    while chunk := images.read(1 << 16):
        yield chunk
    images.close()
    yield "]}\n" if categories is None else '], "categories": ' + json.dumps(categories) + "}\n"


def _class_categories(categories: Mapping[str, int], names: Mapping[str, str] | None) -> list[dict]:
    """COCO categories of object classes as met: display name, and the MID beside it."""
    return [
        {"id": i, "name": class_name(label, names), "supercategory": "object", "mid": label}
        for label, i in categories.items()
    ]


def class_name(label: str, names: Mapping[str, str] | None = None) -> str:
    """An object class's display name: from `names`, else Open Images' name of the face class, else the MID."""
    return (names or {}).get(label) or ("Human face" if label == FACE_LABEL else label)


def class_list_chunks(labels: Iterable[str], names: Mapping[str, str] | None = None) -> Iterator[str]:
    """Open Images' class descriptions CSV (LabelName,DisplayName) for the classes given."""
    yield "LabelName,DisplayName\n"
    for label in labels:
        yield f"{label},{_csv_text(class_name(label, names))}\n"


def dlib_xml_chunks(rows: Iterable[TrainingRow], kind: str, image_info: ImageInfo) -> Iterator[str]:
    """imglab XML in pixels, as dlib's train_shape_predictor / train_simple_object_detector read it."""
    n = get_kind(kind).n_points
    yield (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        "<?xml-stylesheet type='text/xsl' href='image_metadata_stylesheet.xsl'?>\n"
        f"<dataset>\n<name>oiap {kind}</name>\n<comment>Exported by oiap; coordinates in pixels.</comment>\n"
        "<images>\n"
    )
    for file_name, w, h, group in _sized_images(rows, image_info):
        out = [f"  <image file={quoteattr(file_name)} width='{w}' height='{h}'>\n"]
        for r in group:
            box = r.box
            if box is None:
                continue
            left, top = round(box[0] * w), round(box[1] * h)
            bw, bh = round(box[2] * w) - left, round(box[3] * h) - top
            out.append(f"    <box top='{top}' left='{left}' width='{bw}' height='{bh}'>\n")
            if r.label and r.label != FACE_LABEL:
                out.append(f"      <label>{r.label}</label>\n")
            for i, p in enumerate((r.points or [])[:n]):
                # dlib reads a missing part as "not present"; write only labelled points.
                if _visibility(p):
                    out.append(f"      <part name='{i:02d}' x='{round(p[0] * w)}' y='{round(p[1] * h)}'/>\n")
            out.append("    </box>\n")
        out.append("  </image>\n")
        yield "".join(out)
    yield "</images>\n</dataset>\n"


class YoloLabels:
    """YOLO(-pose) label text per image, and the data YAML: shared by the folder and the zip writers."""

    def __init__(self, kind: str, names: Mapping[str, str] | None = None) -> None:
        self.kind = kind
        self.n = get_kind(kind).n_points
        self.classes: dict[str, int] = {}
        self.splits: dict[str, int] = {}
        self.names = names or {}

    def class_name(self, label: str) -> str:
        """A class's name in data.yaml and classes.txt: 'face' for the face kinds, else its display name."""
        if self.kind not in CLASS_KINDS and label == FACE_LABEL:
            return "face"
        return class_name(label, self.names)

    def classes_txt(self) -> str:
        """classes.txt: one class name per line, line i naming class index i."""
        return "".join(f"{self.class_name(label)}\n" for label in self.classes) or "face\n"

    def label_files(
        self, rows: Iterable[TrainingRow], image_info: ImageInfo
    ) -> Iterator[tuple[str, str, str, str]]:
        """(split, image_id, image file, label text) per image, classes numbered as met."""
        for (split, image_id), group in groupby(rows, key=lambda r: (r.split, r.image_id)):
            lines = []
            file_name = size = None
            for r in group:
                if file_name is None:
                    file_name, size = image_info(r)
                line = self.label_line(r, size)
                if line is not None:
                    lines.append(line)
            self.splits[split] = self.splits.get(split, 0) + 1
            yield split, image_id, file_name, "\n".join(lines) + "\n"

    def label_line(self, r: TrainingRow, size: tuple[int, int] | None) -> str | None:
        """`class cx cy w h` (then x y v per point), normalised; None for a row without a box."""
        box = r.box
        if box is None:
            return None
        cls = self.classes.setdefault(r.label or FACE_LABEL, len(self.classes))
        x0, y0, x1, y1 = (min(max(v, 0.0), 1.0) for v in box)
        parts = [
            str(cls),
            f"{(x0 + x1) / 2:.6f}",
            f"{(y0 + y1) / 2:.6f}",
            f"{x1 - x0:.6f}",
            f"{y1 - y0:.6f}",
        ]
        if self.n:
            pts = r.points or []
            for i in range(self.n):
                p = pts[i] if i < len(pts) else [0, 0, 0]
                v = _visibility(p)
                parts += [f"{p[0]:.6f}", f"{p[1]:.6f}", str(v)] if v else ["0", "0", "0"]
        return " ".join(parts)

    def data_yaml(self, root: str = ".") -> str:
        """The Ultralytics data YAML: image folders per split, kpt_shape, flip_idx, class names."""
        key = {"train": "train", "validation": "val", "test": "test"}
        out = [f"# oiap export, {self.kind}", f"path: {root}"]
        for split in self.splits:
            out.append(f"{key[split]}: images/{split}")
        if "validation" not in self.splits and "train" in self.splits:
            out.append("val: images/train  # no validation split exported")
        if self.n:
            out.append(f"kpt_shape: [{self.n}, 3]")
            out.append(f"flip_idx: [{', '.join(str(i) for i in flip_index(self.kind))}]")
        out.append("names:")
        for label, cls in self.classes.items():
            name = self.class_name(label)
            out.append(f"  {cls}: {name if name == 'face' else json.dumps(name)}")
        if not self.classes:
            out.append("  0: face")
        return "\n".join(out) + "\n"


# --- object_mask: COCO segmentation, Open Images mask PNGs + CSV, YOLO segmentation polygons ---------


def _mask_on(r: TrainingRow, w: int, h: int):
    """The row's mask as a boolean h x w array (resized by nearest neighbour if stored at another size)."""
    import numpy as np
    from PIL import Image

    from ..annotations import masks

    m = masks.decode(r.mask)
    if m.shape != (h, w):
        m = np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize((w, h), Image.Resampling.NEAREST)) > 0
    return m


def _rle_on(r: TrainingRow, w: int, h: int) -> dict:
    """The row's mask as a COCO RLE dict {"size": [h, w], "counts": str} on an image of w x h."""
    from ..annotations import masks

    if tuple(masks.size(r.mask)) == (h, w):
        return json.loads(r.mask)
    return json.loads(masks.encode(_mask_on(r, w, h)))


def coco_mask_chunks(
    rows: Iterable[TrainingRow], image_info: ImageInfo, names: Mapping[str, str] | None = None
) -> Iterator[str]:
    """COCO instance segmentation JSON (RLE segmentation, as pycocotools reads it), one category per class.

    Categories are numbered as their classes are met (name: the display name from `names`, else the
    MID; `mid`: the MID) and written last, after the image table (spooled), so the rows still stream.
    """
    from ..annotations import masks

    yield '{"info": ' + json.dumps({"description": "oiap export, object_mask", "version": "1.0"})
    yield ', "licenses": [], "annotations": ['
    images = tempfile.SpooledTemporaryFile(max_size=4 << 20, mode="w+")
    categories: dict[str, int] = {}
    first_ann = True
    for image_no, w, h, group in _coco_images(rows, image_info, images):
        for r in group:
            if r.mask is None or r.box is None:
                continue
            rle = _rle_on(r, w, h)
            x0, y0, x1, y1 = r.box
            ann = {
                "id": r.annotation_id,
                "image_id": image_no,
                "category_id": categories.setdefault(r.label or "object", len(categories) + 1),
                "segmentation": rle,
                "area": masks.area(json.dumps(rle)),
                "bbox": [
                    round(x0 * w, 2),
                    round(y0 * h, 2),
                    round((x1 - x0) * w, 2),
                    round((y1 - y0) * h, 2),
                ],
                "iscrowd": 0,
                "source": r.source,
                "weight": r.weight,
            }
            yield ("" if first_ann else ",") + json.dumps(ann)
            first_ann = False
    yield from _coco_tail(images, _class_categories(categories, names))


OPENIMAGES_MASK_COLUMNS = (
    "MaskPath,ImageID,LabelName,BoxID,BoxXMin,BoxXMax,BoxYMin,BoxYMax,PredictedIoU,Clicks".split(",")
)


def openimages_mask_files(
    rows: Iterable[TrainingRow], image_info: ImageInfo
) -> Iterator[tuple[str, str, bytes]]:
    """(split, MaskPath, PNG bytes) per mask, then ("", CSV name, CSV bytes) per split: Google's layout.

    MaskPath is `<ImageID>_<MID without slashes>_<BoxID>.png` (BoxID: the imported one, else the
    annotation id in 8 hex digits); the PNG is the mask on the image's grid, 0/255 (Google's are
    smaller; the importer resizes either). The caller puts each PNG into `<split>-masks-<c>.zip`.
    """
    import io

    import numpy as np
    from PIL import Image

    csvs: dict[str, list[str]] = {}
    for r in rows:
        if r.mask is None or r.box is None:
            continue
        _name, size = image_info(r)
        if size is None:
            continue
        w, h = size
        box_id = str(r.flags.get("BoxID") or f"{r.annotation_id:08x}")
        label = r.label or "object"
        mask_path = f"{r.image_id}_{label.replace('/', '')}_{box_id}.png"
        buf = io.BytesIO()
        Image.fromarray(_mask_on(r, w, h).astype(np.uint8) * 255).save(buf, format="PNG", optimize=True)
        yield r.split, mask_path, buf.getvalue()
        predicted = r.flags.get("PredictedIoU", r.score if r.score is not None else "")
        x0, y0, x1, y1 = r.box
        csvs.setdefault(r.split, [",".join(OPENIMAGES_MASK_COLUMNS)]).append(
            f"{mask_path},{r.image_id},{label},{box_id},{_num(x0)},{_num(x1)},{_num(y0)},{_num(y1)},{predicted},"
        )
    for split, lines in csvs.items():
        yield "", f"{split}-annotations-object-segmentation.csv", ("\n".join(lines) + "\n").encode()


def mask_polygon(mask, max_points: int = 200) -> list[tuple[float, float]]:
    """The outline of a mask's largest part (OpenCV's outer contour), pixel corners, at most about
    max_points vertices (simplified by Douglas-Peucker, 0.5 px and up); [] for an empty mask."""
    import cv2
    import numpy as np

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return []
    c = max(contours, key=cv2.contourArea)
    eps = 0.5
    while len(c) > max_points:
        c = cv2.approxPolyDP(c, eps, True)
        eps *= 2
    return [(float(x), float(y)) for x, y in c.reshape(-1, 2)]


class YoloSegLabels(YoloLabels):
    """YOLO segmentation labels: `class x1 y1 x2 y2 ...` (the largest part's outline, normalised)."""

    def label_line(self, r: TrainingRow, size: tuple[int, int] | None) -> str | None:
        if r.mask is None or size is None:
            return None
        w, h = size
        poly = mask_polygon(_mask_on(r, w, h))
        if len(poly) < 3:
            return None
        cls = self.classes.setdefault(r.label or "object", len(self.classes))
        coords = " ".join(f"{min(max(x / w, 0.0), 1.0):.6f} {min(max(y / h, 0.0), 1.0):.6f}" for x, y in poly)
        return f"{cls} {coords}"


def yolo_labels(kind: str, names: Mapping[str, str] | None = None) -> YoloLabels:
    """The YOLO label writer of a kind: segmentation polygons for object_mask, else boxes (and points)."""
    return YoloSegLabels(kind, names) if kind == "object_mask" else YoloLabels(kind, names)
