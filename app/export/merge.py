"""The merge rules: which annotations are training data, with what weight. One implementation.

A face is one face across sets (DESIGN.md, "Merge rules for training data"): annotations of one kind
on one image whose boxes overlap with IoU >= 0.5 are the same face (a landmark row's box is its own,
else its parent's, else its points' extent; a human row also holds the machine row it corrects,
its origin_id, whatever the overlap). Per kind and per split each face gives at most ONE row, the
first that exists of:

1. a human annotation (its set's source is 'human'), the newest if several: "human", weight 1;
2. a machine annotation (set source 'model' or 'import') rated good, the newest: "machine_good", 1;
3. a machine annotation nobody rated, the newest, from the newest run of the active model of the
   kind that annotated this image (runs of other models and older runs never train unrated), else
   from a set that is not a model run (an import): "machine_unrated", weight `unrated_weight` (0.5),
   unless `include_unrated=False`;
4. nothing.

A machine row rated bad never trains, and it takes with it the face's unrated machine rows that are
older (a lower id: an earlier run's) or identical (same box and points), and its good rows that are
identical and were rated good before it was rated bad. Deleted and superseded rows (deleted != 0)
never count.

Decisions beyond DESIGN.md:
- a human annotation another reviewer rated bad is left out (and holds no face): peer review
  exists to catch bad human labels;
- the faces are found among every row of the kind on the image, also those outside the `sets`
  asked for; `sets` then keeps the faces whose chosen row is in one of them;
- rows of different classes (labels) are different objects however they overlap (`faces_of`;
  object boxes and masks; faces all share /m/0dzct or have none): a person and the bicycle they
  ride are two objects; a correction that changed the class leaves the machine row (rated bad) in
  its old class;
- images of the test split never train: `iter_training_rows` refuses 'test'. The test split's
  ground truth for evaluation comes from `ground_truth` (human + good machine, same faces).

Rows stream: one SQL query per split ordered by (image_id, annotation id), walked by SQLite's
indexes without a sort (CROSS JOIN fixes the join order: images by split, then their annotations),
and resolved one image at a time, so memory stays flat in the number of rows. Within an image the
chosen rows come out in annotation id order.
"""

import json
from collections.abc import Iterable, Iterator, Sequence
from itertools import groupby

from sqlite_utils import Database

from ..errors import InvalidInput
from ..images.layout import SPLITS
from ..kinds import get_kind

TRAIN_SPLITS = ("train", "validation")
SOURCES = ("human", "machine_good", "machine_unrated")
OVERLAP_IOU = 0.5
DEFAULT_UNRATED_WEIGHT = 0.5


class TrainingRow:
    """One merged annotation: where it comes from, its weight, its box and points (normalised).

    `points_json` is the stored JSON text; `points` decodes it to [[x, y, visible], ...].
    `width`/`height` are the image's pixel size when known; `path` its stored path (None for
    Open Images files resolved from the layout).
    """

    __slots__ = (
        "annotation_id",
        "image_id",
        "split",
        "source",
        "weight",
        "set_id",
        "set_name",
        "origin_id",
        "label",
        "x0",
        "y0",
        "x1",
        "y1",
        "points_json",
        "flags_json",
        "score",
        "width",
        "height",
        "path",
        "human",
        "rating",
        "model_id",
        "rated_at",
        "mask",
    )

    def __init__(self, r: Sequence) -> None:
        (
            self.annotation_id,
            self.image_id,
            self.split,
            set_source,
            rating,
            self.set_id,
            self.set_name,
            self.origin_id,
            self.label,
            self.x0,
            self.y0,
            self.x1,
            self.y1,
            self.points_json,
            self.flags_json,
            self.score,
            self.width,
            self.height,
            self.path,
            self.model_id,
            self.rated_at,
            self.mask,  # object_mask: the stored COCO RLE JSON (app/annotations/masks.py); else None
        ) = r
        self.rating = rating
        self.human = set_source == "human"
        self.source = "human" if self.human else ("machine_good" if rating == "good" else "machine_unrated")
        self.weight = 1.0

    @property
    def points(self) -> list[list[float]] | None:
        """The points as [[x, y, visible], ...], or None for box kinds."""
        return json.loads(self.points_json) if self.points_json else None

    @property
    def flags(self) -> dict:
        """Open Images flags (IsOccluded, IsTruncated, ...) stored on the annotation."""
        return json.loads(self.flags_json) if self.flags_json else {}

    @property
    def box(self) -> tuple[float, float, float, float] | None:
        """(x0, y0, x1, y1) normalised (a landmark row without a box gets its parent box), or None."""
        if self.x0 is None:
            return None
        return (self.x0, self.y0, self.x1, self.y1)

    def as_dict(self) -> dict:
        """The row as a plain dict (points decoded)."""
        d = {k: getattr(self, k) for k in self.__slots__ if k not in _INTERNAL}
        d["points"] = self.points
        d["flags"] = self.flags
        return d

    def __repr__(self) -> str:
        return f"TrainingRow({self.annotation_id}, {self.image_id}, {self.source}, {self.weight})"


