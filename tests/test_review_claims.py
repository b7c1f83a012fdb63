"""Ratings respect claims (issue 19 point 10): an item another reviewer is looking at is refused with
409, not silently rated over them; once their claim ends (they move on, or it expires) anyone rates it."""

import time

from app.db import connect
from tests.conftest import login
from tests.live import instance_app


def _setup(tmp_path, claim_seconds=300):
    app = instance_app(
        tmp_path / "i",
        {"admin": "admin", "ann": "reviewer", "bob": "reviewer"},
        WTF_CSRF_ENABLED=False,
        CLAIM_SECONDS=claim_seconds,
    )
    assert app.test_cli_runner().invoke(args=["oiap", "demo"]).exit_code == 0
    db = connect(app.config["DATABASE"])
    set_id = db.execute("SELECT id FROM annotation_sets WHERE name = 'demo-faces'").fetchone()[0]
    db.close()
    clients = {}
    for name in ("ann", "bob"):
        clients[name] = app.test_client()
        assert login(clients[name], name).status_code == 302
    return app, set_id, clients


def _claimed_by(app, name) -> int:
    db = connect(app.config["DATABASE"])
    try:
        return db.execute(
            "SELECT c.annotation_id FROM claims c JOIN users u ON u.id = c.user_id WHERE u.username = ?",
            [name],
        ).fetchone()[0]
    finally:
        db.close()


def _rating(app, ann_id):
    db = connect(app.config["DATABASE"])
    try:
        return db.execute("SELECT rating, rated_by FROM annotations WHERE id = ?", [ann_id]).fetchone()
    finally:
        db.close()


def test_rating_an_item_another_reviewer_holds_is_refused(tmp_path):
    app, set_id, c = _setup(tmp_path)
    assert c["ann"].get(f"/review/{set_id}").status_code == 200
    held = _claimed_by(app, "ann")
    # Plain form post: 409 with the reason, nothing saved.
    r = c["bob"].post(f"/review/{set_id}/rate", data={"annotation_id": held, "value": "bad"})
    assert r.status_code == 409 and b"ann is reviewing annotation" in r.data
    assert _rating(app, held) == (None, None)
    # htmx: the item comes back (htmx swaps no 4xx) with the reason and who holds it; nothing saved.
    r = c["bob"].post(
        f"/review/{set_id}/rate",
        data={"annotation_id": held, "value": "bad"},
        headers={"HX-Request": "true", "HX-Target": "review-item"},
    )
    assert r.status_code == 200 and b"ann is reviewing annotation" in r.data and b"Claimed by ann" in r.data
    assert _rating(app, held) == (None, None)
    # The holder rates it; then it is free, and bob may change it (a later rating is recorded on top).
    r = c["ann"].post(
        f"/review/{set_id}/rate",
        data={"annotation_id": held, "value": "good"},
        headers={"HX-Request": "true", "HX-Target": "review-item"},
    )
    assert r.status_code == 200 and _rating(app, held)[0] == "good"
    assert _claimed_by(app, "ann") != held
    r = c["bob"].post(f"/review/{set_id}/rate", data={"annotation_id": held, "value": "bad"})
    assert r.status_code == 302 and _rating(app, held)[0] == "bad"


def test_an_expired_claim_does_not_block(tmp_path):
    app, set_id, c = _setup(tmp_path, claim_seconds=0.5)
    assert c["ann"].get(f"/review/{set_id}").status_code == 200
    held = _claimed_by(app, "ann")
    time.sleep(0.6)
    r = c["bob"].post(f"/review/{set_id}/rate", data={"annotation_id": held, "value": "good"})
    assert r.status_code == 302 and _rating(app, held)[0] == "good"
