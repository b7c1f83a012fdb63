"""Corrections from the editor: what it shows, where a new face's points go, and saving with versions.

A correction never changes a machine annotation: it writes a human annotation (human set of the kind)
linked by origin_id, and rates the machine one bad. Human annotations carry a version; every write to
one is a compare-and-swap on it, so a stale editor gets a 409 and overwrites nothing.
"""

import json
import math
from collections.abc import Mapping

from sqlite_utils import Database

from ..annotations.geometry import iou
from ..annotations.rows import (
    annotation_row,
    decode,
    delete_at_version,
    insert_annotation,
    move_at_version,
    rate,
)
from ..audit.events import log_event
from ..classes import check_label
from ..db import immediate
from ..errors import Conflict, InvalidInput, NotFound
from ..images import cache
from ..kinds import FACE_LABEL, get_kind
from ..sets.queries import get_or_create_set, human_set_name
from ..wording import plural

EDITABLE_KINDS = ("face_box", "face_landmarks5", "face_landmarks68", "object_box")
# Kinds whose boxes carry a class of their own (an Open Images MID), chosen in the editor; two boxes
# of different classes are two objects however much they overlap.
CLASS_KINDS = ("object_box",)
MACHINE_SOURCES = ("model", "import")
MAX_BODY_BYTES = 256 * 1024
MAX_FACES = 100
OVERRIDE_IOU = 0.5
FACE_KEYS = {"key", "id", "origin_id", "version", "box", "points", "deleted", "label"}


# ---- images ----------------------------------------------------------------------------------------


def get_image(db: Database, image_id: str) -> dict:
    """The image row; InvalidInput for a malformed id, NotFound when the store has no such image."""
    return cache.get_image(db, image_id)


# ---- what the editor shows ------------------------------------------------------------------------


def check_kind(kind: str) -> str:
    """The kind, when the editor can edit it."""
    if kind not in EDITABLE_KINDS:
        raise InvalidInput(f"the editor edits {', '.join(EDITABLE_KINDS)}, not {kind!r}")
    return kind


def _box_of(db: Database, row: dict) -> list[float] | None:
    # A landmarks row may carry no box of its own: take its parent's (the detection it was
    # predicted on), else the points' extent, so the editor always has a box to save on the row.
    if row["x0"] is not None:
        return [row["x0"], row["y0"], row["x1"], row["y1"]]
    if row.get("parent_id"):
        p = db.execute("SELECT x0, y0, x1, y1 FROM annotations WHERE id = ?", [row["parent_id"]]).fetchone()
        if p and p[0] is not None:
            return list(p)
    if row["points"]:
        xs = [p[0] for p in row["points"]]
        ys = [p[1] for p in row["points"]]
        return [min(xs), min(ys), max(xs), max(ys)]
    return None


def _face(db: Database, row: dict) -> dict:
    human = row["source"] == "human"
    return {
        "key": f"{'h' if human else 'm'}{row['id']}",
        "id": row["id"] if human else None,
        "origin_id": row["origin_id"] if human else row["id"],
        "version": row["version"] if human else None,
        "source": row["source"],
        "set_id": row["set_id"],
        "set_name": row["set_name"],
        "rating": row["rating"],
        "score": row["score"],
        "box": _box_of(db, row),
        "points": row["points"],
        "label": row["label"],
    }