_INTERNAL = ("points_json", "flags_json", "human", "rating", "model_id", "rated_at", "mask")


def _box_of(row: TrainingRow) -> tuple[float, float, float, float] | None:
    # Landmark rows may carry no box of their own: fall back to the extent of the labelled points.
    if row.x0 is not None:
        return (row.x0, row.y0, row.x1, row.y1)
    pts = [p for p in (row.points or []) if p[0] or p[1]]
    if not pts:
        return None
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return (min(xs), min(ys), max(xs), max(ys))


def _identical(a: TrainingRow, b: TrainingRow) -> bool:
    # Two runs of one model on one image give the same floats; rounding absorbs a JSON round trip.
    box_a, box_b = _box_of(a), _box_of(b)
    if (box_a is None) != (box_b is None):
        return False
    if box_a is not None and any(abs(p - q) > 1e-9 for p, q in zip(box_a, box_b, strict=True)):
        return False
    if a.mask != b.mask:  # object_mask rows: the same box with another mask is another claim
        return False
    return (a.points_json or None) == (b.points_json or None) or a.points == b.points


def faces_of(rows: list[TrainingRow]) -> list[list[TrainingRow]]:
    """Group the rows of one image (one kind) into faces: a row joins the face holding the row it
    overlaps most (IoU >= 0.5), or the face of the machine row a human row corrects (origin_id).
    Human rows rated bad are left out; each face lists its human rows first, then its machine rows,
    each newest first."""
    faces: list[list[TrainingRow]] = []
    members: list[list[tuple]] = []  # per face: (x0, y0, x1, y1, area) of its rows
    # Objects of different classes are different objects however they overlap; a row without a
    # label (some face rows) matches any.
    labels: list[str | None] = []
    face_of_id: dict[int, int] = {}
    # Rows come in annotation id order (the SQL's ORDER BY): reversed, newest first.
    humans = [r for r in reversed(rows) if r.human and r.rating != "bad"]
    machines = [r for r in reversed(rows) if not r.human]
    corrected_by = {h.origin_id: h.annotation_id for h in reversed(humans) if h.origin_id is not None}
    for r in humans + machines:
        box = _box_of(r)
        k = face_of_id.get(corrected_by[r.annotation_id]) if r.annotation_id in corrected_by else None
        if k is not None and r.label is not None and labels[k] is not None and labels[k] != r.label:
            # A correction that changed the class: the machine row (rated bad) stays an object of its
            # old class, where it takes that class's identical and older rows with it.
            k = None
        if box is not None:
            x0, y0, x1, y1 = box
            area = (x1 - x0) * (y1 - y0)
            if k is None:
                # iou() inlined: this loop is most of an export's time.
                best = -1.0
                for i, boxes in enumerate(members):
                    if r.label is not None and labels[i] is not None and labels[i] != r.label:
                        continue
                    for mx0, my0, mx1, my1, marea in boxes:
                        if mx0 >= x1 or mx1 <= x0 or my0 >= y1 or my1 <= y0:
                            continue
                        inter = (min(x1, mx1) - max(x0, mx0)) * (min(y1, my1) - max(y0, my0))
                        union = area + marea - inter
                        o = inter / union if union > 0 else 0.0
                        if o >= OVERLAP_IOU and o > best:
                            k, best = i, o
        if k is None:
            k = len(faces)
            faces.append([])
            members.append([])
            labels.append(r.label)
        elif labels[k] is None:
            labels[k] = r.label
        faces[k].append(r)
        if box is not None:
            members[k].append((x0, y0, x1, y1, area))
        face_of_id[r.annotation_id] = k
    return faces


