"""The editor's server side: pages, saving corrections with versions and conflicts, strict bodies, placement."""

import json
import re

import pytest

from app.annotations.rows import get_annotation, rate
from app.db import connect
from app.editor.edits import MAX_BODY_BYTES
from app.editor.names import LANDMARK68_TITLES, point_titles
from tests.conftest import login
from tests.editor_seed import seed
from tests.live import instance_app

KIND = "face_landmarks68"


@pytest.fixture
def data(db):
    """The demo photos and 18 machine faces with 68 points."""
    return seed(db)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One seeded app and logged-in client for the tests that write nothing (password hashing is slow)."""
    instance = tmp_path_factory.mktemp("editor") / "instance"
    app = instance_app(instance, users={"admin": "admin"}, WTF_CSRF_ENABLED=False)
    db = connect(app.config["DATABASE"])
    data = seed(db)
    client = app.test_client()
    assert login(client, "admin").status_code == 302
    yield client, db, data
    db.close()


def page_config(resp) -> dict:
    m = re.search(rb'<script type="application/json" id="editor-config">(.*?)</script>', resp.data, re.S)
    return json.loads(m.group(1))


def user_id(db, name):
    return db.execute("SELECT id FROM users WHERE username = ?", [name]).fetchone()[0]


def moved(points, i, dx, dy):
    pts = [list(p) for p in points]
    pts[i] = [pts[i][0] + dx, pts[i][1] + dy, pts[i][2]]
    return pts


def box_of(ann):
    return [ann["x0"], ann["y0"], ann["x1"], ann["y1"]]


def post(client, body, **kw):
    return client.post("/edit/save", json=body, **kw)


def correction(db, ann_id, dx=0.01):
    m = get_annotation(db, ann_id)
    return {
        "image_id": m["image_id"],
        "kind": KIND,
        "faces": [
            {
                "key": f"m{ann_id}",
                "origin_id": ann_id,
                "box": box_of(m),
                "points": moved(m["points"], 30, dx, 0),
            }
        ],
    }


# ---- pages ----------------------------------------------------------------------------------------


def test_annotation_page_shows_every_face_of_the_image_with_this_one_focused(admin_client, data):
    face = data["faces"][2]
    resp = admin_client.get(f"/edit/annotation/{face['id']}")
    assert resp.status_code == 200
    cfg = page_config(resp)
    assert cfg["kind"] == KIND and cfg["n_points"] == 68
    assert (
        cfg["image"]["width"] == face["image"]["width"] and cfg["image"]["height"] == face["image"]["height"]
    )
    same_image = [f["id"] for f in data["faces"] if f["image"]["id"] == face["image"]["id"]]
    assert sorted(f["origin_id"] for f in cfg["faces"]) == same_image
    assert cfg["focus_key"] == f"m{face['id']}"
    assert cfg["names"][36] == "left eye, outer corner (36)"
    assert len(cfg["lines"]) == 9
    assert b"static/js/editor.js" in resp.data and b'name="csrf-token"' in resp.data


def test_the_image_served_to_the_editor_is_the_photo(admin_client, data):
    cfg = page_config(admin_client.get(f"/edit/annotation/{data['faces'][0]['id']}"))
    with admin_client.get(cfg["image"]["url"]) as resp:
        assert resp.status_code == 200
        assert resp.data[:3] == b"\xff\xd8\xff"  # a JPEG


def test_image_page_and_its_errors(admin_client, data):
    image_id = data["faces"][0]["image"]["id"]
    assert admin_client.get(f"/edit/image/{image_id}?kind={KIND}").status_code == 200
    cfg = page_config(admin_client.get(f"/edit/image/{image_id}?kind=face_box"))
    assert cfg["faces"] == [] and cfg["n_points"] == 0
    assert admin_client.get(f"/edit/image/{image_id}?kind=cat_whiskers").status_code == 400
    assert admin_client.get("/edit/image/0123456789abcdef").status_code == 404
    assert admin_client.get("/edit/annotation/999999").status_code == 404


def test_editor_needs_a_login(client, data):
    resp = client.get(f"/edit/annotation/{data['faces'][0]['id']}")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    assert client.post("/edit/save", json={}).status_code in (302, 401)


def test_names_follow_ibug_order():
    assert len(LANDMARK68_TITLES) == 68
    names = point_titles(KIND)
    assert names[30] == "nose tip (30)" and names[45] == "right eye, outer corner (45)"
    assert names[8] == "chin (8)" and names[48] == "mouth, left corner (48)"
    assert point_titles("face_landmarks5")[0] == "left eye (0)"


# ---- saving ---------------------------------------------------------------------------------------


def test_a_correction_writes_a_human_annotation_and_rates_the_machine_one_bad(admin_client, db, data):
    m_id = data["faces"][0]["id"]
    before = get_annotation(db, m_id)
    resp = post(admin_client, correction(db, m_id))
    assert resp.status_code == 200, resp.json
    [result] = resp.json["faces"]
    assert result["key"] == f"m{m_id}" and result["origin_id"] == m_id and result["version"] == 1

    human = get_annotation(db, result["id"])
    hset = db.execute(
        "SELECT name, source, kind FROM annotation_sets WHERE id = ?", [human["set_id"]]
    ).fetchone()
    assert hset == ("human-face_landmarks68", "human", KIND)
    assert human["origin_id"] == m_id and human["created_by"] == user_id(db, "admin")
    assert human["points"][30][0] == pytest.approx(before["points"][30][0] + 0.01, abs=1e-6)
    assert box_of(human) == pytest.approx(box_of(before))

    after = get_annotation(db, m_id)
    assert after["points"] == before["points"] and box_of(after) == box_of(before)
    assert after["rating"] == "bad" and after["rated_by"] == user_id(db, "admin")
    assert db.execute("SELECT value FROM ratings WHERE annotation_id = ?", [m_id]).fetchall() == [("bad",)]
    actions = [r[0] for r in db.execute("SELECT action FROM events ORDER BY id")]
    assert "edit_correct" in actions and "rate" in actions
    ev = db.execute("SELECT user_id, target_id FROM events WHERE action = 'edit_correct'").fetchone()
    assert ev == (user_id(db, "admin"), str(result["id"]))


def test_the_editor_then_shows_the_correction_not_the_prediction(admin_client, db, data):
    m_id = data["faces"][0]["id"]
    h_id = post(admin_client, correction(db, m_id)).json["faces"][0]["id"]
    cfg = page_config(admin_client.get(f"/edit/annotation/{m_id}"))
    assert cfg["focus_key"] == f"h{h_id}"
    keys = [f["key"] for f in cfg["faces"]]
    assert f"h{h_id}" in keys and f"m{m_id}" not in keys
    mine = next(f for f in cfg["faces"] if f["key"] == f"h{h_id}")
    assert mine["id"] == h_id and mine["version"] == 1 and mine["origin_id"] == m_id


def test_versions_and_a_stale_save_answers_409_and_keeps_the_newer_edit(
    admin_client, reviewer_client, db, data
):
    m_id = data["faces"][0]["id"]
    h_id = post(admin_client, correction(db, m_id)).json["faces"][0]["id"]
    h = get_annotation(db, h_id)
    # The reviewer saves version 1 first...
    theirs = {
        "key": "x",
        "id": h_id,
        "version": 1,
        "box": box_of(h),
        "points": moved(h["points"], 8, 0, 0.02),
    }
    r1 = post(reviewer_client, {"image_id": h["image_id"], "kind": KIND, "faces": [theirs]})
    assert r1.status_code == 200 and r1.json["faces"][0]["version"] == 2
    # ...then the admin, still on version 1, is refused and the reviewer's edit stays.
    mine = {"key": "y", "id": h_id, "version": 1, "box": box_of(h), "points": moved(h["points"], 30, 0.05, 0)}
    r2 = post(admin_client, {"image_id": h["image_id"], "kind": KIND, "faces": [mine]})
    assert r2.status_code == 409
    assert "changed by rev (version 2" in r2.json["error"] and "version 2" in r2.json["error"]
    now = get_annotation(db, h_id)
    assert now["version"] == 2
    assert now["points"][8][1] == pytest.approx(h["points"][8][1] + 0.02, abs=1e-6)
    assert now["points"][30] == h["points"][30]
    # With the current version the admin's save goes through.
    mine["version"] = 2
    r3 = post(admin_client, {"image_id": h["image_id"], "kind": KIND, "faces": [mine]})
    assert r3.status_code == 200 and get_annotation(db, h_id)["version"] == 3
    saves = db.execute("SELECT count(*) FROM events WHERE action = 'edit_save'").fetchone()[0]
    assert saves == 2


def test_correcting_a_prediction_someone_already_corrected_is_a_conflict(
    admin_client, reviewer_client, db, data
):
    m_id = data["faces"][0]["id"]
    assert post(reviewer_client, correction(db, m_id, 0.01)).status_code == 200
    resp = post(admin_client, correction(db, m_id, 0.02))
    assert resp.status_code == 409 and "already corrected by rev " in resp.json["error"]
    assert db.execute("SELECT count(*) FROM annotations WHERE origin_id = ?", [m_id]).fetchone()[0] == 1


def test_a_save_is_all_or_nothing(admin_client, reviewer_client, db, data):
    a, b = data["faces"][0]["id"], data["faces"][1]["id"]
    assert post(reviewer_client, correction(db, b)).status_code == 200
    body = correction(db, a)
    body["faces"] += correction(db, b)["faces"]  # b was corrected meanwhile
    n_before = db.execute("SELECT count(*) FROM annotations").fetchone()[0]
    assert post(admin_client, body).status_code == 409
    assert db.execute("SELECT count(*) FROM annotations").fetchone()[0] == n_before
    assert get_annotation(db, a)["rating"] is None


def test_a_new_face_is_saved_to_the_human_set(admin_client, db, data):
    image_id = data["faces"][0]["image"]["id"]
    pts = [[0.1 + i / 1000, 0.2 + i / 2000, 1] for i in range(68)]
    pts[5][2] = 0
    body = {
        "image_id": image_id,
        "kind": KIND,
        "faces": [{"key": "new1", "box": [0.05, 0.1, 0.3, 0.4], "points": pts}],
    }
    resp = post(admin_client, body)
    assert resp.status_code == 200
    new = get_annotation(db, resp.json["faces"][0]["id"])
    assert new["origin_id"] is None and new["version"] == 1 and new["label"] == "/m/0dzct"
    assert new["points"][5][2] == 0 and new["points"][6][2] == 1
    assert box_of(new) == [0.05, 0.1, 0.3, 0.4]
    n_total = db.execute(
        "SELECT n_total FROM annotation_sets WHERE name = 'human-face_landmarks68'"
    ).fetchone()[0]
    assert n_total == 1
    assert db.execute("SELECT count(*) FROM events WHERE action = 'edit_create'").fetchone()[0] == 1


def test_deleting_a_false_machine_face(admin_client, db, data):
    m = data["faces"][0]
    body = {"image_id": m["image"]["id"], "kind": KIND, "faces": [{"origin_id": m["id"], "deleted": True}]}
    resp = post(admin_client, body)
    assert resp.status_code == 200 and resp.json["faces"][0]["deleted"] is True
    tomb = get_annotation(db, resp.json["faces"][0]["id"])
    assert tomb["deleted"] == 1 and tomb["origin_id"] == m["id"]
    assert get_annotation(db, m["id"])["rating"] == "bad" and get_annotation(db, m["id"])["deleted"] == 0
    cfg = page_config(admin_client.get(f"/edit/image/{m['image']['id']}?kind={KIND}"))
    assert f"m{m['id']}" not in [f["key"] for f in cfg["faces"]]
    assert db.execute("SELECT count(*) FROM events WHERE action = 'edit_delete'").fetchone()[0] == 1
    hset = db.execute("SELECT n_total FROM annotation_sets WHERE name = 'human-face_landmarks68'").fetchone()
    assert hset == (0,)


def test_deleting_a_human_face_needs_its_version(admin_client, db, data):
    m_id = data["faces"][0]["id"]
    h_id = post(admin_client, correction(db, m_id)).json["faces"][0]["id"]
    image_id = data["faces"][0]["image"]["id"]
    stale = {"image_id": image_id, "kind": KIND, "faces": [{"id": h_id, "version": 7, "deleted": True}]}
    assert post(admin_client, stale).status_code == 409
    ok = {"image_id": image_id, "kind": KIND, "faces": [{"id": h_id, "version": 1, "deleted": True}]}
    assert post(admin_client, ok).status_code == 200
    h = get_annotation(db, h_id)
    assert h["deleted"] == 1 and h["version"] == 2
    again = post(
        admin_client, {**ok, "faces": [{"id": h_id, "version": 2, "box": box_of(h), "points": h["points"]}]}
    )
    assert again.status_code == 409 and "deleted" in again.json["error"]


def test_editing_a_rated_human_face_clears_its_rating(admin_client, db, data):
    m_id = data["faces"][0]["id"]
    h_id = post(admin_client, correction(db, m_id)).json["faces"][0]["id"]
    rate(db, h_id, user_id(db, "rev"), "good")
    h = get_annotation(db, h_id)
    body = {
        "image_id": h["image_id"],
        "kind": KIND,
        "faces": [{"id": h_id, "version": 1, "box": box_of(h), "points": h["points"]}],
    }
    assert post(admin_client, body).status_code == 200
    assert get_annotation(db, h_id)["rating"] is None


def test_a_face_of_another_image_or_kind_is_refused(admin_client, db, data):
    m = data["faces"][0]
    other_image = next(f["image"]["id"] for f in data["faces"] if f["image"]["id"] != m["image"]["id"])
    body = correction(db, m["id"])
    body["image_id"] = other_image
    resp = post(admin_client, body)
    assert resp.status_code == 400 and "not a machine" in resp.json["error"]
    body = correction(db, m["id"])
    body["faces"][0]["origin_id"] = 999999
    assert post(admin_client, body).status_code == 404


def test_save_with_the_csrf_token_of_the_page(admin_client, app, db, data):
    app.config["WTF_CSRF_ENABLED"] = True
    resp = admin_client.get(f"/edit/annotation/{data['faces'][0]['id']}")
    token = re.search(rb'name="csrf-token" content="([^"]+)"', resp.data).group(1).decode()
    body = correction(db, data["faces"][0]["id"])
    assert post(admin_client, body).status_code == 400  # no token
    assert post(admin_client, body, headers={"X-CSRFToken": token}).status_code == 200


# ---- strict bodies --------------------------------------------------------------------------------

GOOD_POINTS = [[0.5, 0.5, 1]] * 68


def face(**kw):
    return {"key": "k", "box": [0.1, 0.1, 0.5, 0.5], "points": GOOD_POINTS, **kw}


BAD_BODIES = {
    "a list": [],
    "a string": "faces",
    "no faces": {"kind": KIND, "faces": []},
    "faces not a list": {"kind": KIND, "faces": {"a": 1}},
    "unknown top field": {"kind": KIND, "faces": [face()], "force": True},
    "unknown kind": {"kind": "object_box2", "faces": [face()]},
    "kind not a string": {"kind": 68, "faces": [face()]},
    "image id not a string": {"image_id": 12, "kind": KIND, "faces": [face()]},
    "face not an object": {"kind": KIND, "faces": [[0.1, 0.2]]},
    "unknown face field": {"kind": KIND, "faces": [face(colour="red")]},
    "box of 3": {"kind": KIND, "faces": [face(box=[0.1, 0.1, 0.5])]},
    "box as string": {"kind": KIND, "faces": [face(box="0.1,0.1,0.5,0.5")]},
    "box inverted": {"kind": KIND, "faces": [face(box=[0.5, 0.1, 0.1, 0.5])]},
    "box out of range": {"kind": KIND, "faces": [face(box=[0.1, 0.1, 1.5, 0.5])]},
    "box negative": {"kind": KIND, "faces": [face(box=[-0.1, 0.1, 0.5, 0.5])]},
    "box with a bool": {"kind": KIND, "faces": [face(box=[True, 0.1, 0.5, 0.5])]},
    "box with null": {"kind": KIND, "faces": [face(box=[None, 0.1, 0.5, 0.5])]},
    "box missing": {"kind": KIND, "faces": [{"points": GOOD_POINTS}]},
    "67 points": {"kind": KIND, "faces": [face(points=GOOD_POINTS[:67])]},
    "69 points": {"kind": KIND, "faces": [face(points=GOOD_POINTS + [[0.5, 0.5, 1]])]},
    "points missing": {"kind": KIND, "faces": [{"box": [0.1, 0.1, 0.5, 0.5]}]},
    "point of 1": {"kind": KIND, "faces": [face(points=[[0.5]] + GOOD_POINTS[1:])]},
    "point of 4": {"kind": KIND, "faces": [face(points=[[0.5, 0.5, 1, 1]] + GOOD_POINTS[1:])]},
    "point as string": {"kind": KIND, "faces": [face(points=[["0.5", 0.5, 1]] + GOOD_POINTS[1:])]},
    "point out of range": {"kind": KIND, "faces": [face(points=[[0.5, 1.01, 1]] + GOOD_POINTS[1:])]},
    "visible 2": {"kind": KIND, "faces": [face(points=[[0.5, 0.5, 2]] + GOOD_POINTS[1:])]},
    "visible 0.5": {"kind": KIND, "faces": [face(points=[[0.5, 0.5, 0.5]] + GOOD_POINTS[1:])]},
    "points on a box kind": {"kind": "face_box", "faces": [face()]},
    "id a string": {"kind": KIND, "faces": [face(id="1", version=1)]},
    "id a bool": {"kind": KIND, "faces": [face(id=True, version=1)]},
    "id negative": {"kind": KIND, "faces": [face(id=-3, version=1)]},
    "id huge": {"kind": KIND, "faces": [face(id=2**70, version=1)]},
    "id a float": {"kind": KIND, "faces": [face(id=1.0, version=1)]},
    "id without version": {"kind": KIND, "faces": [face(id=1)]},
    "version without id": {"kind": KIND, "faces": [face(version=1)]},
    "same id twice": {"kind": KIND, "faces": [face(id=1, version=1), face(id=1, version=1)]},
    "same origin twice": {"kind": KIND, "faces": [face(origin_id=1), face(origin_id=1)]},
    "deleted a string": {"kind": KIND, "faces": [face(origin_id=1, deleted="yes")]},
    "delete a new face": {"kind": KIND, "faces": [{"deleted": True}]},
    "key too long": {"kind": KIND, "faces": [face(key="k" * 41)]},
    "too many faces": {"kind": KIND, "faces": [face()] * 101},
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_bad_bodies_answer_400_with_a_message(shared, name):
    client, db, data = shared
    body = BAD_BODIES[name]
    if isinstance(body, dict):
        body = {"image_id": data["faces"][0]["image"]["id"], **body}
    n_before = db.execute("SELECT count(*) FROM annotations").fetchone()[0]
    resp = post(client, body)
    assert resp.status_code == 400, resp.data
    assert resp.json["error"]
    assert db.execute("SELECT count(*) FROM annotations").fetchone()[0] == n_before


def pts_text(value: str) -> str:
    return "[" + ",".join([f"[{value}, 0.5, 1]"] + ["[0.5, 0.5, 1]"] * 67) + "]"


@pytest.mark.parametrize(
    "raw",
    [
        "{not json",
        "",
        '{"kind": "face_landmarks68", "faces": [{"box": [NaN, 0.1, 0.5, 0.5]}]}',
        '{"kind": "face_landmarks68", "faces": [{"box": [0.1, 0.1, 0.5, 0.5], "points": '
        + pts_text("Infinity")
        + "}]}",
        '{"kind": "face_landmarks68", "faces": [{"box": [0.1, 0.1, 0.5, 0.5], "points": '
        + pts_text("-Infinity")
        + "}]}",
        '{"kind": "face_landmarks68", "faces": [{"box": [1e999, 0.1, 0.5, 0.5], "points": '
        + pts_text("0.5")
        + "}]}",
        "[" * 100_000 + "]" * 100_000,
        '{"a": "' + "x" * (MAX_BODY_BYTES + 10) + '"}',
    ],
    ids=["broken", "empty", "nan", "infinity", "minus-infinity", "overflow", "deep", "huge"],
)
def test_raw_bodies_that_are_not_strict_json_answer_400(shared, raw):
    resp = shared[0].post("/edit/save", data=raw, content_type="application/json")
    assert resp.status_code == 400, resp.data[:200]
    assert resp.json["error"]


def test_a_body_that_is_not_json_content_is_refused(admin_client, db, data):
    resp = admin_client.post("/edit/save", data=json.dumps(correction(db, data["faces"][0]["id"])))
    assert resp.status_code == 400 and "application/json" in resp.json["error"]


def test_an_unknown_image_is_404(admin_client, db, data):
    body = correction(db, data["faces"][0]["id"])
    body["image_id"] = "ffffffffffffffff"
    assert post(admin_client, body).status_code == 404


# ---- placing a new face ---------------------------------------------------------------------------


def test_place_fits_the_template_to_a_drawn_box(admin_client, data):
    f = data["faces"][14]  # 90 px face on 2008_001009.jpg
    w, h = f["image"]["width"], f["image"]["height"]
    x0, y0, x1, y1 = f["box_px"]
    box = [x0 / w, y0 / h, x1 / w, y1 / h]
    resp = admin_client.post("/edit/place", json={"image_id": f["image"]["id"], "kind": KIND, "box": box})
    assert resp.status_code == 200, resp.json
    assert resp.json["method"] == "box" and resp.json["five_id"] is None
    pts = resp.json["points"]
    assert len(pts) == 68 and all(p[2] == 1 for p in pts)
    # Every point lies within the box (padded by a tenth), and the eyes sit above the mouth.
    pad = 0.1 * (x1 - x0)
    for x, y, _ in pts:
        assert x0 - pad <= x * w <= x1 + pad and y0 - pad <= y * h <= y1 + pad
    assert pts[36][1] < pts[48][1] and pts[36][0] < pts[45][0]
    # Close to the real landmarks: mean error under a fifth of the inter-ocular distance.
    true = f["points_px"]
    iod = ((true[45][0] - true[36][0]) ** 2 + (true[45][1] - true[36][1]) ** 2) ** 0.5
    err = (
        sum(((p[0] * w - t[0]) ** 2 + (p[1] * h - t[1]) ** 2) ** 0.5 for p, t in zip(pts, true, strict=True))
        / 68
    )
    assert err / iod < 0.2


def test_place_uses_five_points_when_a_five_point_annotation_matches(admin_client, db, data):
    from app.annotations.rows import annotation_row, insert_annotations
    from app.sets.queries import create_set

    f = data["faces"][14]
    w, h = f["image"]["width"], f["image"]["height"]
    t = f["points_px"]

    def mean(idx):
        return [sum(t[i][0] for i in idx) / len(idx), sum(t[i][1] for i in idx) / len(idx)]

    five_px = [mean(range(36, 42)), mean(range(42, 48)), list(t[30]), list(t[48]), list(t[54])]
    x0, y0, x1, y1 = f["box_px"]
    set5 = create_set(db, "mtcnn-demo", "face_landmarks5", "model")
    row = annotation_row(
        set5,
        f["image"]["id"],
        "face_landmarks5",
        (x0 / w, y0 / h, x1 / w, y1 / h),
        [[x / w, y / h, 1] for x, y in five_px],
    )
    insert_annotations(db, [row])
    db.conn.commit()
    five_id = db.execute("SELECT max(id) FROM annotations").fetchone()[0]
    # A box drawn a little off the five-point face's box still finds it.
    box = [(x0 + 3) / w, (y0 + 2) / h, (x1 + 3) / w, (y1 - 2) / h]
    resp = admin_client.post("/edit/place", json={"image_id": f["image"]["id"], "kind": KIND, "box": box})
    assert resp.status_code == 200 and resp.json["method"] == "five" and resp.json["five_id"] == five_id
    pts = resp.json["points"]
    # The fitted face's eye centres and mouth corners land near the five points.
    assert abs(pts[30][0] * w - five_px[2][0]) < 6 and abs(pts[30][1] * h - five_px[2][1]) < 6
    eye = [sum(pts[i][0] for i in range(36, 42)) / 6 * w, sum(pts[i][1] for i in range(36, 42)) / 6 * h]
    assert abs(eye[0] - five_px[0][0]) < 4 and abs(eye[1] - five_px[0][1]) < 4
    # For the 5-point kind itself the placement gives five points.
    r5 = admin_client.post(
        "/edit/place", json={"image_id": f["image"]["id"], "kind": "face_landmarks5", "box": box}
    )
    assert r5.status_code == 200 and len(r5.json["points"]) == 5


@pytest.mark.parametrize(
    "body",
    [
        {"kind": KIND, "box": [0.5, 0.5, 0.4, 0.6]},
        {"kind": KIND, "box": [0.1, 0.1, 0.2]},
        {"kind": "nope", "box": [0.1, 0.1, 0.2, 0.2]},
        {"kind": KIND, "box": [0.1, 0.1, 0.2, 0.2], "extra": 1},
    ],
)
def test_place_validates_its_body(shared, body):
    client, _db, data = shared
    resp = client.post("/edit/place", json={"image_id": data["faces"][0]["image"]["id"], **body})
    assert resp.status_code == 400 and resp.json["error"]


def test_faces_json_reflects_saves_and_the_set_parameter(admin_client, db, data):
    m = data["faces"][0]
    image_id = m["image"]["id"]
    h_id = post(admin_client, correction(db, m["id"])).json["faces"][0]["id"]
    resp = admin_client.get(f"/edit/image/{image_id}/faces?kind={KIND}")
    assert resp.status_code == 200
    keys = [f["key"] for f in resp.json["faces"]]
    assert keys[0] == f"h{h_id}" and f"m{m['id']}" not in keys
    assert resp.json["machine_set"] == "dlib-68-demo"
    # Another machine set on the same image: the newest is shown unless ?set= picks one.
    from app.annotations.rows import annotation_row, insert_annotations
    from app.sets.queries import create_set

    newer = create_set(db, "newer-68", KIND, "model")
    insert_annotations(db, [annotation_row(newer, image_id, KIND, (0.1, 0.1, 0.2, 0.2), GOOD_POINTS)])
    db.conn.commit()
    assert admin_client.get(f"/edit/image/{image_id}/faces?kind={KIND}").json["machine_set"] == "newer-68"
    old = admin_client.get(f"/edit/image/{image_id}/faces?kind={KIND}&set={data['set_id']}").json
    assert old["machine_set"] == "dlib-68-demo" and len(old["faces"]) == 7
    assert admin_client.get(f"/edit/image/{image_id}/faces?kind={KIND}&set=x").status_code == 400
    assert admin_client.get(f"/edit/image/{image_id}?kind={KIND}&set={data['set_id']}").status_code == 200


def test_a_box_only_face_saves_without_points(admin_client, db, data):
    image_id = data["faces"][0]["image"]["id"]
    body = {"image_id": image_id, "kind": "face_box", "faces": [{"key": "n", "box": [0.2, 0.2, 0.4, 0.5]}]}
    resp = post(admin_client, body)
    assert resp.status_code == 200
    ann = get_annotation(db, resp.json["faces"][0]["id"])
    assert ann["kind"] == "face_box" and ann["points"] is None and box_of(ann) == [0.2, 0.2, 0.4, 0.5]
    place = admin_client.post(
        "/edit/place", json={"image_id": image_id, "kind": "face_box", "box": [0.2, 0.2, 0.4, 0.5]}
    )
    assert place.status_code == 200 and place.json["points"] is None


def test_a_landmarks_row_without_a_box_gets_its_parent_box(admin_client, db, data):
    from app.annotations.rows import annotation_row, insert_annotation
    from app.sets.queries import create_set

    image_id = data["faces"][0]["image"]["id"]
    boxes = create_set(db, "boxes", "face_box", "model")
    parent = insert_annotation(db, annotation_row(boxes, image_id, "face_box", (0.3, 0.3, 0.5, 0.6)))
    lm = create_set(db, "points-only", KIND, "model")
    child = insert_annotation(db, annotation_row(lm, image_id, KIND, None, GOOD_POINTS, parent_id=parent))
    db.conn.commit()
    cfg = page_config(admin_client.get(f"/edit/annotation/{child}"))
    face = next(f for f in cfg["faces"] if f["key"] == f"m{child}")
    assert face["box"] == [0.3, 0.3, 0.5, 0.6]


def test_a_human_face_hides_machine_faces_it_overlaps(admin_client, db, data):
    m = data["faces"][0]
    ann = get_annotation(db, m["id"])
    # A new human face drawn over the machine one (not a correction of it) replaces it in the editor.
    body = {
        "image_id": ann["image_id"],
        "kind": KIND,
        "faces": [{"key": "n", "box": box_of(ann), "points": ann["points"]}],
    }
    h_id = post(admin_client, body).json["faces"][0]["id"]
    cfg = page_config(admin_client.get(f"/edit/annotation/{m['id']}"))
    keys = [f["key"] for f in cfg["faces"]]
    assert f"m{m['id']}" not in keys and f"h{h_id}" in keys
    assert cfg["focus_key"] == f"h{h_id}"
    assert len(keys) == 7


def test_simultaneous_saves_of_one_face_let_exactly_one_through(app, db, data):
    """Eight clients save at once: one correction is created, one update wins, the rest get 409."""
    import threading

    m_id = data["faces"][0]["id"]
    clients = []
    for _ in range(8):
        c = app.test_client()
        assert login(c, "rev").status_code == 302
        clients.append(c)

    def race(bodies):
        codes, barrier = [], threading.Barrier(len(clients))

        def go(c, body):
            barrier.wait()
            codes.append(post(c, body).status_code)

        threads = [threading.Thread(target=go, args=(c, b)) for c, b in zip(clients, bodies, strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        return sorted(codes)

    assert race([correction(db, m_id, 0.001 * (i + 1)) for i in range(8)]) == [200] + [409] * 7
    rows = db.execute("SELECT id FROM annotations WHERE origin_id = ?", [m_id]).fetchall()
    assert len(rows) == 1
    h = get_annotation(db, rows[0][0])
    bodies = [
        {
            "image_id": h["image_id"],
            "kind": KIND,
            "faces": [
                {"id": h["id"], "version": 1, "box": box_of(h), "points": moved(h["points"], 8, 0, 0.001 * i)}
            ],
        }
        for i in range(8)
    ]
    assert race(bodies) == [200] + [409] * 7
    assert get_annotation(db, h["id"])["version"] == 2
    assert db.execute("SELECT count(*) FROM ratings WHERE annotation_id = ?", [m_id]).fetchone()[0] == 1