def load_faces(
    db: Database, image_id: str, kind: str, focus_id: int | None = None, machine_set: int | None = None
) -> dict:
    """The faces of a kind on an image, as the editor shows them, and the key of the focused one.

    Human annotations of the kind's human set come first; machine annotations come from one set
    (machine_set, else the focused annotation's, else the newest machine set with faces on this image),
    minus those a human annotation corrects or deleted (its origin_id).
    """
    check_kind(kind)
    rows = [
        decode(r)
        for r in db.query(
            "SELECT a.*, s.source, s.name AS set_name FROM annotations a"
            " JOIN annotation_sets s ON s.id = a.set_id"
            " WHERE a.image_id = ? AND a.kind = ? ORDER BY a.id",
            [image_id, kind],
        )
    ]
    human = [r for r in rows if r["source"] == "human"]
    corrected = {r["origin_id"]: r for r in human if r["origin_id"] is not None}
    machine = [r for r in rows if r["source"] in MACHINE_SOURCES and not r["deleted"]]
    focus = next((r for r in rows if r["id"] == focus_id), None)
    if machine_set is None and focus is not None and focus["source"] in MACHINE_SOURCES:
        machine_set = focus["set_id"]
    elif machine_set is None:
        machine_set = max((r["set_id"] for r in machine), default=None)
    faces = [_face(db, r) for r in human if not r["deleted"]]
    # As in the merge rules, a human face overrides the machine face it corrects and any it overlaps
    # (IoU >= 0.5), so one physical face is shown once.
    overlapping = {}
    by_class = kind in CLASS_KINDS
    for r in machine:
        box = _box_of(db, r)
        for f in faces:
            if by_class and f["label"] != r["label"]:
                continue  # a person over a car: two objects, both shown
            if box and f["box"] and iou(box, f["box"]) >= OVERRIDE_IOU:
                overlapping[r["id"]] = f["id"]
                break
    shown_sets = {machine_set}
    if by_class:
        shown_sets |= _other_class_sets(db, machine, machine_set)
    faces += [
        _face(db, r)
        for r in machine
        if r["set_id"] in shown_sets and r["id"] not in corrected and r["id"] not in overlapping
    ]
    focus_key = None
    if focus is not None:
        if focus["source"] == "human":
            focus_key = f"h{focus['id']}"
        elif focus["id"] in corrected:
            focus_key = f"h{corrected[focus['id']]['id']}"
        elif focus["id"] in overlapping:
            focus_key = f"h{overlapping[focus['id']]}"
        else:
            focus_key = f"m{focus['id']}"
        if not any(f["key"] == focus_key for f in faces):
            focus_key = None  # deleted meanwhile
    machine_set_name = next((r["set_name"] for r in machine if r["set_id"] == machine_set), None)
    return {"faces": faces, "focus_key": focus_key, "machine_set": machine_set_name}


def _other_class_sets(db: Database, machine: list[dict], machine_set: int | None) -> set[int]:
    """Object boxes: besides the machine set shown, the import sets (Open Images' are one per class)
    whose boxes on this image are of classes that set does not hold there, so the editor shows every
    class of the image and never the same class twice."""
    held = {r["label"] for r in machine if r["set_id"] == machine_set}
    out: set[int] = set()
    for r in machine:
        if r["source"] == "import" and r["set_id"] != machine_set and r["label"] not in held:
            out.add(r["set_id"])
    # A class that two import sets both hold on this image: the newer set's boxes only.
    newest: dict[str, int] = {}
    for r in machine:
        if r["set_id"] in out:
            newest[r["label"]] = max(newest.get(r["label"], 0), r["set_id"])
    return {s for s in out if s in newest.values()}


# ---- validation of request bodies -----------------------------------------------------------------


def _reject_constant(name: str):
    raise InvalidInput(f"{name} is not a number; coordinates must be finite")


def parse_json_body(raw: bytes, limit: int = MAX_BODY_BYTES) -> dict:
    """A JSON object from a request body: size-limited, strict (no NaN or Infinity)."""
    if len(raw) > limit:
        raise InvalidInput(f"the body is larger than {limit} bytes")
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        if isinstance(e, InvalidInput):
            raise
        raise InvalidInput(f"the body is not valid JSON: {str(e)[:200]}") from None
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object")
    return data


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _coord(v, where: str) -> float:
    if not _is_number(v):
        raise InvalidInput(f"{where} must be a number, not {type(v).__name__}")
    v = float(v)
    if not math.isfinite(v):
        raise InvalidInput(f"{where} must be finite")
    if not 0.0 <= v <= 1.0:
        raise InvalidInput(f"{where} = {v} is outside the image; coordinates are normalised to [0, 1]")
    return v


