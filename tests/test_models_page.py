"""The models page on a fresh install: metrics explained, readable times, an Evaluate button that runs
in the background with progress, and "Try it" picked from thumbnails with one model's overlay."""

import re
import socket
import time

from app.models.builtin import ensure_builtin_models
from app.models.registry import active_model
from tests.review_data import seed, user_ids


def _store(db):
    data = seed(db, user_ids(db))
    ensure_builtin_models(db)
    return data


def test_a_fresh_install_explains_and_offers_evaluation(admin_client, reviewer_client, db):
    _store(db)
    model = active_model(db, "face_landmarks68")
    index = admin_client.get("/models/").get_data(as_text=True)
    assert "NME</abbr>, the mean\ndistance between predicted and true points" in index
    assert "not evaluated" in index
    assert re.search(r"<td>\d{1,2} \w{3} \d{4} \d\d:\d\d UTC</td>", index)  # created, in words
    assert not re.search(r"<td>\d{4}-\d\d-\d\dT", index)  # no raw ISO times
    page = admin_client.get(f"/models/{model['id']}").get_data(as_text=True)
    assert "Not evaluated yet: no metrics and no curves." in page
    assert "No charts yet: evaluating draws the CED curve." in page
    assert "Evaluate on the test split</button>" in page and "flask oiap evaluate" not in page
    assert "Evaluate on the test split" not in reviewer_client.get(f"/models/{model['id']}").get_data(
        as_text=True
    )
    assert reviewer_client.post(f"/models/{model['id']}/evaluate").status_code == 403


def test_evaluate_runs_in_the_background_and_the_page_shows_its_progress_then_the_curve(admin_client, db):
    data = _store(db)
    model = active_model(db, "face_landmarks68")
    # Ground truth: the test split's 68-point rows, rated good.
    db.execute(
        "UPDATE annotations SET rating = 'good' WHERE set_id = ?"
        " AND image_id IN (SELECT id FROM images WHERE split = 'test')",
        [data["landmarks68"]],
    )
    db.conn.commit()
    started = time.monotonic()
    r = admin_client.post(f"/models/{model['id']}/evaluate")
    assert r.status_code == 302 and r.headers["Location"] == f"/models/{model['id']}"
    run = db.execute(
        "SELECT id, status, total FROM runs WHERE command = 'evaluate' AND model_id = ?", [model["id"]]
    ).fetchone()
    assert run is not None and run[2] > 0
    page = admin_client.get(f"/models/{model['id']}").get_data(as_text=True)
    assert f"Evaluating model {model['id']} on the test split (run {run[0]})" in page
    # A second press while it runs is refused by name.
    if db.execute("SELECT status FROM runs WHERE id = ?", [run[0]]).fetchone()[0] == "running":
        again = admin_client.post(f"/models/{model['id']}/evaluate", follow_redirects=True).get_data(
            as_text=True
        )
        assert "is being evaluated already" in again or "Last evaluated by run" in again
    # The fragment the page polls: progress while running; when it ends, a reload of the page.
    while True:
        frag = admin_client.get(f"/models/{model['id']}/evaluation?was=running")
        status = db.execute("SELECT status FROM runs WHERE id = ?", [run[0]]).fetchone()[0]
        if status != "running":
            break
        assert 'hx-trigger="every 1s"' in frag.get_data(as_text=True)
        assert time.monotonic() - started < 300, "evaluation did not finish"
        time.sleep(0.5)
    assert status == "done", db.execute("SELECT error FROM runs WHERE id = ?", [run[0]]).fetchone()
    frag = admin_client.get(f"/models/{model['id']}/evaluation?was=running")
    assert frag.headers["HX-Refresh"] == "true" and "Last evaluated by run" in frag.get_data(as_text=True)
    progress, total = db.execute("SELECT progress, total FROM runs WHERE id = ?", [run[0]]).fetchone()
    assert progress == total
    page = admin_client.get(f"/models/{model['id']}").get_data(as_text=True)
    assert 'aria-label="CED, test split"' in page and "No charts yet" not in page
    assert re.search(r"<td>\d{1,2} \w{3} \d{4} \d\d:\d\d UTC</td></tr>", page)  # evaluated at, in words


def test_evaluate_without_ground_truth_says_so(admin_client, db):
    _store(db)
    model = active_model(db, "face_landmarks68")
    page = admin_client.post(f"/models/{model['id']}/evaluate", follow_redirects=True).get_data(as_text=True)
    assert "no face_landmarks68 ground truth on the test split" in page
    assert db.execute("SELECT count(*) FROM runs WHERE command = 'evaluate'").fetchone()[0] == 0


def test_try_it_is_picked_from_thumbnails_and_draws_one_kind(admin_client, db):
    data = _store(db)
    model = active_model(db, "face_landmarks68")
    page = admin_client.get(f"/models/{model['id']}").get_data(as_text=True)
    choices = re.findall(
        r'<a href="(/models/\d+/try\?image_id=[0-9a-f]{16})"[^>]*>\s*<img src="([^"]+)"', page
    )
    assert len(choices) == db.execute("SELECT count(*) FROM images").fetchone()[0] and "list=" not in page
    thumb = admin_client.get(choices[0][1])  # the thumbnail is served
    thumb.close()
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg"
    assert "test</span>" in page.split('class="try-choices"')[1].split("</li>")[0]  # test split first
    image_id = choices[0][0].rsplit("=", 1)[1]
    html = admin_client.get(choices[0][0]).get_data(as_text=True)
    stored = html.split('class="stored-layer"')[1].split("</g>")[0]
    n68 = db.execute(
        "SELECT count(*) FROM annotations WHERE image_id = ? AND kind = 'face_landmarks68' AND deleted = 0",
        [image_id],
    ).fetchone()[0]
    # Only the model's own kind: one points path per 68-point face, no 5-point or box-only faces.
    assert stored.count('class="pts"') == n68 and f"{n68} face_landmarks68 annotations" in html
    assert data["n_faces"] > 0


def test_a_run_whose_process_is_gone_does_not_block_evaluate(admin_client, db):
    data = _store(db)
    model = active_model(db, "face_landmarks68")
    db.execute(
        "UPDATE annotations SET rating = 'good' WHERE set_id = ?"
        " AND image_id IN (SELECT id FROM images WHERE split = 'test')",
        [data["landmarks68"]],
    )
    # A run left 'running' by a server that died mid-run: its pid is no process on this host.
    db.execute(
        "INSERT INTO runs (command, params, status, total, model_id, started_at, pid, host)"
        " VALUES ('evaluate', '{}', 'running', 5, ?, '2026-12-03T10:00:00+00:00', 2147483646, ?)",
        [model["id"], socket.gethostname()],
    )
    db.conn.commit()
    page = admin_client.get(f"/models/{model['id']}").get_data(as_text=True)
    assert "stopped with the server before it finished" in page and 'hx-trigger="every 1s"' not in page
    page = admin_client.post(f"/models/{model['id']}/evaluate", follow_redirects=True).get_data(as_text=True)
    assert "is being evaluated already" not in page and f"Evaluating model {model['id']}" in page
    for _ in range(600):
        if (
            db.execute("SELECT count(*) FROM runs WHERE status = 'running' AND pid != 2147483646").fetchone()[
                0
            ]
            == 0
        ):
            break
        time.sleep(0.5)
    assert db.execute("SELECT status FROM runs ORDER BY id DESC LIMIT 1").fetchone()[0] == "done"
