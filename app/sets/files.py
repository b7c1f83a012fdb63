"""Annotation sets as files: gzip JSON lines, a header line then one line per annotation.

The file is what `flask oiap push` uploads and `flask oiap fetch` imports. Its content hash
(sha256 of the uncompressed lines) names the object, so the same set content always has the same
key whatever zlib compressed it. Everything in it is stable across instances: users by username,
models by sha256, annotations by their position in their set (ordered by id), so a set fetched
into another instance and serialised there gives the same bytes back.
"""

import gzip
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path, PurePath

from sqlite_utils import Database

from ..annotations.rows import insert_copied, points_json, replace_copied_set, set_links
from ..audit.events import log_event
from ..db import immediate, now, snapshot
from ..errors import InvalidInput
from ..images.allowed import imported_path
from ..images.layout import validate_image_id
from ..images.records import insert_images
from ..kinds import get_kind
from ..links import http_url
from .queries import create_set

FORMAT = "oiap-set/1"
# Keys of a set's params that describe where the local copy came from, not the set itself;
# left out of the file so a fetched set pushed back has the same content hash.
LOCAL_PARAMS = ("s3_sha256", "s3_fetched_at", "s3_origin", "s3_owner")
IMAGE_FIELDS = (
    "split", "width", "height", "rotation", "licence", "author", "author_url", "title", "url", "path"
)  # fmt: skip
URL_FIELDS = ("author_url", "url")  # pages link to these; the licence may be plain text


def portable_path(path: str | None) -> str | None:
    """An image path that means the same file on every checkout (relative to the repository, like the
    demo photos), or None: an absolute path names a file on one machine only."""
    if not path or PurePath(path).is_absolute() or ".." in PurePath(path).parts:
        return None
    return path