def _int_id(v, where: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not 0 < v < 2**63:
        raise InvalidInput(f"{where} must be a positive integer")
    return v


def _box(v, where: str) -> list[float]:
    if not isinstance(v, list) or len(v) != 4:
        raise InvalidInput(f"{where} must be a list [x0, y0, x1, y1]")
    x0, y0, x1, y1 = (_coord(c, f"{where}[{i}]") for i, c in enumerate(v))
    if not (x0 < x1 and y0 < y1):
        raise InvalidInput(f"{where} must have x0 < x1 and y0 < y1")
    return [x0, y0, x1, y1]


def _points(v, n: int, where: str) -> list[list]:
    if not isinstance(v, list) or len(v) != n:
        got = len(v) if isinstance(v, list) else type(v).__name__
        raise InvalidInput(f"{where} must be a list of {n} points, got {got}")
    out = []
    for i, p in enumerate(v):
        if not isinstance(p, list) or len(p) not in (2, 3):
            raise InvalidInput(f"{where}[{i}] must be [x, y] or [x, y, visible]")
        x, y = _coord(p[0], f"{where}[{i}].x"), _coord(p[1], f"{where}[{i}].y")
        visible = p[2] if len(p) == 3 else 1
        if visible not in (0, 1) or isinstance(visible, float):
            raise InvalidInput(f"{where}[{i}].visible must be 0 or 1")
        out.append([x, y, int(visible)])
    return out


def _base(data: dict, allowed: set[str]) -> tuple[str, str]:
    unknown = set(data) - allowed
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(sorted(unknown))}")
    image_id, kind = data.get("image_id"), data.get("kind")
    if not isinstance(image_id, str) or not 0 < len(image_id) <= 64:
        raise InvalidInput("image_id must be an image id string")
    if not isinstance(kind, str):
        raise InvalidInput("kind must be a string")
    return image_id, check_kind(kind)


def parse_save(data: dict) -> dict:
    """Check a save body strictly: {image_id, kind, faces: [{key?, id?, origin_id?, version?, box, points?, deleted?}]}."""
    image_id, kind = _base(data, {"image_id", "kind", "faces"})
    n = get_kind(kind).n_points
    faces = data.get("faces")
    if not isinstance(faces, list) or not 0 < len(faces) <= MAX_FACES:
        raise InvalidInput(f"faces must be a list of 1 to {MAX_FACES} faces")
    out, seen_ids, seen_origins = [], set(), set()
    for i, f in enumerate(faces):
        where = f"faces[{i}]"
        if not isinstance(f, dict):
            raise InvalidInput(f"{where} must be an object")
        unknown = set(f) - FACE_KEYS
        if unknown:
            raise InvalidInput(f"{where}: unknown field(s): {', '.join(sorted(unknown))}")
        key = f.get("key")
        if key is not None and not (isinstance(key, str) and len(key) <= 40):
            raise InvalidInput(f"{where}.key must be a short string")
        face = {"key": key, "id": None, "origin_id": None, "version": None}
        deleted = f.get("deleted", False)
        if not isinstance(deleted, bool):
            raise InvalidInput(f"{where}.deleted must be true or false")
        face["deleted"] = deleted
        if f.get("id") is not None:
            face["id"] = _int_id(f["id"], f"{where}.id")
            if face["id"] in seen_ids:
                raise InvalidInput(f"{where}: face {face['id']} appears twice")
            seen_ids.add(face["id"])
            face["version"] = _int_id(f.get("version"), f"{where}.version")
        elif f.get("version") is not None:
            raise InvalidInput(f"{where}: a version goes with an id")
        if f.get("origin_id") is not None:
            face["origin_id"] = _int_id(f["origin_id"], f"{where}.origin_id")
            if face["id"] is None:
                if face["origin_id"] in seen_origins:
                    raise InvalidInput(f"{where}: annotation {face['origin_id']} is corrected twice")
                seen_origins.add(face["origin_id"])
        face["label"] = None
        if f.get("label") is not None:
            if kind not in CLASS_KINDS:
                raise InvalidInput(f"{where}: {kind} has no class; label is for {', '.join(CLASS_KINDS)}")
            face["label"] = check_label(f["label"], f"{where}.label")
        elif kind in CLASS_KINDS and not deleted and face["id"] is None and face["origin_id"] is None:
            raise InvalidInput(f"{where}.label is missing: a new box needs its class (an Open Images MID)")
        if deleted:
            if face["id"] is None and face["origin_id"] is None:
                raise InvalidInput(f"{where}: only a stored face can be deleted (give id or origin_id)")
        else:
            if "box" not in f:
                raise InvalidInput(f"{where}.box is missing")
            face["box"] = _box(f["box"], f"{where}.box")
            if n:
                face["points"] = _points(f.get("points"), n, f"{where}.points")
            elif f.get("points") is not None:
                raise InvalidInput(f"{where}: {kind} has no points")
            else:
                face["points"] = None
        out.append(face)
    return {"image_id": image_id, "kind": kind, "faces": out}


