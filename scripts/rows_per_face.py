"""Rows per face of every export format, on the demo after two bulk runs and a few ratings.

Issue 17's done-criterion: `flask oiap export` gives exactly one training row per face. This builds
a fresh demo instance (`flask oiap demo`, which runs the builtin models once), runs
`flask oiap bulk-annotate --kind face_landmarks68` twice more (boxes and 68 points each time), rates
a few rows of the newest runs (2 good and 2 bad boxes, 1 good and 1 bad 68-point row), then exports
the train split of face_box and face_landmarks68 in every format and counts the rows of each file.

Faces are counted without the merge: the live annotations of the kind on each train image,
grouped by union-find on box IoU >= 0.5 (a landmark row's box, else its parent's), so a face that
any set holds is one face. Each format's rows / faces, then from the CSV (which names each row's
annotation) how many rows each face got; the last line is the most rows any face got.

    python scripts/rows_per_face.py                      # a temporary instance
    python scripts/rows_per_face.py --keep /tmp/rpf      # keep the instance to look at
"""

import argparse
import csv
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORMATS = ("csv", "coco", "dlib-xml", "openimages", "yolo-pose")
KINDS = ("face_box", "face_landmarks68")


def flask(instance: Path, *args: str) -> str:
    """Run `flask oiap ARGS` on the instance; its stdout (stops on a failure, showing stderr)."""
    env = os.environ | {"OIAP_INSTANCE": str(instance), "FLASK_APP": "app:create_app"}
    exe = str(Path(sys.executable).with_name("flask"))
    r = subprocess.run([exe, "oiap", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"flask oiap {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout


def rate_a_few(db_path: Path) -> dict:
    """Rate rows of the newest bulk run's sets, as reviewers would: returns {set name: ratings}."""
    sys.path.insert(0, str(ROOT))
    from app.annotations.rows import rate
    from app.db import connect

    db = connect(str(db_path))
    done = {}
    for kind, values in (("face_box", ("good", "good", "bad", "bad")), ("face_landmarks68", ("good", "bad"))):
        set_id, name = db.execute(
            "SELECT id, name FROM annotation_sets WHERE kind = ? AND source = 'model' AND model_id IS NOT NULL"
            " ORDER BY id DESC LIMIT 1",
            [kind],
        ).fetchone()
        ids = [
            r[0]
            for r in db.execute(
                "SELECT a.id FROM annotations a JOIN images i ON i.id = a.image_id"
                " WHERE a.set_id = ? AND a.deleted = 0 AND a.rating IS NULL AND i.split = 'train'"
                " ORDER BY a.id LIMIT ?",
                [set_id, len(values)],
            )
        ]
        for ann_id, value in zip(ids, values, strict=False):
            rate(db, ann_id, None, value)
        done[name] = list(values[: len(ids)])
    db.close()
    return done


def find_faces(db_path: Path, kind: str) -> dict[int, tuple[str, int]]:
    """Faces on the train split: live rows of the kind grouped by IoU >= 0.5 (union-find per image);
    annotation id -> (image id, face number)."""
    sys.path.insert(0, str(ROOT))
    from app.annotations.geometry import iou

    conn = sqlite3.connect(db_path)
    by_image: dict[str, list] = {}
    for image_id, ann_id, *box in conn.execute(
        "SELECT a.image_id, a.id, coalesce(a.x0, p.x0), coalesce(a.y0, p.y0), coalesce(a.x1, p.x1),"
        " coalesce(a.y1, p.y1) FROM annotations a JOIN images i ON i.id = a.image_id"
        " LEFT JOIN annotations p ON p.id = a.parent_id"
        " WHERE a.kind = ? AND a.deleted = 0 AND i.split = 'train'",
        [kind],
    ):
        by_image.setdefault(image_id, []).append((ann_id, box))
    conn.close()
    faces = {}
    for image_id, rows in by_image.items():
        boxes = [b for _, b in rows]
        parent = list(range(len(boxes)))
        for i in range(len(boxes)):
            for j in range(i):
                if iou(boxes[i], boxes[j]) >= 0.5:
                    parent[_find(parent, i)] = _find(parent, j)
        faces.update({ann_id: (image_id, _find(parent, i)) for i, (ann_id, _) in enumerate(rows)})
    return faces


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def count_rows(path: Path, fmt: str) -> int:
    """Annotation rows in an export file."""
    if fmt in ("csv", "openimages"):
        return max(0, len(path.read_text().splitlines()) - 1)
    if fmt == "coco":
        return len(json.loads(path.read_text())["annotations"])
    if fmt == "dlib-xml":
        return len(re.findall(r"<box ", path.read_text()))
    with zipfile.ZipFile(path) as zf:
        return sum(len(zf.read(n).decode().splitlines()) for n in zf.namelist() if n.startswith("labels/"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", help="build the instance in this folder (emptied first) and keep it")
    args = ap.parse_args()
    instance = Path(args.keep or tempfile.mkdtemp(prefix="oiap-rpf-"))
    if args.keep and instance.exists():
        shutil.rmtree(instance)
    instance.mkdir(parents=True, exist_ok=True)
    try:
        flask(instance, "init-db")
        print(flask(instance, "demo").strip())
        for _ in range(2):
            flask(instance, "bulk-annotate", "--kind", "face_landmarks68")
        print("rated:", json.dumps(rate_a_few(instance / "oiap.sqlite3")))
        print(flask(instance, "sets", "list").strip())
        worst = 0
        print(f"{'kind':<18} {'format':<11} {'rows':>5} {'faces':>5} {'rows/face':>9}")
        for kind in KINDS:
            face_of = find_faces(instance / "oiap.sqlite3", kind)
            faces = len(set(face_of.values()))
            for fmt in FORMATS:
                out = instance / f"export-{kind}-{fmt}{'.zip' if fmt == 'yolo-pose' else ''}"
                flask(instance, "export", "--kind", kind, "--format", fmt, "-o", str(out))
                n = count_rows(out, fmt)
                print(f"{kind:<18} {fmt:<11} {n:>5} {faces:>5} {n / faces:>9.2f}")
            # The CSV names each row's annotation: rows per face, face by face (the other formats
            # carry the same rows, as their counts show).
            with open(instance / f"export-{kind}-csv") as f:
                per_face = Counter(face_of[int(r["annotation_id"])] for r in csv.DictReader(f))
            most = max(per_face.values(), default=0)
            worst = max(worst, most)
            print(
                f"{kind}: {len(per_face)} of {faces} faces exported, most rows on one face {most},"
                f" faces with 2+ rows {sum(v > 1 for v in per_face.values())}"
            )
        print(f"most rows on one face: {worst}")
    finally:
        if not args.keep:
            shutil.rmtree(instance, ignore_errors=True)


if __name__ == "__main__":
    main()