def _dumps(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class _Users:
    """id <-> username, cached."""

    def __init__(self, db: Database):
        self.by_id = {r["id"]: r["username"] for r in db.query("SELECT id, username FROM users")}
        self.by_name = {v: k for k, v in self.by_id.items()}

    def name(self, user_id: int | None) -> str | None:
        return None if user_id is None else self.by_id.get(user_id)


def _ordinals(db: Database, set_id: int) -> dict[int, int]:
    """Annotation id -> position in its set (ordered by id, deleted rows included)."""
    ids = [r[0] for r in db.execute("SELECT id FROM annotations WHERE set_id = ? ORDER BY id", [set_id])]
    return {ann_id: i for i, ann_id in enumerate(ids)}


def referenced_sets(db: Database, set_id: int) -> list[dict]:
    """The other sets that annotations of this set point at (parent or origin), by name."""
    return list(
        db.query(
            "SELECT DISTINCT s.id, s.name FROM annotations a"
            " JOIN annotations p ON p.id = a.parent_id OR p.id = a.origin_id"
            " JOIN annotation_sets s ON s.id = p.set_id"
            " WHERE a.set_id = ? AND p.set_id != ? ORDER BY s.name",
            [set_id, set_id],
        )
    )


def header(db: Database, set_row: dict, refs: dict[str, str | None], users: _Users) -> dict:
    """The first line of a set file: the set's metadata and counts."""
    params = json.loads(set_row["params"]) if set_row.get("params") else {}
    for key in LOCAL_PARAMS:
        params.pop(key, None)
    model = None
    if set_row.get("model_id"):
        m = db.execute("SELECT sha256, kind, name FROM models WHERE id = ?", [set_row["model_id"]]).fetchone()
        if m:
            model = {"sha256": m[0], "kind": m[1], "name": m[2]}
    n_lines = db.execute("SELECT count(*) FROM annotations WHERE set_id = ?", [set_row["id"]]).fetchone()[0]
    return {
        "format": FORMAT,
        "name": set_row["name"],
        "kind": set_row["kind"],
        "source": set_row["source"],
        "label": set_row["label"],
        "status": set_row["status"],
        "params": params,
        "created_at": set_row["created_at"],
        "created_by": users.name(set_row["created_by"]),
        "model": model,
        "counts": {"total": set_row["n_total"], "good": set_row["n_good"], "bad": set_row["n_bad"]},
        "n_lines": n_lines,
        "refs": refs,
    }


def set_lines(db: Database, set_row: dict, refs: dict[str, str | None]) -> Iterator[str]:
    """The lines of a set file (without newlines): the header, then each annotation by id."""
    users = _Users(db)
    yield _dumps(header(db, set_row, refs, users))
    ordinals = {set_row["name"]: _ordinals(db, set_row["id"])}
    set_ids = {set_row["id"]: set_row["name"]}
    for r in referenced_sets(db, set_row["id"]):
        ordinals[r["name"]] = _ordinals(db, r["id"])
        set_ids[r["id"]] = r["name"]
    ann_set = {}

    def ref(ann_id: int | None) -> list | None:
        # [set name, position in that set]: stable where local ids are not.
        if ann_id is None:
            return None
        if ann_id not in ann_set:
            row = db.execute("SELECT set_id FROM annotations WHERE id = ?", [ann_id]).fetchone()
            ann_set[ann_id] = set_ids.get(row[0]) if row else None
        name = ann_set[ann_id]
        return None if name is None else [name, ordinals[name][ann_id]]

    history: dict[int, list[dict]] = {}
    for h in db.query(
        "SELECT r.annotation_id, r.user_id, r.value, r.previous, r.at FROM ratings r"
        " JOIN annotations a ON a.id = r.annotation_id WHERE a.set_id = ? ORDER BY r.id",
        [set_row["id"]],
    ):
        history.setdefault(h["annotation_id"], []).append(
            {"user": users.name(h["user_id"]), "value": h["value"], "previous": h["previous"], "at": h["at"]}
        )
    rows = db.query(
        "SELECT a.*, " + ", ".join(f"i.{f} AS image_{f}" for f in IMAGE_FIELDS) + " FROM annotations a"
        " JOIN images i ON i.id = a.image_id WHERE a.set_id = ? ORDER BY a.id",
        [set_row["id"]],
    )
    for a in rows:
        image = {"id": a["image_id"]}
        image.update({f: a[f"image_{f}"] for f in IMAGE_FIELDS if a[f"image_{f}"] is not None})
        if "path" in image and not portable_path(image["path"]):
            del image["path"]
        box = None if a["x0"] is None else [a["x0"], a["y0"], a["x1"], a["y1"]]
        yield _dumps(
            {
                "image": image,
                "kind": a["kind"],
                "label": a["label"],
                "box": box,
                "points": json.loads(a["points"]) if a["points"] else None,
                "score": a["score"],
                "flags": json.loads(a["flags"]) if a["flags"] else None,
                "parent": ref(a["parent_id"]),
                "origin": ref(a["origin_id"]),
                "created_by": users.name(a["created_by"]),
                "created_at": a["created_at"],
                "version": a["version"],
                "deleted": a["deleted"],
                "rating": a["rating"],
                "rated_by": users.name(a["rated_by"]),
                "rated_at": a["rated_at"],
                "ratings": history.get(a["id"], []),
            }
        )


def write_set_file(db: Database, set_id: int, refs: dict[str, str | None], dest: Path) -> tuple[str, dict]:
    """Write a set as gzip JSON lines to dest; returns (content sha256, header).

    Read in one transaction, so reviewers rating meanwhile never make the header's counts and
    the lines disagree (WAL gives the reader a snapshot without blocking them).
    """
    h = hashlib.sha256()
    head = None
    with snapshot(db):
        set_row = db.execute("SELECT * FROM annotation_sets WHERE id = ?", [set_id])
        set_row = dict(zip([c[0] for c in set_row.description], set_row.fetchone(), strict=True))
        with open(dest, "wb") as raw:
            # filename="" and mtime=0: the gzip header carries no temp name or time.
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=3) as gz:
                for line in set_lines(db, set_row, refs):
                    if head is None:
                        head = json.loads(line)
                    data = (line + "\n").encode()
                    h.update(data)
                    gz.write(data)
    return h.hexdigest(), head