def parse_place(data: dict) -> dict:
    """Check a placement body: {image_id, kind, box}."""
    image_id, kind = _base(data, {"image_id", "kind", "box"})
    return {"image_id": image_id, "kind": kind, "box": _box(data.get("box"), "box")}


# ---- saving ---------------------------------------------------------------------------------------


def _annotation(db: Database, ann_id: int) -> dict:
    rows = list(
        db.query(
            "SELECT a.*, s.source, s.name AS set_name FROM annotations a"
            " JOIN annotation_sets s ON s.id = a.set_id WHERE a.id = ?",
            [ann_id],
        )
    )
    if not rows:
        raise NotFound(f"no annotation {ann_id}")
    return decode(rows[0])


def _editor_name(db: Database, ann_id: int, user_id: int | None = None) -> str:
    """Who last wrote the annotation (its newest audit event, else user_id), for a conflict message."""
    row = db.execute(
        "SELECT u.username FROM events e JOIN users u ON u.id = e.user_id"
        " WHERE e.target_type = 'annotation' AND e.target_id = ? ORDER BY e.id DESC LIMIT 1",
        [ann_id],
    ).fetchone()
    if row is None and user_id is not None:
        row = db.execute("SELECT username FROM users WHERE id = ?", [user_id]).fetchone()
    # A write with no event and no author (an import) has no name to give.
    return row[0] if row else "someone else"


def _geometry(row: dict) -> dict:
    out = {"box": [row["x0"], row["y0"], row["x1"], row["y1"]], "points": row["points"]}
    if row["kind"] in CLASS_KINDS:
        out["label"] = row["label"]
    return out


def _after(f: dict) -> dict:
    # What the audit log keeps of a saved face: its geometry, and its class where the kind has one.
    out = {"box": f["box"], "points": f["points"]}
    if f.get("label"):
        out["label"] = f["label"]
    return out


def _update_human(db: Database, set_id: int, image_id: str, kind: str, f: dict, user_id: int) -> dict:
    row = _annotation(db, f["id"])
    if row["set_id"] != set_id or row["image_id"] != image_id or row["kind"] != kind:
        raise InvalidInput(f"annotation {f['id']} is not a human {kind} face on image {image_id}")
    if f["origin_id"] is not None and f["origin_id"] != row["origin_id"]:
        raise InvalidInput(f"annotation {f['id']} corrects {row['origin_id']}, not {f['origin_id']}")
    if row["deleted"]:
        raise Conflict(
            f"face {f['id']} was deleted by {_editor_name(db, f['id'])}; reload the page to see the faces as they are"
        )
    if row["version"] != f["version"]:
        raise Conflict(
            f"face {f['id']} was changed by {_editor_name(db, f['id'])} (version {row['version']}, you edited version "
            f"{f['version']}); nothing was saved, your edits are still in the editor: reload in another tab to compare"
        )
    if f["deleted"]:
        written = delete_at_version(db, f["id"], f["version"])
        action, after = "edit_delete", {"deleted": True}
    else:
        # A changed face is a new claim: any rating of the old geometry no longer applies.
        written = move_at_version(db, f["id"], f["version"], f["box"], f["points"], label=f.get("label"))
        # An object box keeps its class when the save names none: the log says which it has.
        kept = {**f, "label": f.get("label") or row["label"]} if kind in CLASS_KINDS else f
        action, after = "edit_save", _after(kept)
    if not written:  # the compare-and-swap lost: someone wrote between our read and write
        raise Conflict(f"face {f['id']} was changed by {_editor_name(db, f['id'])}; nothing was saved")
    version = f["version"] + 1
    log_event(
        db,
        action,
        user_id=user_id,
        target_type="annotation",
        target_id=f["id"],
        set_id=set_id,
        before={**_geometry(row), "version": row["version"]},
        after={**after, "version": version},
    )
    return {
        "key": f["key"],
        "id": f["id"],
        "origin_id": row["origin_id"],
        "version": version,
        "deleted": f["deleted"],
    }


