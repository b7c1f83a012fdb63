"""The merge rules: which annotations are training data, with what weight. One implementation.

Per kind and per split (DESIGN.md, "Merge rules for training data"):

- a human annotation (its set's source is 'human') is trusted: source "human", weight 1;
- a machine annotation (set source 'model' or 'import') rated good: "machine_good", weight 1;
- a machine annotation not yet rated: "machine_unrated", weight `unrated_weight` (0.5), unless
  `include_unrated=False`;
- a machine annotation rated bad: never;
- a human annotation replaces the machine annotation it corrects (its origin_id) and every machine
  annotation on the same image and kind whose box it overlaps with IoU >= 0.5;
- deleted annotations: never.

Decisions beyond DESIGN.md:
- a human annotation another reviewer rated bad is left out (and overrides nothing): peer review
  exists to catch bad human labels;
- the override looks at every human annotation of the kind on the image, also those outside the
  `sets` asked for: a machine annotation a human corrected is superseded whichever sets you export;
- images of the test split never train: `iter_training_rows` refuses 'test'. The test split's
  ground truth for evaluation comes from `ground_truth` (human + good machine, same overrides).

Rows stream: one SQL query per split ordered by (image_id, annotation id), walked by SQLite's
indexes without a sort (CROSS JOIN fixes the join order: images by split, then their annotations), and resolved one image at a time, so memory stays flat in the number of rows.
"""

import json
from collections.abc import Iterable, Iterator, Sequence
from itertools import groupby

from sqlite_utils import Database

from ..annotations.geometry import iou
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
        ) = r
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
        d = {k: getattr(self, k) for k in self.__slots__ if k not in ("points_json", "flags_json", "human")}
        d["points"] = self.points
        d["flags"] = self.flags
        return d

    def __repr__(self) -> str:
        return f"TrainingRow({self.annotation_id}, {self.image_id}, {self.source}, {self.weight})"


def _box_of(row: TrainingRow) -> tuple[float, float, float, float] | None:
    # Landmark rows may carry no box of their own: fall back to the extent of the labelled points.
    if row.x0 is not None:
        return (row.x0, row.y0, row.x1, row.y1)
    pts = [p for p in (row.points or []) if p[0] or p[1]]
    if not pts:
        return None
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return (min(xs), min(ys), max(xs), max(ys))


def resolve_image(rows: list[TrainingRow]) -> list[TrainingRow]:
    """Apply the human-override rule to the rows of one image (one kind); keeps their order."""
    humans = [r for r in rows if r.human]
    if not humans:
        return rows
    corrected = {h.origin_id for h in humans if h.origin_id is not None}
    human_boxes = [_box_of(h) for h in humans]
    kept = []
    for r in rows:
        if not r.human:
            if r.annotation_id in corrected:
                continue
            box = _box_of(r)
            if any(iou(box, hb) >= OVERLAP_IOU for hb in human_boxes):
                continue
        kept.append(r)
    return kept


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
       a.points, a.flags, a.score, i.width, i.height, i.path
FROM images i
CROSS JOIN annotations a INDEXED BY annotations_image_kind ON a.image_id = i.id AND a.kind = ?
JOIN annotation_sets s ON s.id = a.set_id
LEFT JOIN annotations p ON p.id = a.parent_id
WHERE i.split = ? AND a.deleted = 0 AND a.rating IS NOT 'bad' {extra}
ORDER BY i.id, a.id
"""


def _merged(
    db: Database,
    kind: str,
    splits: Sequence[str],
    sets: Iterable[str | int] | None,
    include_unrated: bool,
    unrated_weight: float,
) -> Iterator[TrainingRow]:
    # Validate now, not at the first next(): a web export must fail before its response starts.
    get_kind(kind)
    for split in splits:
        if split not in SPLITS:
            raise InvalidInput(f"unknown split {split!r}; use one of: {', '.join(SPLITS)}")
    set_ids = _set_ids(db, kind, sets)
    extra = "" if include_unrated else "AND (s.source = 'human' OR a.rating = 'good')"
    return _stream(
        db, _SELECT.format(extra=extra), kind, tuple(dict.fromkeys(splits)), set_ids, unrated_weight
    )


def _stream(db, sql, kind, splits, set_ids, unrated_weight) -> Iterator[TrainingRow]:
    for split in splits:
        # One query per split keeps each walk in index order (images_split, annotations_image_kind).
        cursor = db.conn.execute(sql, [kind, split])
        for _image, group in groupby(map(TrainingRow, cursor), key=_image_key):
            for row in resolve_image(list(group)):
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
    db: Database, kind: str, split: str = "test", sets: Iterable[str | int] | None = None
) -> Iterator[TrainingRow]:
    """Evaluation ground truth of a split: human + good machine annotations, same overrides, weight 1."""
    return _merged(db, kind, (split,), sets, include_unrated=False, unrated_weight=1.0)


def count_candidates(db: Database, kind: str, splits: Sequence[str]) -> int:
    """An upper bound on the rows an export yields (for progress bars): live, not-bad rows of the kind."""
    marks = ",".join("?" * len(splits))
    return db.execute(
        f"SELECT count(*) FROM annotations a JOIN images i ON i.id = a.image_id"
        f" WHERE a.kind = ? AND a.deleted = 0 AND a.rating IS NOT 'bad' AND i.split IN ({marks})",
        [kind, *splits],
    ).fetchone()[0]
