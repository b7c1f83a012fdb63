"""A team at once: reviewers in threads against a real threaded server never get the same item."""

import re
import threading

import pytest

from app.auth.users import create_user
from tests.live import PASSWORD, http_login, live_app, serve
from tests.review_data import seed, user_ids

HX = {"HX-Request": "true", "HX-Target": "review-item"}
REVIEWERS = ("ana", "ben", "cai", "dee")


def _id(html: str) -> int | None:
    m = re.search(r'id="review-item"[^>]*data-annotation-id="(\d+)"', html)
    return int(m.group(1)) if m else None


def _cursor(html: str) -> str:
    return re.search(r'name="cursor" value="([^"]+)"', html).group(1)


@pytest.fixture
def team(tmp_path):
    """A live server with four reviewers and the demo sets."""
    app = live_app(tmp_path / "instance")
    from app.db import connect

    db = connect(app.config["DATABASE"])
    for name in REVIEWERS:
        create_user(db, name, PASSWORD, "reviewer")
    data = seed(db, user_ids(db))
    db.close()
    with serve(app) as url:
        sessions = {name: http_login(url, name) for name in REVIEWERS}
        yield url, app, data, sessions


def _parallel(fn, names):
    barrier = threading.Barrier(len(names))
    results, errors = {}, []

    def run(name):
        try:
            barrier.wait(10)
            results[name] = fn(name)
        except BaseException as e:  # reported in the main thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return results


def test_concurrent_first_items_are_all_different(team):
    url, _, data, sessions = team
    set_id = data["face_box"]
    shown = _parallel(lambda n: _id(sessions[n].get(f"{url}/review/{set_id}", timeout=10).text), REVIEWERS)
    assert len(set(shown.values())) == len(REVIEWERS), shown


def test_team_rates_a_whole_set_without_ever_sharing_an_item(team):
    url, app, data, sessions = team
    set_id = data["landmarks68"]

    def review(name):
        s, seen = sessions[name], []
        html = s.get(f"{url}/review/{set_id}", timeout=10).text
        while (ann_id := _id(html)) is not None:
            seen.append(ann_id)
            r = s.post(
                f"{url}/review/{set_id}/rate",
                data={
                    "annotation_id": ann_id,
                    "cursor": _cursor(html),
                    "value": "good" if ann_id % 3 else "bad",
                },
                headers=HX,
                timeout=10,
            )
            assert r.status_code == 200, r.text[:300]
            html = r.text
        return seen

    seen = _parallel(review, REVIEWERS)
    everything = [i for ids in seen.values() for i in ids]
    assert len(everything) == len(set(everything)), "an item was handed to two reviewers"
    assert len(everything) == data["n_faces"]
    assert all(seen.values()), "every reviewer got work"
    from app.db import connect

    db = connect(app.config["DATABASE"])
    try:
        assert db.execute(
            "SELECT n_total, n_good + n_bad FROM annotation_sets WHERE id = ?", [set_id]
        ).fetchone() == (
            data["n_faces"],
            data["n_faces"],
        )
        by_user = dict(
            db.execute(
                "SELECT u.username, count(*) FROM ratings r JOIN users u ON u.id = r.user_id GROUP BY u.username"
            ).fetchall()
        )
        assert by_user == {name: len(ids) for name, ids in seen.items()}
    finally:
        db.close()


def test_posts_need_the_csrf_token(team):
    url, _, data, sessions = team
    s = sessions["ana"]
    html = s.get(f"{url}/review/{data['face_box']}", timeout=10).text
    token = s.headers.pop("X-CSRFToken")
    r = s.post(
        f"{url}/review/{data['face_box']}/rate",
        data={"annotation_id": _id(html), "value": "good"},
        timeout=10,
    )
    assert r.status_code == 400
    s.headers["X-CSRFToken"] = token


def test_counters_equal_table_after_concurrent_random_ratings_and_undos(team):
    """Three reviewers at once press g, b, u, skip and back at random over HTTP; counters stay exact."""
    url, app, data, sessions = team
    set_id = data["face_box"]
    names = REVIEWERS[:3]

    def review(name):
        import random

        rng, s = random.Random(name), sessions[name]
        html = s.get(f"{url}/review/{set_id}", timeout=10).text
        for _ in range(30):
            ann_id, action = _id(html), rng.random()
            if ann_id is None or action < 0.2:
                r = s.post(
                    f"{url}/review/{set_id}/undo",
                    data={"annotation_id": ann_id or ""},
                    headers=HX,
                    timeout=10,
                )
            elif action < 0.3:
                skip = re.search(r'data-key="skip"\s+hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")
                r = s.get(url + skip, headers=HX, timeout=10)
            else:
                form = {
                    "annotation_id": ann_id,
                    "cursor": _cursor(html),
                    "value": rng.choice(["good", "bad"]),
                }
                r = s.post(f"{url}/review/{set_id}/rate", data=form, headers=HX, timeout=10)
            assert r.status_code == 200, r.text[:300]
            html = r.text

    _parallel(review, names)
    from app.db import connect

    db = connect(app.config["DATABASE"])
    try:
        counters = db.execute(
            "SELECT n_total, n_good, n_bad FROM annotation_sets WHERE id = ?", [set_id]
        ).fetchone()
        table = db.execute(
            "SELECT count(*), sum(rating IS 'good'), sum(rating IS 'bad') FROM annotations WHERE set_id = ?",
            [set_id],
        ).fetchone()
        assert counters == table
        assert db.execute("SELECT count(*) FROM ratings").fetchone()[0] > 30
    finally:
        db.close()