def _insert(
    db: Database, set_id: int, image_id: str, kind: str, f: dict, user_id: int, origin: dict | None
) -> int:
    box = f.get("box") or [origin["x0"], origin["y0"], origin["x1"], origin["y1"]]
    points = f.get("points") if not f["deleted"] else origin["points"]
    row = annotation_row(
        set_id,
        image_id,
        kind,
        box,
        points,
        label=f.get("label") or (origin or {}).get("label") or (None if kind in CLASS_KINDS else FACE_LABEL),
        parent_id=(origin or {}).get("parent_id"),
        origin_id=origin["id"] if origin else None,
        created_by=user_id,
        deleted=f["deleted"],
    )
    return insert_annotation(db, row)


def _correct_machine(db: Database, set_id: int, image_id: str, kind: str, f: dict, user_id: int) -> dict:
    m = _annotation(db, f["origin_id"])
    if m["source"] not in MACHINE_SOURCES or m["image_id"] != image_id or m["kind"] != kind:
        raise InvalidInput(f"annotation {f['origin_id']} is not a machine {kind} face on image {image_id}")
    if m["deleted"]:
        raise Conflict(f"annotation {m['id']} was removed from its set; reload the page")
    other = db.execute(
        "SELECT id, created_by FROM annotations WHERE set_id = ? AND origin_id = ?", [set_id, m["id"]]
    ).fetchone()
    if other:
        raise Conflict(
            f"face {m['id']} was already corrected by {_editor_name(db, other[0], other[1])} (annotation {other[0]});"
            " nothing was saved, "
            "your edits are still in the editor: reload in another tab to compare"
        )
    new_id = _insert(db, set_id, image_id, kind, f, user_id, m)
    log_event(
        db,
        "edit_delete" if f["deleted"] else "edit_correct",
        user_id=user_id,
        target_type="annotation",
        target_id=new_id,
        set_id=set_id,
        before={**_geometry(m), "origin_id": m["id"]},
        after={"deleted": True}
        if f["deleted"]
        else {
            **_after({**f, "label": f.get("label") or m["label"]} if kind in CLASS_KINDS else f),
            "version": 1,
        },
    )
    return {"key": f["key"], "id": new_id, "origin_id": m["id"], "version": 1, "deleted": f["deleted"]}


def _create(db: Database, set_id: int, image_id: str, kind: str, f: dict, user_id: int) -> dict:
    new_id = _insert(db, set_id, image_id, kind, f, user_id, None)
    log_event(
        db,
        "edit_create",
        user_id=user_id,
        target_type="annotation",
        target_id=new_id,
        set_id=set_id,
        after={**_after(f), "version": 1},
    )
    return {"key": f["key"], "id": new_id, "origin_id": None, "version": 1, "deleted": False}


def save_message(faces: list[dict], noun: str = "face", nouns: str | None = None) -> str:
    """What a save did, in words, from save_faces' "faces": "Saved 2 faces", "Deleted 1 face", or both."""
    n_deleted = sum(1 for f in faces if f["deleted"])
    n_saved = len(faces) - n_deleted
    parts = [f"saved {plural(n_saved, noun, nouns)}"] if n_saved else []
    if n_deleted:
        parts.append(f"deleted {plural(n_deleted, noun, nouns)}")
    text = ", ".join(parts) or "nothing saved"
    return text[0].upper() + text[1:]