def content_sha256(path: Path) -> str:
    """The sha256 of a set file's uncompressed content; gzip.BadGzipFile/EOFError when it is damaged."""
    with gzip.open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def read_header(path: Path) -> dict:
    """The header line of a set file."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        first = f.readline()
    head = json.loads(first)
    if head.get("format") != FORMAT:
        raise InvalidInput(
            f"{path.name}: not an oiap set file (format {head.get('format')!r}, expected {FORMAT})"
        )
    return head


def _local_ref_set(db: Database, name: str, sha: str | None, this: tuple[str, list[int]]) -> list[int] | None:
    """Annotation ids (by position) of the set a link points into, when the local copy is that content."""
    if name == this[0]:
        return this[1]
    if sha is None:
        return None
    rows = list(db.query("SELECT id, params FROM annotation_sets WHERE name = ?", [name]))
    if not rows:
        return None
    params = json.loads(rows[0]["params"]) if rows[0]["params"] else {}
    if params.get("s3_sha256") != sha:
        # A local set of the same name with other content: positions would point at the wrong rows.
        return None
    return [
        r[0] for r in db.execute("SELECT id FROM annotations WHERE set_id = ? ORDER BY id", [rows[0]["id"]])
    ]


def import_set_file(
    db: Database,
    path: Path,
    sha256: str,
    *,
    origin: str | None = None,
    owner: str | None = None,
    replace_set_id: int | None = None,
) -> dict:
    """Import a verified set file in one transaction; returns a report.

    The set must not exist yet, unless replace_set_id names the older fetched copy it updates.
    """
    head = read_header(path)
    get_kind(head["kind"])
    users = _Users(db)
    report = {"name": head["name"], "sha256": sha256, "annotations": 0, "images_added": 0, "links_dropped": 0}
    unknown_users: set[str] = set()

    def user_id(name: str | None) -> int | None:
        if name is None:
            return None
        if name not in users.by_name:
            unknown_users.add(name)
        return users.by_name.get(name)

    with immediate(db):
        existing = db.execute("SELECT id FROM annotation_sets WHERE name = ?", [head["name"]]).fetchone()
        if existing and (replace_set_id is None or existing[0] != replace_set_id):
            raise InvalidInput(f"set {head['name']!r} already exists here; not imported")
        model_id = None
        if head.get("model"):
            m = db.execute(
                "SELECT id FROM models WHERE sha256 = ? AND kind = ?",
                [head["model"]["sha256"], head["model"]["kind"]],
            ).fetchone()
            model_id = m[0] if m else None
        params = dict(head.get("params") or {})
        params.update({"s3_sha256": sha256, "s3_fetched_at": now()})
        if origin:
            params["s3_origin"] = origin
        if owner:
            params["s3_owner"] = owner
        # While an older copy holds the name, the new one waits under a name no set can have.
        name = head["name"] if replace_set_id is None else f"{head['name']}\x00{sha256}"
        set_id = create_set(
            db,
            name,
            head["kind"],
            head["source"],
            label=head.get("label"),
            model_id=model_id,
            created_by=user_id(head.get("created_by")),
            params=params,
            status=head.get("status") or "open",
            created_at=head["created_at"],
        )
        stamp = now()
        images: list[list] = []
        rows: list[list] = []
        history: list[tuple[int, dict]] = []  # (line position, rating)
        links: list[tuple[int, list | None, list | None]] = []  # (line position, parent, origin)
        n = 0

        def flush() -> None:
            report["images_added"] += insert_images(db, IMAGE_FIELDS, images)
            insert_copied(db, rows)
            images.clear()
            rows.clear()

        with gzip.open(path, "rt", encoding="utf-8") as f:
            f.readline()
            for lineno, line in enumerate(f, start=2):
                a = json.loads(line)
                img = a["image"]
                validate_image_id(img.get("id"), f"{head['name']} line {lineno}")
                # A fetched file may name any path or URL: only demo photos and http(s) links stay.
                img["path"] = imported_path(img.get("path"))
                for field in URL_FIELDS:
                    img[field] = http_url(img.get(field))
                images.append([img["id"], *(img.get(k) for k in IMAGE_FIELDS), stamp])
                box = a.get("box") or [None] * 4
                rows.append(
                    [
                        set_id,
                        img["id"],
                        a["kind"],
                        a.get("label"),
                        *box,
                        points_json(a.get("points")),
                        a.get("score"),
                        json.dumps(a["flags"]) if a.get("flags") else None,
                        user_id(a.get("created_by")),
                        a["created_at"],
                        a.get("version", 1),
                        a.get("deleted", 0),
                        a.get("rating"),
                        user_id(a.get("rated_by")),
                        a.get("rated_at"),
                    ]
                )
                history.extend((n, r) for r in a.get("ratings") or [])
                if a.get("parent") or a.get("origin"):
                    links.append((n, a.get("parent"), a.get("origin")))
                n += 1
                if len(rows) >= 5000:
                    flush()
        flush()
        # The set is new and we hold the write lock: its ids ascend in file order.
        ids = [r[0] for r in db.execute("SELECT id FROM annotations WHERE set_id = ? ORDER BY id", [set_id])]
        if len(ids) != head["n_lines"]:
            raise InvalidInput(
                f"{head['name']}: {len(ids)} annotation lines, the header says {head['n_lines']}"
            )
        db.conn.executemany(
            "INSERT INTO ratings (annotation_id, user_id, value, previous, at) VALUES (?, ?, ?, ?, ?)",
            ([ids[i], user_id(r.get("user")), r["value"], r.get("previous"), r["at"]] for i, r in history),
        )
        # Links second: a parent may come later in the file, or live in another set.
        targets: dict[str, list[int] | None] = {}
        refs = head.get("refs") or {}
        updates = []
        for i, parent, origin_ref in links:
            resolved = []
            for link in (parent, origin_ref):
                if not link:
                    resolved.append(None)
                    continue
                name, pos = link
                if name not in targets:
                    targets[name] = _local_ref_set(db, name, refs.get(name), (head["name"], ids))
                found = targets[name]
                if found is None or not 0 <= pos < len(found):
                    report["links_dropped"] += 1
                    resolved.append(None)
                else:
                    resolved.append(found[pos])
            updates.append([*resolved, ids[i]])
        set_links(db, updates)
        got = db.execute(
            "SELECT n_total, n_good, n_bad FROM annotation_sets WHERE id = ?", [set_id]
        ).fetchone()
        want = head["counts"]
        if tuple(got) != (want["total"], want["good"], want["bad"]):
            raise InvalidInput(
                f"{head['name']}: imported counts {tuple(got)} differ from the header's "
                f"({want['total']}, {want['good']}, {want['bad']}); not imported"
            )
        if replace_set_id is not None:
            report["replaced"] = _replace(db, replace_set_id, set_id, ids)
            db.execute("UPDATE annotation_sets SET name = ? WHERE id = ?", [head["name"], set_id])
        report["annotations"] = len(ids)
        report["set_id"] = set_id
        report["unknown_users"] = sorted(unknown_users)
        log_event(
            db,
            "fetch_set",
            target_type="set",
            target_id=set_id,
            set_id=set_id,
            after={"name": head["name"], "sha256": sha256, "annotations": len(ids)},
        )
    return report


def _replace(db: Database, old_set: int, new_set: int, new_ids: list[int]) -> dict:
    """Move everything that points at the old copy's rows onto the new copy's, then drop the old copy.

    The rows themselves are swapped by annotations/rows.replace_copied_set (links, ratings, claims);
    the set's runs and audit events follow it here.
    """
    moved = replace_copied_set(db, old_set, new_set, new_ids)
    db.execute("UPDATE runs SET set_id = ? WHERE set_id = ?", [new_set, old_set])
    db.execute("UPDATE events SET set_id = ? WHERE set_id = ?", [new_set, old_set])
    db.execute("DELETE FROM annotation_sets WHERE id = ?", [old_set])
    return {"old_set_id": old_set, "links_moved": moved}
