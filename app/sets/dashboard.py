"""The dashboard's plan: per kind, the set to review now, then the rest folded; readable set titles.

The set to review now is the active model's newest run of the kind (DESIGN.md: only its unrated
rows train, and a newer run supersedes the older runs' unrated rows); where the kind has no such
run, the set with the most unrated rows. Sets whose rows are all rated, superseded or gone, and
older runs, are listed folded under "older and finished sets".
"""

import json

from sqlite_utils import Database

from ..kinds import KINDS
from ..wording import when

# What good and bad mean for a reviewer, per kind, in one line each.
MEANING = {
    "face_box": "Good: the box holds one whole face, forehead to chin, ear to ear. Bad: no face, "
    "two faces, or a box far too big or too small (drag it right with e instead).",
    "face_landmarks5": "Good: eye centres, nose tip and mouth corners each on their spot. Bad: any "
    "point clearly off (correct it with e).",
    "face_landmarks68": "Good: jaw, brows, eyes, nose and lips each follow the face's outline. Bad: a "
    "region clearly off (correct it with e).",
    "object_box": "Good: the box fits the whole object of its class. Bad: wrong class, no object, or "
    "a loose box.",
}


def _images(params: dict, total: int | None) -> str:
    """Which images a bulk run took, in words."""
    parts = []
    if params.get("split"):
        parts.append(f"the {params['split']} split")
    if params.get("prefix"):
        parts.append(f"ids starting {params['prefix']}")
    if params.get("images_file"):
        parts.append(f"the ids in {params['images_file']}")
    if params.get("boxes_from"):
        parts.append(f"the boxes of {params['boxes_from']}")
    what = " and ".join(parts) or "all images"
    n = f"{total} image{'s' if total != 1 else ''}" if total is not None else "the images"
    return f"{n} (of {what}: those without a human label or with a machine row rated bad)"


def describe(s: dict) -> tuple[str, str]:
    """A set's readable title and its description: which model, which images, when, by whom."""
    kind_title = KINDS[s["kind"]].title if s["kind"] in KINDS else s["kind"]
    params = json.loads(s["params"] or "{}") if isinstance(s.get("params"), str) else s.get("params") or {}
    by = f" by {s['created_by_name']}" if s.get("created_by_name") else ""
    at = when(s.get("created_at"))
    if s["source"] == "model" and s.get("model_name"):
        run = f", run {s['run_id']}" if s.get("run_id") else ""
        title = f"{kind_title} by {s['model_name']}{run}"
        desc = (
            f"Model {s['model_name']} (#{s['model_id']}, {s.get('model_status') or 'unknown'}) over "
            f"{_images(s.get('run_params') or {}, s.get('run_total'))}; started {at}"
            f"{by or ' from the command line'}."
        )
    elif s["source"] == "human":
        title = f"{kind_title}: human labels ({s['name']})"
        origin = params.get("origin")
        desc = f"Drawn or corrected by people{by}; created {at}." + (f" {origin}." if origin else "")
    else:
        title = f"{kind_title}: imported ({s['name']})"
        origin = params.get("origin") or params.get("display_name")
        desc = f"Imported {at}{by}." + (f" {origin}." if origin else "")
    return title, desc


def dashboard(db: Database) -> list[dict]:
    """Per kind with sets: {kind, title, meaning, now: set or None, others: [sets]} in KINDS order."""
    rows = list(
        db.query(
            """
            SELECT s.id, s.name, s.kind, s.source, s.label, s.status, s.created_at, s.params,
                   s.n_total AS total, s.n_good AS good, s.n_bad AS bad,
                   s.n_total - s.n_good - s.n_bad AS unrated, s.n_superseded AS superseded,
                   m.name AS model_name, m.id AS model_id, m.status AS model_status,
                   u.username AS created_by_name,
                   r.id AS run_id, r.params AS run_params_json, r.total AS run_total
            FROM annotation_sets s
            LEFT JOIN models m ON m.id = s.model_id
            LEFT JOIN users u ON u.id = s.created_by
            LEFT JOIN runs r ON r.id = json_extract(s.params, '$.run_id')
            ORDER BY s.id DESC
            """
        )
    )
    by_kind: dict[str, list[dict]] = {}
    for s in rows:
        s["run_params"] = json.loads(s.pop("run_params_json") or "{}")
        s["title"], s["description"] = describe(s)
        by_kind.setdefault(s["kind"], []).append(s)
    out = []
    for kind in sorted(by_kind, key=lambda k: list(KINDS).index(k) if k in KINDS else len(KINDS)):
        sets = by_kind[kind]
        now = next((s for s in sets if s["source"] == "model" and s["model_status"] == "active"), None)
        if now is None or now["unrated"] == 0:
            waiting = [s for s in sets if s["unrated"] > 0]
            now = max(waiting, key=lambda s: (s["unrated"], s["id"]), default=now)
        out.append(
            {
                "kind": kind,
                "title": KINDS[kind].title if kind in KINDS else kind,
                "meaning": MEANING.get(kind, ""),
                "now": now,
                "others": [s for s in sets if s is not now],
            }
        )
    return out