def save_faces(db: Database, body: dict, user_id: int) -> dict:
    """Write the editor's changed faces (from parse_save) to the human set, all or nothing.

    A face with an id updates that human annotation if its version still matches (else Conflict);
    one with only origin_id corrects (or, deleted, removes) a machine annotation, which is then rated
    bad; one with neither is a new face. A deleted machine face is kept as a deleted human row that
    points at it, so the editor and the merge rules know a person removed it.
    """
    image_id, kind = body["image_id"], body["kind"]
    get_image(db, image_id)
    results, to_rate = [], []
    with immediate(db):
        set_id = get_or_create_set(
            db,
            human_set_name(kind),
            kind,
            "human",
            label=None if kind in CLASS_KINDS else FACE_LABEL,
            created_by=user_id,
        )
        for f in body["faces"]:
            if f["id"] is not None:
                results.append(_update_human(db, set_id, image_id, kind, f, user_id))
            elif f["origin_id"] is not None:
                results.append(_correct_machine(db, set_id, image_id, kind, f, user_id))
                to_rate.append(f["origin_id"])
            else:
                results.append(_create(db, set_id, image_id, kind, f, user_id))
    # rate() runs its own write transaction, so the ratings follow the commit; the human row that
    # points at the machine one already overrides it in the merge rules should this step not happen.
    for origin_id in to_rate:
        current = db.execute("SELECT rating FROM annotations WHERE id = ?", [origin_id]).fetchone()
        if current and current[0] != "bad":
            rate(db, origin_id, user_id, "bad")
    return {"set_id": set_id, "faces": results}


# ---- placing a new face ---------------------------------------------------------------------------


def matching_five(db: Database, image_id: str, box: list[float]) -> dict | None:
    """The 5-point annotation on the image that best matches a box (IoU >= 0.4, or points inside it)."""
    best, best_score = None, 0.0
    for r in db.query(
        "SELECT a.* FROM annotations a WHERE a.image_id = ? AND a.kind = 'face_landmarks5'"
        " AND a.deleted = 0 AND a.points IS NOT NULL AND (a.rating IS NULL OR a.rating != 'bad') ORDER BY a.id",
        [image_id],
    ):
        r = decode(r)
        if len(r["points"]) != 5:
            continue
        if r["x0"] is not None:
            score = iou(box, [r["x0"], r["y0"], r["x1"], r["y1"]])
            if score < 0.4:
                continue
        else:
            inside = all(box[0] <= p[0] <= box[2] and box[1] <= p[1] <= box[3] for p in r["points"])
            if not inside:
                continue
            score = 0.4
        if score > best_score:
            best, best_score = r, score
    return best


def _five_from_68(p) -> list[list[float]]:
    # Eye centres, nose tip, mouth corners: the 5-point kind's order.
    def mean(idx):
        return [sum(p[i][0] for i in idx) / len(idx), sum(p[i][1] for i in idx) / len(idx)]

    return [mean(range(36, 42)), mean(range(42, 48)), list(p[30]), list(p[48]), list(p[54])]


def place_face(db: Database, image: dict, kind: str, box: list[float], config: Mapping) -> dict:
    """Points for a face drawn as a box: the 68-point template fitted to a matching 5-point annotation, else to the box."""
    check_kind(kind)
    if get_kind(kind).n_points == 0:  # face_box, object_box: a box has nothing to place
        return {"points": None, "method": None, "five_id": None}
    from ..annotators.template68 import fit_to_box, fit_to_five

    w, h = cache.image_size(config, image)
    five = matching_five(db, image["id"], box)
    if five is not None:
        pts = fit_to_five([[p[0] * w, p[1] * h] for p in five["points"]])
        method = "five"
    else:
        pts = fit_to_box([box[0] * w, box[1] * h, box[2] * w, box[3] * h])
        method = "box"
    pts = [[float(x), float(y)] for x, y in pts]
    if kind == "face_landmarks5":
        pts = _five_from_68(pts)

    def clamp(v):
        return min(1.0, max(0.0, v))

    points = [[round(clamp(x / w), 6), round(clamp(y / h), 6), 1] for x, y in pts]
    return {"points": points, "method": method, "five_id": five["id"] if five else None}
