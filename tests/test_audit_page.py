"""The audit log and the users page in words: compact changes, set names, readable times, pages."""

import json
import re

from app.annotations.rows import annotation_row, insert_annotations, rate
from app.audit.events import log_event
from app.audit.summary import summarize
from app.db import immediate
from app.sets.queries import create_set
from app.wording import when

IMG = "00000000000000ab"


def _points(n=68, shift=0.0, moved=()):
    return [[0.3 + i / 400 + (shift if i in moved else 0.0), 0.4 + i / 500, 1] for i in range(n)]


def test_a_68_point_edit_is_summarised_in_a_few_words():
    before = {"box": [0.1, 0.1, 0.5, 0.5], "points": _points(), "version": 1}
    after = {"box": [0.1, 0.1, 0.5, 0.5], "points": _points(shift=0.02, moved=(8, 30, 57)), "version": 2}
    text = summarize(json.dumps(before), json.dumps(after))
    assert text == "moved 3 of 68 points, version 1 → 2"
    moved_box = dict(after, box=[0.12, 0.1, 0.5, 0.5])
    assert summarize(before, moved_box) == "box moved, moved 3 of 68 points, version 1 → 2"


def test_other_events_in_words():
    assert summarize('{"rating": null}', '{"rating": "good", "rating_id": 7}') == "rating none → good"
    assert summarize('{"role": "reviewer"}', '{"role": "admin"}') == "role reviewer → admin"
    assert summarize(None, '{"deleted": true}') == "deleted yes"
    assert (
        summarize('{"origin_id": 4, "points": [[0.1, 0.2, 1]]}', None)
        == "origin_id was 4, points was 1 points"
    )
    assert summarize(None, None) == ""
    assert summarize("not json", None) == "value was not json"
    long = summarize(None, json.dumps({f"k{i}": "x" * 10 for i in range(20)}))
    assert len(long) == 120 and long.endswith("…")


def test_times_in_words():
    assert when("2026-12-03T18:05:12.123456+00:00") == "3 Dec 2026 18:05 UTC"
    assert when(None) == "" and when("soon") == "soon"


def test_the_audit_page_is_compact_named_paged_and_linked(admin_client, reviewer_client, db):
    db.execute("INSERT INTO images (id, split, created_at) VALUES (?, 'train', 'now')", [IMG])
    sid = create_set(db, "mtcnn-face_landmarks68-run1", "face_landmarks68", "model")
    with immediate(db):
        insert_annotations(
            db, [annotation_row(sid, IMG, "face_landmarks68", (0.1, 0.1, 0.5, 0.5), _points())]
        )
    ann = db.execute("SELECT id FROM annotations").fetchone()[0]
    admin = db.execute("SELECT id FROM users WHERE username = 'admin'").fetchone()[0]
    with immediate(db):
        for i in range(59):
            log_event(
                db,
                "edit_save",
                user_id=admin,
                target_type="annotation",
                target_id=ann,
                set_id=sid,
                before={"box": [0.1, 0.1, 0.5, 0.5], "points": _points(), "version": i + 1},
                after={
                    "box": [0.1, 0.1, 0.5, 0.5],
                    "points": _points(shift=0.01, moved=(1, 2)),
                    "version": i + 2,
                },
            )
    rate(db, ann, admin, "good")  # the 60th event, the newest
    html = admin_client.get("/audit").get_data(as_text=True)
    rows = re.findall(r'<tr data-event-id="(\d+)">', html)
    assert len(rows) == 50
    # No stored JSON on the page: the changes in words, the set by name (linked), readable times.
    assert "[[" not in html and '"points"' not in html
    assert "moved 2 of 68 points, version 59 → 60" in html
    assert "rating none → good" in html
    assert f'<a href="/sets/{sid}">mtcnn-face_landmarks68-run1</a>' in html
    assert re.search(r'<td class="when">\d{1,2} \w{3} \d{4} \d\d:\d\d UTC</td>', html)
    # Paged: older events a link away, and from there back to the newest.
    older = re.search(r'<a href="([^"]+)">Older events', html).group(1).replace("&amp;", "&")
    page2 = admin_client.get(older).get_data(as_text=True)
    total = db.execute("SELECT count(*) FROM events").fetchone()[0]  # 60 and the logins
    assert len(re.findall(r'<tr data-event-id="(\d+)">', page2)) == total - 50 >= 10
    assert "Newest events" in page2 and "Older events" not in page2
    assert set(rows).isdisjoint(re.findall(r'<tr data-event-id="(\d+)">', page2))
    # The top bar links to it for admins only.
    assert '<a href="/audit">Audit log</a>' in html
    assert '<a href="/audit">' not in reviewer_client.get("/").get_data(as_text=True)


def test_the_users_page_shows_account_events_in_words(admin_client, db):
    admin_client.post(
        "/admin/users", data={"username": "zoe", "password": "long enough pw", "role": "reviewer"}
    )
    zoe = db.execute("SELECT id FROM users WHERE username = 'zoe'").fetchone()[0]
    admin_client.post(f"/admin/users/{zoe}/role", data={"role": "admin"})
    html = admin_client.get("/admin/users").get_data(as_text=True)
    events = html[html.index("Recent account events") :]
    assert "<code>" not in events and "{" not in events
    assert "role reviewer → admin (zoe)" in events
    assert re.search(r"<td>\d{1,2} \w{3} \d{4} \d\d:\d\d UTC</td>", events)