def choose(face: list[TrainingRow], active_set: int | None) -> TrainingRow | None:
    """The one row a face gives (rules 1-4 of the module docstring), or None."""
    if face[0].human:
        return face[0]
    bads = [r for r in face if r.rating == "bad"]
    oldest_kept = max((b.annotation_id for b in bads), default=0)
    good = unrated = imported = None
    for r in face:  # newest first: the first of each kind is the one to keep
        if r.rating == "bad":
            continue
        if r.rating == "good":
            if good is None and not any(
                _identical(r, b) and (r.rated_at or "") < (b.rated_at or "") for b in bads
            ):
                good = r
            continue
        if r.annotation_id <= oldest_kept or any(_identical(r, b) for b in bads):
            continue
        if active_set is not None and r.set_id == active_set:
            unrated = unrated or r
        elif r.model_id is None:
            imported = imported or r
    return good or unrated or imported


def resolve_image(rows: list[TrainingRow], active_model_id: int | None = None) -> list[TrainingRow]:
    """The rows of one image (one kind) that train: one per face, in annotation id order.

    rows: the image's rows in annotation id order, as the merge's query reads them.
    active_model_id: the kind's active model; its newest set on this image is the only model run
    whose unrated rows count (the newest over all classes of the image).
    """
    active_set = max(
        (r.set_id for r in rows if not r.human and r.model_id is not None and r.model_id == active_model_id),
        default=None,
    )
    if len(rows) == 1:  # most images of a big store: one face, nothing to group
        r = rows[0]
        if r.human:
            return [] if r.rating == "bad" else rows
        return [r] if choose(rows, active_set) is r else []
    chosen = []
    for face in faces_of(rows):
        if len(face) == 1:  # choose() for one row, inlined: the common case
            r = face[0]
            if (
                r.human
                or r.rating == "good"
                or (r.rating is None and (r.set_id == active_set or r.model_id is None))
            ):
                chosen.append(r)
        elif (r := choose(face, active_set)) is not None:
            chosen.append(r)
    return sorted(chosen, key=_image_order)


def _image_order(r: TrainingRow) -> int:
    return r.annotation_id


def _set_ids(db: Database, kind: str, sets: Iterable[str | int] | None) -> set[int] | None:
    if sets is None:
        return None
    ids = set()
    for s in sets:
        if isinstance(s, int) or (isinstance(s, str) and s.isascii() and s.isdigit()):
            found = db.execute("SELECT id, kind FROM annotation_sets WHERE id = ?", [int(s)]).fetchone()
        else:
            found = db.execute("SELECT id, kind FROM annotation_sets WHERE name = ?", [s]).fetchone()
        if found is None:
            raise InvalidInput(f"no annotation set {s!r}; `flask oiap sets list` shows them")
        if found[1] != kind:
            raise InvalidInput(f"set {s!r} holds {found[1]}, not {kind}")
        ids.add(found[0])
    return ids


_SELECT = """
SELECT a.id, a.image_id, i.split, s.source, a.rating, a.set_id, s.name, a.origin_id, a.label,
       coalesce(a.x0, p.x0), coalesce(a.y0, p.y0), coalesce(a.x1, p.x1), coalesce(a.y1, p.y1),
       a.points, a.flags, a.score, i.width, i.height, i.path, s.model_id, a.rated_at, a.mask
FROM images i
CROSS JOIN annotations a INDEXED BY annotations_image_kind ON a.image_id = i.id AND a.kind = ?
JOIN annotation_sets s ON s.id = a.set_id
LEFT JOIN annotations p ON p.id = a.parent_id
WHERE i.split = ? AND a.deleted = 0 {extra}
ORDER BY i.id, a.id
"""


