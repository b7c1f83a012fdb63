"""Export entry points: choose rows (training or test ground truth), resolve image files, run a writer."""

import io
import os
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from sqlite_utils import Database

from ..classes import boxable, names_in_store
from ..errors import InvalidInput, OiapError
from ..images.layout import image_path
from .merge import DEFAULT_UNRATED_WEIGHT, TrainingRow, ground_truth, iter_training_rows
from .writers import (
    CLASS_KINDS,
    FORMATS,
    class_list_chunks,
    coco_chunks,
    coco_mask_chunks,
    csv_chunks,
    dlib_xml_chunks,
    openimages_chunks,
    openimages_mask_files,
    original_csv_chunks,
    yolo_labels,
)

TEXT_FORMATS = ("csv", "coco", "dlib-xml", "openimages", "original-csv")
SUFFIX = {
    "csv": ".csv",
    "coco": ".json",
    "dlib-xml": ".xml",
    "openimages": ".csv",
    "original-csv": ".csv",
    "yolo-pose": ".zip",
    "yolo": ".zip",
    "yolo-seg": ".zip",
}


def select_rows(
    db: Database,
    kind: str,
    splits: Sequence[str] = ("train",),
    sets: Sequence[str] | None = None,
    include_unrated: bool = True,
    unrated_weight: float = DEFAULT_UNRATED_WEIGHT,
) -> Iterator[TrainingRow]:
    """Training rows, or, when the split asked for is exactly ('test',), the test ground truth.

    The test split is exported only alone and only as evaluation ground truth (human + good machine,
    no unrated rows), so it can never slip into a training file next to train rows.
    """
    splits = tuple(splits)
    if "test" in splits:
        if splits != ("test",):
            raise InvalidInput("the test split is exported alone, as evaluation ground truth: --split test")
        # Object boxes' ground truth is Open Images' own (imported) boxes too, as their metric takes it.
        return ground_truth(db, kind, "test", sets=sets, imports=kind in CLASS_KINDS)
    return iter_training_rows(db, kind, splits, sets, include_unrated, unrated_weight)


class ImageInfo:
    """Row -> (file path text, (width, height) or None), for the pixel formats.

    The path comes from app.images.layout.image_path (stored path, or the Open Images layout); the size from the store, else from the file's header. Images with no
    known size are counted in `missing` and their rows skipped by the pixel writers.
    """

    def __init__(self, config: Mapping | None = None) -> None:
        self.config = config or {}
        self.missing: list[str] = []
        # Images the openimages writer left out: not Open Images ids (a stored path).
        self.not_openimages: list[str] = []
        self._last: tuple[str, tuple[str, tuple[int, int] | None]] | None = None

    def resolve(self, row: TrainingRow) -> Path | None:
        """The image file, or None when it cannot be found."""
        try:
            return image_path(self.config, {"id": row.image_id, "split": row.split, "path": row.path})
        except OiapError:
            return None

    def __call__(self, row: TrainingRow) -> tuple[str, tuple[int, int] | None]:
        if self._last is not None and self._last[0] == row.image_id:
            return self._last[1]
        found = self.resolve(row)
        name = str(found) if found else (row.path or f"{row.image_id}.jpg")
        size = (row.width, row.height) if row.width and row.height else None
        if size is None and found is not None:
            from PIL import Image

            try:
                with Image.open(found) as im:  # reads the header only
                    size = im.size
            except OSError:
                size = None
        if size is None:
            self.missing.append(row.image_id)
        self._last = (row.image_id, (name, size))
        return name, size


def text_chunks(
    rows, kind: str, fmt: str, image_info: ImageInfo, names: Mapping[str, str] | None = None
) -> Iterator[str]:
    """The chunks of a text format (csv, coco, dlib-xml, openimages); `names`: class MID -> display name."""
    if fmt == "csv":
        return csv_chunks(rows, kind)
    if fmt == "openimages":
        return openimages_chunks(rows, kind, image_info.not_openimages)
    if fmt == "original-csv":
        return original_csv_chunks(rows, kind)
    if fmt == "coco" and kind == "object_mask":
        return coco_mask_chunks(rows, image_info, names)
    if fmt == "coco":
        return coco_chunks(rows, kind, image_info, names)
    if fmt == "dlib-xml":
        return dlib_xml_chunks(rows, kind, image_info)
    raise InvalidInput(f"unknown text format {fmt!r}; use one of: {', '.join(FORMATS)}")


