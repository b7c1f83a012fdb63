"""The README's first loop on a fresh demo store: train, evaluate, promote or refuse, bulk-annotate,
review, each as the README writes it."""

import json
import re

import pytest

from app.export import iter_training_rows

pytestmark = pytest.mark.slow


def test_the_first_loop_runs_in_five_commands(runner, admin_client, db):
    r = runner.invoke(args=["oiap", "demo"])
    assert r.exit_code == 0, r.output

    # 1. train: a candidate from the demo's hand-drawn boxes.
    r = runner.invoke(args=["oiap", "train", "--kind", "face_box", "--epochs", "1", "--json"])
    assert r.exit_code == 0, r.output
    model_id = json.loads(r.output[r.output.index("{") :])["model_id"]

    # 2. evaluate: on the test split's ground truth, the human boxes of the three test photos.
    r = runner.invoke(args=["oiap", "evaluate", str(model_id), "--json"])
    assert r.exit_code == 0, r.output
    metrics = json.loads(r.output[r.output.index("{") :])
    assert metrics["ground_truth"] == 16 and 0 < metrics["ap"] <= 1

    # 3. promote: active only if it beats the builtin detector; a refusal says by how much.
    r = runner.invoke(args=["oiap", "promote", str(model_id)])
    assert r.exit_code in (0, 1), r.output
    assert ("is now active" in r.output) if r.exit_code == 0 else ("does not beat" in r.output)

    # 4. bulk-annotate: the images no human labelled (the astronaut) with the active model.
    r = runner.invoke(args=["oiap", "bulk-annotate", "--kind", "face_box"])
    assert r.exit_code == 0, r.output
    new_set = db.execute(
        "SELECT id, n_total FROM annotation_sets WHERE kind = 'face_box' ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert new_set[1] >= 1

    # 5. review: the dashboard's "Review now" for face boxes is the new run; rate its face good.
    page = admin_client.get("/").get_data(as_text=True)
    boxes = re.search(r'data-kind="face_box">(.*?)</section>', page, re.S).group(1)
    now = boxes.split("<details", 1)[0]
    assert "Review now" in now and f'href="/review/{new_set[0]}"' in now
    review = admin_client.get(f"/review/{new_set[0]}").get_data(as_text=True)
    ann_id = int(re.search(r'id="review-item"[^>]*data-annotation-id="(\d+)"', review).group(1))
    cursor = re.search(r'name="cursor" value="([^"]+)"', review).group(1)
    r = admin_client.post(
        f"/review/{new_set[0]}/rate",
        data={"annotation_id": ann_id, "cursor": cursor, "value": "good"},
        headers={"HX-Request": "true", "HX-Target": "review-item"},
    )
    assert r.status_code == 200
    (row,) = [x for x in iter_training_rows(db, "face_box") if x.annotation_id == ann_id]
    assert row.source == "machine_good" and row.weight == 1.0