def _merged(
    db: Database,
    kind: str,
    splits: Sequence[str],
    sets: Iterable[str | int] | None,
    include_unrated: bool,
    unrated_weight: float,
    imports: bool = False,
) -> Iterator[TrainingRow]:
    # Validate now, not at the first next(): a web export must fail before its response starts.
    get_kind(kind)
    for split in splits:
        if split not in SPLITS:
            raise InvalidInput(f"unknown split {split!r}; use one of: {', '.join(SPLITS)}")
    set_ids = _set_ids(db, kind, sets)
    # Rows rated bad come too: they take identical and older machine rows of their face with them.
    trusted = "('human', 'import')" if imports else "('human')"
    extra = "" if include_unrated else f"AND (s.source IN {trusted} OR a.rating IS NOT NULL)"
    active = active_model_id(db, kind)
    return _stream(
        db, _SELECT.format(extra=extra), kind, tuple(dict.fromkeys(splits)), set_ids, unrated_weight, active
    )


def active_model_id(db: Database, kind: str) -> int | None:
    """The id of the kind's active model, or None."""
    row = db.execute("SELECT id FROM models WHERE kind = ? AND status = 'active'", [kind]).fetchone()
    return row[0] if row else None


def _stream(db, sql, kind, splits, set_ids, unrated_weight, active) -> Iterator[TrainingRow]:
    for split in splits:
        # One query per split keeps each walk in index order (images_split, annotations_image_kind).
        cursor = db.conn.execute(sql, [kind, split])
        for _image, group in groupby(map(TrainingRow, cursor), key=_image_key):
            for row in resolve_image(list(group), active):
                if set_ids is not None and row.set_id not in set_ids:
                    continue
                if row.source == "machine_unrated":
                    row.weight = unrated_weight
                yield row


def _image_key(row: TrainingRow) -> str:
    return row.image_id


def iter_training_rows(
    db: Database,
    kind: str,
    splits: Sequence[str] = ("train",),
    sets: Iterable[str | int] | None = None,
    include_unrated: bool = True,
    unrated_weight: float = DEFAULT_UNRATED_WEIGHT,
) -> Iterator[TrainingRow]:
    """Training rows of a kind, merged by the rules above, streamed in (split, image_id, id) order.

    `splits`: 'train' and/or 'validation' (never 'test'); `sets`: set names or ids to export (None:
    every set of the kind); unrated machine rows get `unrated_weight`, or are dropped when
    `include_unrated` is False. Raises InvalidInput for the test split, an unknown split or set.
    """
    if isinstance(splits, str):
        splits = (splits,)
    if "test" in splits:
        raise InvalidInput(
            "the test split never trains; use ground_truth(db, kind, 'test') "
            "(`flask oiap export --split test`) for evaluation ground truth"
        )
    if not 0 <= unrated_weight <= 1:
        raise InvalidInput(f"unrated weight must be between 0 and 1, not {unrated_weight}")
    return _merged(db, kind, splits, sets, include_unrated, unrated_weight)


def ground_truth(
    db: Database,
    kind: str,
    split: str = "test",
    sets: Iterable[str | int] | None = None,
    imports: bool = False,
) -> Iterator[TrainingRow]:
    """Evaluation ground truth of a split: human + good machine annotations, same overrides, weight 1.

    imports: also the unrated rows of import sets (Open Images' own boxes, each drawn or verified by
    its annotators: its evaluation ground truth; the object-box metric takes them so).
    """
    return _merged(db, kind, (split,), sets, include_unrated=False, unrated_weight=1.0, imports=imports)


def count_candidates(db: Database, kind: str, splits: Sequence[str]) -> int:
    """An upper bound on the rows an export yields (for progress bars): live, not-bad rows of the kind."""
    marks = ",".join("?" * len(splits))
    return db.execute(
        f"SELECT count(*) FROM annotations a JOIN images i ON i.id = a.image_id"
        f" WHERE a.kind = ? AND a.deleted = 0 AND a.rating IS NOT 'bad' AND i.split IN ({marks})",
        [kind, *splits],
    ).fetchone()[0]