def write_yolo_folder(
    rows, kind: str, folder: str | Path, image_info: ImageInfo, names: Mapping[str, str] | None = None
) -> dict:
    """YOLO(-pose) dataset folder: labels/<split>/<id>.txt, images/<split>/<id>.jpg links, data.yaml,
    classes.txt."""
    folder = Path(folder)
    # Made up front: a selection with no rows still gives a folder with its data.yaml.
    folder.mkdir(parents=True, exist_ok=True)
    labels = yolo_labels(kind, names)
    n_images = 0
    for split, image_id, _file, text in labels.label_files(rows, image_info):
        (folder / "labels" / split).mkdir(parents=True, exist_ok=True)
        (folder / "labels" / split / f"{image_id}.txt").write_text(text)
        src = _existing(_file)
        if src is not None:
            link = folder / "images" / split / f"{image_id}{src.suffix or '.jpg'}"
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() or link.exists():
                link.unlink()
            # Ultralytics finds labels by swapping /images/ for /labels/: link the files in place.
            os.symlink(src, link)
        n_images += 1
    (folder / "data.yaml").write_text(labels.data_yaml(str(folder.resolve())))
    (folder / "classes.txt").write_text(labels.classes_txt())
    return {"images": n_images, "classes": len(labels.classes)}


def _existing(name: str | None) -> Path | None:
    if not name:
        return None
    p = Path(name)
    return p if p.is_absolute() and p.is_file() else None


class _Sink(io.RawIOBase):
    """A write-only, unseekable byte sink that the zip writer fills and the generator drains."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.buf += b
        return len(b)

    def drain(self) -> bytes:
        out = bytes(self.buf)
        self.buf.clear()
        return out


def yolo_zip_chunks(
    rows, kind: str, image_info: ImageInfo, names: Mapping[str, str] | None = None
) -> Iterator[bytes]:
    """The YOLO(-pose) dataset as a streamed zip: labels/<split>/<id>.txt, images.csv, data.yaml, classes.txt.

    Image files are not copied: images.csv maps each image id to its file on the server.
    """
    sink = _Sink()
    labels = yolo_labels(kind, names)
    # The index grows with the images: spool it to disk rather than hold it.
    index = tempfile.SpooledTemporaryFile(max_size=4 << 20, mode="w+")
    index.write("image_id,split,file\n")
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as zf:
        for split, image_id, file_name, text in labels.label_files(rows, image_info):
            zf.writestr(f"labels/{split}/{image_id}.txt", text)
            index.write(f"{image_id},{split},{file_name}\n")
            if len(sink.buf) > 1 << 16:
                yield sink.drain()
        index.seek(0)
        with zf.open("images.csv", "w") as out:
            while chunk := index.read(1 << 16):
                out.write(chunk.encode())
        index.close()
        zf.writestr("data.yaml", labels.data_yaml("."))
        zf.writestr("classes.txt", labels.classes_txt())
    yield sink.drain()


def class_names(db: Database, labels: Iterable[str] | None = None) -> dict[str, str]:
    """Class MID -> display name: Open Images' shipped boxable list (app/classes.py), else the name an
    import stored in its set's params (labels named by neither are left out; writers then show the MID).

    The shipped list first, so a model's classes (NanoDet's Person, a MID with no import behind it) are
    named as Open Images names them."""
    names = boxable() | names_in_store(db)
    return names if labels is None else {k: names[k] for k in set(labels) if k in names}


def class_list_for(rows: Iterable[TrainingRow], names: Mapping[str, str]) -> Iterator[str]:
    """The class descriptions CSV (LabelName,DisplayName) of the classes the rows hold, sorted by MID:
    the rows are read to the end first, since the classes are known only then."""
    labels = {r.label for r in rows if r.label is not None}
    return class_list_chunks(sorted(labels), names)


def write_openimages_masks(rows, folder: str | Path, image_info: ImageInfo) -> dict:
    """Open Images' segmentation layout in a folder: `<split>-annotations-object-segmentation.csv` and
    the mask PNGs in `<split>-masks-<first character of MaskPath>.zip` (what import-openimages-masks reads)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    zips: dict[str, zipfile.ZipFile] = {}
    n = 0
    try:
        for split, name, data in openimages_mask_files(rows, image_info):
            if not split:
                (folder / name).write_bytes(data)
                continue
            zname = f"{split}-masks-{name[0]}.zip"
            if zname not in zips:
                # PNGs are compressed already: stored, not deflated again.
                zips[zname] = zipfile.ZipFile(folder / zname, "w", zipfile.ZIP_STORED)
            zips[zname].writestr(name, data)
            n += 1
    finally:
        for zf in zips.values():
            zf.close()
    return {"masks": n, "zips": sorted(zips)}
