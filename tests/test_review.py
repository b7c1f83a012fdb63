"""Review: dashboard, review page, queue order and filters, rating, undo, claims, set page."""

import json
import random
import re
import time

import pytest

from app.db import immediate
from app.kinds import LANDMARK68_GROUPS
from app.review import queries
from app.sets.queries import get_set_with_model
from app.wording import plural
from tests.conftest import login
from tests.review_data import seed, user_ids
from tests.svg_paths import drawn_points, path_tags, vertices

HX = {"HX-Request": "true", "HX-Target": "review-item"}


@pytest.fixture
def data(app, db):
    """The demo faces in four sets."""
    return seed(db, user_ids(db))


def shown_id(html: str) -> int | None:
    """The annotation id on a review page or fragment."""
    m = re.search(r'id="review-item"[^>]*data-annotation-id="(\d+)"', html)
    return int(m.group(1)) if m else None


def cursor_of(html: str) -> str:
    """The queue cursor of a review page or fragment."""
    return re.search(r'name="cursor" value="([^"]+)"', html).group(1)


def rate_post(client, set_id: int, html: str, value: str, **extra):
    """Press good or bad on the item in `html`, as htmx does."""
    form = {"annotation_id": shown_id(html), "cursor": cursor_of(html), "value": value, **extra}
    return client.post(f"/review/{set_id}/rate", data=form, headers=HX)


def counters_match(db, set_id: int) -> None:
    """The trigger-kept counters equal a count over the table."""
    s = db.execute("SELECT n_total, n_good, n_bad FROM annotation_sets WHERE id = ?", [set_id]).fetchone()
    t = db.execute(
        "SELECT count(*), sum(rating IS 'good'), sum(rating IS 'bad') FROM annotations"
        " WHERE set_id = ? AND deleted = 0",
        [set_id],
    ).fetchone()
    assert tuple(s) == tuple(t)


def test_dashboard_lists_sets_with_counts_and_links(admin_client, data, db):
    ids = [
        r[0]
        for r in db.execute("SELECT id FROM annotations WHERE set_id = ? ORDER BY id", [data["landmarks68"]])
    ]
    db.execute("UPDATE annotations SET rating = 'good' WHERE id IN (?, ?)", ids[:2])
    db.execute("UPDATE annotations SET rating = 'bad' WHERE id = ?", [ids[2]])
    db.conn.commit()
    html = admin_client.get("/").get_data(as_text=True)
    row = re.search(rf'<tr data-set-id="{data["landmarks68"]}">(.*?)</tr>', html, re.S).group(1)
    cells = re.findall(r'<td class="num[^"]*">(\d+)</td>', row)
    assert cells == ["43", "2", "1", "40"]
    assert f'href="/review/{data["landmarks68"]}"' in row
    assert f'href="/sets/{data["landmarks68"]}"' in row
    assert 'aria-valuenow="3"' in row
    assert "openimages-person" in html


def test_review_page_draws_item_with_landmarks_and_image_credit(reviewer_client, data, db):
    r = reviewer_client.get(f"/review/{data['landmarks68']}")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    ann_id = shown_id(html)
    # Lowest score first among unrated items.
    lowest = db.execute(
        "SELECT id FROM annotations WHERE set_id = ? ORDER BY score, id LIMIT 1", [data["landmarks68"]]
    ).fetchone()[0]
    assert ann_id == lowest
    # The 68 points are drawn where they are stored (pixels of the stored image, 0.1 px), once each.
    zoom = html.split('<figure class="zoom">')[1].split("</figure>")[0]
    stored, w, h = db.execute(
        "SELECT a.points, i.width, i.height FROM annotations a JOIN images i ON i.id = a.image_id WHERE a.id = ?",
        [ann_id],
    ).fetchone()
    expected = [(p[0] * w, p[1] * h) for p in json.loads(stored)]
    drawn = drawn_points(zoom)
    assert len(drawn) == 68 and len(path_tags(zoom, "pts")) == 1
    assert drawn == [pytest.approx(e, abs=0.051) for e in expected]
    # Each contour group is one path through its points; eyes and lips are closed.
    for group, (idx, closed) in LANDMARK68_GROUPS.items():
        (tag,) = path_tags(zoom, f"contour {group}")
        assert vertices(tag) == [pytest.approx(expected[i], abs=0.051) for i in idx]
        assert tag.endswith('Z"/>') == closed
    assert "Public domain" in html and "PASCAL VOC via dlib examples" in html
    assert 'class="ann current' in html
    # The editor's back link returns to this item (tests/test_corrections.py follows it).
    assert f'data-key="e" href="/edit/annotation/{ann_id}?next=%2Freview%2F' in html
    assert re.search(r'class="score">0\.\d{3}<', html)
    # Every face of the set on that image is drawn over the whole image.
    image_id = db.execute("SELECT image_id FROM annotations WHERE id = ?", [ann_id]).fetchone()[0]
    n_on_image = db.execute(
        "SELECT count(*) FROM annotations WHERE set_id = ? AND image_id = ?", [data["landmarks68"], image_id]
    ).fetchone()[0]
    overview = html.split('<figure class="overview">')[1].split("</figure>")[0]
    assert overview.count("<rect class=") == n_on_image
    # Images are resized versions, never the original file; the next item's are preloaded.
    assert re.search(r'data-preload="[^"]*/\d+ [^"]*crop\?box=', html)


def test_review_images_are_resized_and_cropped(reviewer_client, data, db):
    html = reviewer_client.get(f"/review/{data['landmarks68']}").get_data(as_text=True)
    full, crop = (u.replace("&amp;", "&") for u in re.findall(r'<image href="([^"]+)"', html)[:2])
    assert re.fullmatch(r"/images/[0-9a-f]{16}/1024", full)
    with reviewer_client.get(full) as r:
        assert r.status_code == 200 and r.mimetype == "image/jpeg" and r.headers["ETag"]
    with reviewer_client.get(crop) as r:
        assert r.status_code == 200 and r.mimetype == "image/jpeg"
        # The region the page draws the crop in is the region the route cropped.
        region = [float(v) for v in r.headers["X-Crop-Box"].split(",")]
    ann = db.execute(
        "SELECT image_id FROM annotations WHERE id = ?",
        [int(re.search(r'data-annotation-id="(\d+)"', html).group(1))],
    ).fetchone()
    w, h = db.execute("SELECT width, height FROM images WHERE id = ?", [ann[0]]).fetchone()
    view = [
        float(v) for v in re.search(r'<figure class="zoom">\s*<svg viewBox="([^"]+)"', html).group(1).split()
    ]
    assert view == pytest.approx(
        [region[0] * w, region[1] * h, (region[2] - region[0]) * w, (region[3] - region[1]) * h], abs=0.01
    )


def test_rate_swaps_in_next_item_fragment_and_keeps_history(reviewer_client, data, db):
    set_id = data["face_box"]
    page = reviewer_client.get(f"/review/{set_id}").get_data(as_text=True)
    first = shown_id(page)
    r = rate_post(reviewer_client, set_id, page, "good")
    assert r.status_code == 200
    frag = r.get_data(as_text=True)
    assert "<html" not in frag and frag.lstrip().startswith('<div id="review-item"')
    second = shown_id(frag)
    assert second not in (None, first)
    row = db.execute("SELECT rating, rated_by FROM annotations WHERE id = ?", [first]).fetchone()
    assert row == ("good", user_ids(db)["rev"])
    assert db.execute("SELECT value FROM ratings WHERE annotation_id = ?", [first]).fetchall() == [("good",)]
    assert "1 good" in frag
    counters_match(db, set_id)


def test_plain_form_post_redirects_to_next_item(reviewer_client, data):
    set_id = data["face_box"]
    page = reviewer_client.get(f"/review/{set_id}").get_data(as_text=True)
    r = reviewer_client.post(
        f"/review/{set_id}/rate",
        data={"annotation_id": shown_id(page), "cursor": cursor_of(page), "value": "bad"},
    )
    assert r.status_code == 302 and f"/review/{set_id}?cursor=" in r.headers["Location"]


def test_skip_and_back(reviewer_client, data):
    set_id = data["face_box"]
    page = reviewer_client.get(f"/review/{set_id}").get_data(as_text=True)
    first = shown_id(page)
    skip_url = re.search(r'data-key="skip"\s+hx-get="([^"]+)"', page).group(1).replace("&amp;", "&")
    frag = reviewer_client.get(skip_url, headers=HX).get_data(as_text=True)
    second = shown_id(frag)
    assert second != first
    back_url = re.search(r'data-key="back"\s+hx-get="([^"]+)"', frag)
    frag2 = reviewer_client.get(back_url.group(1).replace("&amp;", "&"), headers=HX).get_data(as_text=True)
    assert shown_id(frag2) == first
    # Skipping never rates.
    assert "0 good" in frag2 and "0 bad" in frag2


def test_skip_and_back_are_links_that_work_without_javascript(reviewer_client, data):
    # Without JavaScript the browser follows href: a plain GET that answers the whole page.
    set_id = data["face_box"]
    page = reviewer_client.get(f"/review/{set_id}").get_data(as_text=True)
    first = shown_id(page)
    assert re.search(r'<button[^>]*data-key="back" disabled', page)  # nothing to go back to yet
    skip = re.search(r'<a class="button" data-key="skip" hx-get="[^"]+"\s+href="([^"]+)"', page)
    second_page = reviewer_client.get(skip.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert "<html" in second_page and shown_id(second_page) not in (None, first)
    back = re.search(r'<a class="button" data-key="back" hx-get="[^"]+"\s+href="([^"]+)"', second_page)
    again = reviewer_client.get(back.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert "<html" in again and shown_id(again) == first


def test_undo_restores_previous_rating_and_shows_item(reviewer_client, data, db):
    set_id = data["landmarks68"]
    page = reviewer_client.get(f"/review/{set_id}").get_data(as_text=True)
    first = shown_id(page)
    frag = rate_post(reviewer_client, set_id, page, "bad").get_data(as_text=True)
    assert db.execute("SELECT rating FROM annotations WHERE id = ?", [first]).fetchone()[0] == "bad"
    r = reviewer_client.post(
        f"/review/{set_id}/undo", data={"annotation_id": shown_id(frag), "trail": str(first)}, headers=HX
    )
    html = r.get_data(as_text=True)
    assert shown_id(html) == first
    assert "Undid your rating" in html
    assert db.execute("SELECT rating, rated_by FROM annotations WHERE id = ?", [first]).fetchone() == (
        None,
        None,
    )
    values = [
        v for (v,) in db.execute("SELECT value FROM ratings WHERE annotation_id = ? ORDER BY id", [first])
    ]
    assert values == ["bad", "cleared"]
    # Nothing more to undo.
    html = reviewer_client.post(f"/review/{set_id}/undo", data={"annotation_id": first}, headers=HX).get_data(
        as_text=True
    )
    assert "Nothing to undo" in html and shown_id(html) == first
    counters_match(db, set_id)


def test_all_faces_in_image_good(reviewer_client, data, db):
    set_id = data["face_box"]
    # Start on an image with several faces.
    image_id, n = db.execute(
        "SELECT image_id, count(*) AS n FROM annotations WHERE set_id = ? GROUP BY image_id ORDER BY n DESC LIMIT 1",
        [set_id],
    ).fetchone()
    assert n > 1
    ann_id = db.execute(
        "SELECT min(id) FROM annotations WHERE set_id = ? AND image_id = ?", [set_id, image_id]
    ).fetchone()[0]
    page = reviewer_client.get(f"/review/{set_id}?item={ann_id}").get_data(as_text=True)
    form = {"annotation_id": ann_id, "cursor": cursor_of(page)}
    # More than the face on screen: the first a asks, rates nothing, and offers to confirm n.
    html = reviewer_client.post(f"/review/{set_id}/image-good", data=form, headers=HX).get_data(as_text=True)
    assert f"{n} annotations on image {image_id} would be rated good" in html and shown_id(html) == ann_id
    assert f'name="confirm" value="{n}"' in html and f"Yes, all {n} good" in html
    assert db.execute("SELECT count(*) FROM ratings").fetchone()[0] == 0
    # A confirmation for another count (a face was added meanwhile) asks again.
    html = reviewer_client.post(
        f"/review/{set_id}/image-good", data={**form, "confirm": str(n + 1)}, headers=HX
    ).get_data(as_text=True)
    assert "would be rated good" in html and db.execute("SELECT count(*) FROM ratings").fetchone()[0] == 0
    r = reviewer_client.post(f"/review/{set_id}/image-good", data={**form, "confirm": str(n)}, headers=HX)
    html = r.get_data(as_text=True)
    assert f"Rated {plural(n, 'annotation')} on image" in html
    ratings = db.execute(
        "SELECT rating FROM annotations WHERE set_id = ? AND image_id = ?", [set_id, image_id]
    ).fetchall()
    assert ratings == [("good",)] * n
    assert db.execute("SELECT count(*) FROM ratings").fetchone()[0] == n
    counters_match(db, set_id)
    # One action, one undo: u takes back all n and shows the face that was on screen.
    html = reviewer_client.post(
        f"/review/{set_id}/undo", data={"annotation_id": shown_id(html)}, headers=HX
    ).get_data(as_text=True)
    assert (
        "Undid your rating" in html and f"good&#39; of {n} annotations." in html and shown_id(html) == ann_id
    )
    ratings = db.execute(
        "SELECT rating FROM annotations WHERE set_id = ? AND image_id = ?", [set_id, image_id]
    ).fetchall()
    assert ratings == [(None,)] * n
    counters_match(db, set_id)


def test_all_good_on_an_image_with_one_face_rates_at_once(reviewer_client, data, db):
    set_id = data["face_box"]
    # The demo photos have several faces each: leave one face on one of them.
    ann_id, image_id = db.execute(
        "SELECT id, image_id FROM annotations WHERE set_id = ? LIMIT 1", [set_id]
    ).fetchone()
    with immediate(db):
        db.execute(
            "UPDATE annotations SET deleted = 1 WHERE set_id = ? AND image_id = ? AND id != ?",
            [set_id, image_id, ann_id],
        )
    page = reviewer_client.get(f"/review/{set_id}?item={ann_id}").get_data(as_text=True)
    html = reviewer_client.post(
        f"/review/{set_id}/image-good", data={"annotation_id": ann_id, "cursor": cursor_of(page)}, headers=HX
    ).get_data(as_text=True)
    assert "Rated 1 annotation on image" in html
    assert db.execute("SELECT rating FROM annotations WHERE id = ?", [ann_id]).fetchone()[0] == "good"


def test_queue_order_by_image_and_filters(app, data, db):
    s = get_set_with_model(db, data["face_box"])
    uid = user_ids(db)["rev"]

    def walk(filters):
        seen, cursor = [], None
        while True:
            shown, _ = queries.claim_next(db, s, uid, filters, cursor, 60)
            if shown is None or shown[1] in seen:
                return seen
            seen.append(shown[1])
            cursor = shown

    by_image = walk(queries.Filters(order="image"))
    keys = [db.execute("SELECT image_id, id FROM annotations WHERE id = ?", [i]).fetchone() for i in by_image]
    assert keys == sorted(keys) and len(keys) == data["n_faces"]
    by_score = walk(queries.Filters())
    scores = [db.execute("SELECT score, id FROM annotations WHERE id = ?", [i]).fetchone() for i in by_score]
    assert scores == sorted(scores) and len(scores) == data["n_faces"]
    ranged = walk(queries.Filters(min_score=0.2, max_score=0.6))
    assert ranged and all(
        0.2 <= db.execute("SELECT score FROM annotations WHERE id = ?", [i]).fetchone()[0] <= 0.6
        for i in ranged
    )
    expected = db.execute(
        "SELECT count(*) FROM annotations WHERE set_id = ? AND score BETWEEN 0.2 AND 0.6", [s["id"]]
    ).fetchone()[0]
    assert len(ranged) == expected
    test_split = walk(queries.Filters(split="test"))
    splits = {
        db.execute(
            "SELECT i.split FROM annotations a JOIN images i ON i.id = a.image_id WHERE a.id = ?", [i]
        ).fetchone()[0]
        for i in test_split
    }
    assert splits == {"test"} and len(test_split) == 25


def test_queue_unrated_first_then_bad_then_good(app, data, db):
    set_id = data["face_box"]
    ids = [r[0] for r in db.execute("SELECT id FROM annotations WHERE set_id = ? ORDER BY id", [set_id])]
    db.execute(f"UPDATE annotations SET rating = 'good' WHERE id IN ({','.join(map(str, ids[:30]))})")
    db.execute(f"UPDATE annotations SET rating = 'bad' WHERE id IN ({','.join(map(str, ids[30:35]))})")
    db.conn.commit()
    s = get_set_with_model(db, set_id)
    uid = user_ids(db)["rev"]
    order, cursor = [], None
    for _ in range(len(ids)):
        shown, _ = queries.claim_next(db, s, uid, queries.Filters(status="all"), cursor, 60)
        order.append(shown[1])
        cursor = shown
    ratings = [db.execute("SELECT rating FROM annotations WHERE id = ?", [i]).fetchone()[0] for i in order]
    assert ratings == [None] * 8 + ["bad"] * 5 + ["good"] * 30
    assert sorted(order) == ids


def test_bad_filters_are_400(reviewer_client, data):
    for q in ("order=random", "status=maybe", "split=dev", "min_score=x", "min_score=0.9&max_score=0.1"):
        r = reviewer_client.get(f"/review/{data['face_box']}?{q}")
        assert r.status_code == 400, q


def test_claims_keep_reviewers_apart_and_expire(app, data, db):
    set_id = data["face_box"]
    a, b = app.test_client(), app.test_client()
    login(a, "admin"), login(b, "rev")
    first_a = shown_id(a.get(f"/review/{set_id}").get_data(as_text=True))
    first_b = shown_id(b.get(f"/review/{set_id}").get_data(as_text=True))
    assert first_a != first_b
    holder = db.execute("SELECT user_id FROM claims WHERE annotation_id = ?", [first_a]).fetchone()[0]
    assert holder == user_ids(db)["admin"]
    # A's claim expires: B (asking again from the start) is handed A's item.
    db.execute("UPDATE claims SET expires_at = ? WHERE annotation_id = ?", [time.time() - 1, first_a])
    db.conn.commit()
    assert shown_id(b.get(f"/review/{set_id}").get_data(as_text=True)) == first_a
    # The expired claim was released on the way.
    assert (
        db.execute("SELECT user_id FROM claims WHERE annotation_id = ?", [first_a]).fetchone()[0]
        == user_ids(db)["rev"]
    )
    assert db.execute("SELECT count(*) FROM claims WHERE user_id = ?", [holder]).fetchone()[0] == 0


def test_claim_seconds_config(app, data, db):
    # Long enough that b's first request, on a loaded machine, still comes before a's claim expires.
    app.config["CLAIM_SECONDS"] = 2
    set_id = data["face_box"]
    a, b = app.test_client(), app.test_client()
    login(a, "admin"), login(b, "rev")
    before = time.time()
    first_a = shown_id(a.get(f"/review/{set_id}").get_data(as_text=True))
    expires = db.execute("SELECT expires_at FROM claims WHERE annotation_id = ?", [first_a]).fetchone()[0]
    assert before + 2 <= expires <= time.time() + 2
    assert shown_id(b.get(f"/review/{set_id}").get_data(as_text=True)) != first_a
    time.sleep(max(0.0, expires - time.time()) + 0.1)
    assert shown_id(b.get(f"/review/{set_id}").get_data(as_text=True)) == first_a


def test_own_human_annotations_are_never_offered_nor_rateable(app, data, db):
    set_id = data["human"]
    ids = user_ids(db)
    own = {
        r[0]
        for r in db.execute(
            "SELECT id FROM annotations WHERE set_id = ? AND created_by = ?", [set_id, ids["rev"]]
        )
    }
    assert own
    rev = app.test_client()
    login(rev, "rev")
    page = rev.get(f"/review/{set_id}").get_data(as_text=True)
    seen = []
    while shown_id(page) is not None:
        seen.append(shown_id(page))
        assert seen[-1] not in own
        page = rate_post(rev, set_id, page, "good").get_data(as_text=True)
    assert len(seen) == 6
    # Asking for one's own item directly shows it, but rating it is refused with the reason.
    own_id = min(own)
    page = rev.get(f"/review/{set_id}?item={own_id}").get_data(as_text=True)
    html = rate_post(rev, set_id, page, "good").get_data(as_text=True)
    assert "cannot rate your own annotation" in html
    assert db.execute("SELECT rating FROM annotations WHERE id = ?", [own_id]).fetchone()[0] is None


def test_object_box_set_reviewed_with_class_name(reviewer_client, data, db):
    set_id = data["object_box"]
    page = reviewer_client.get(f"/review/{set_id}").get_data(as_text=True)
    assert 'class="class-name">Person' in page
    zoom = page.split('<figure class="zoom">')[1].split("</figure>")[0]
    assert "<rect" in zoom and "pts" not in zoom and "contour" not in zoom
    frag = rate_post(reviewer_client, set_id, page, "good").get_data(as_text=True)
    assert 'class="class-name">Person' in frag
    counters_match(db, set_id)


def test_counters_equal_table_after_random_ratings_and_undos(app, data, db):
    rng = random.Random(11)
    set_id = data["landmarks68"]
    clients = []
    for name in ("admin", "rev"):
        c = app.test_client()
        login(c, name)
        clients.append([c, c.get(f"/review/{set_id}").get_data(as_text=True)])
    for _ in range(80):
        entry = rng.choice(clients)
        c, html = entry
        action = rng.random()
        if shown_id(html) is None or action < 0.25:
            html = c.post(
                f"/review/{set_id}/undo", data={"annotation_id": shown_id(html) or ""}, headers=HX
            ).get_data(as_text=True)
        elif action < 0.35:
            item = rng.choice(
                [r[0] for r in db.execute("SELECT id FROM annotations WHERE set_id = ?", [set_id])]
            )
            html = c.get(f"/review/{set_id}?item={item}&status=all", headers=HX).get_data(as_text=True)
        else:
            html = rate_post(c, set_id, html, rng.choice(["good", "bad"])).get_data(as_text=True)
        entry[1] = html
        counters_match(db, set_id)
    n_rated = db.execute(
        "SELECT count(*) FROM annotations WHERE set_id = ? AND rating IS NOT NULL", [set_id]
    ).fetchone()[0]
    assert n_rated > 5
    # History: the last history row of each annotation is its current rating.
    for ann_id, rating in db.execute(
        "SELECT id, rating FROM annotations WHERE set_id = ?", [set_id]
    ).fetchall():
        last = db.execute(
            "SELECT value, previous FROM ratings WHERE annotation_id = ? ORDER BY id DESC LIMIT 1", [ann_id]
        ).fetchone()
        if last is None:
            assert rating is None
        elif last[0] == "cleared":
            assert rating == last[1] or rating is None
        else:
            assert rating == last[0]


def test_set_page_grid_is_paged_and_marked(admin_client, data, db):
    set_id = data["landmarks68"]
    db.execute(
        "UPDATE annotations SET rating = 'bad' WHERE set_id = ? AND id = (SELECT min(id) FROM annotations WHERE set_id = ?)",
        [set_id, set_id],
    )
    db.conn.commit()
    html = admin_client.get(f"/sets/{set_id}").get_data(as_text=True)
    assert html.count('<li class="thumb') == 43
    assert html.count('<li class="thumb bad"') == 1
    assert html.count('<li class="thumb unrated"') == 42
    # Every thumbnail draws its box and its 68 points where they are stored, within its crop's viewBox.
    cells = re.findall(r'<li class="thumb (\w+)" data-annotation-id="(\d+)">(.*?)</li>', html, re.S)
    assert len(cells) == 43
    for mark, ann_id, cell in cells:
        stored, rating, w, h = db.execute(
            "SELECT a.points, a.rating, i.width, i.height FROM annotations a JOIN images i ON i.id = a.image_id"
            " WHERE a.id = ?",
            [int(ann_id)],
        ).fetchone()
        assert mark == (rating or "unrated") and f'<span class="mark">{mark}</span>' in cell
        expected = [(p[0] * w, p[1] * h) for p in json.loads(stored)]
        assert drawn_points(cell) == [pytest.approx(e, abs=0.051) for e in expected]
        vx, vy, vw, vh = (float(v) for v in re.search(r'<svg viewBox="([^"]+)"', cell).group(1).split())
        rx, ry, rw, rh = (
            float(v)
            for v in re.search(
                r'<rect class="ann current" x="([^"]+)" y="([^"]+)" width="([^"]+)" height="([^"]+)"', cell
            ).groups()
        )
        assert vx <= rx and vy <= ry and rx + rw <= vx + vw + 0.1 and ry + rh <= vy + vh + 0.1
        assert (
            cell.count('<rect class="ann current"') == 1 and f'href="/review/{set_id}?item={ann_id}"' in cell
        )
    assert "page 1 of 1" in html
    from app.sets import views

    views.PER_PAGE, old = 20, views.PER_PAGE
    try:
        html = admin_client.get(f"/sets/{set_id}?page=3").get_data(as_text=True)
    finally:
        views.PER_PAGE = old
    assert html.count('<li class="thumb') == 3 and "page 3 of 3" in html
    assert admin_client.get(f"/sets/{set_id}?page=0").status_code == 400
    assert admin_client.get("/sets/999").status_code == 404


def test_review_requires_login(client, data):
    r = client.get(f"/review/{data['face_box']}")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_server_timing_header(reviewer_client, data):
    with reviewer_client.get("/static/css/app.css") as r:
        assert re.fullmatch(
            # core (the run-queue wait) only where /proc/thread-self/schedstat exists (Linux).
            r"app;dur=\d+\.\d{3}, cpu;dur=\d+\.\d{3}, lock;dur=0\.000, held;dur=0\.000(, core;dur=\d+\.\d{3})?",
            r.headers["Server-Timing"],
        )
    # A rating waits for the write lock (here not at all), holds it for its write transaction, and its
    # CPU time is part of its server time.
    item = reviewer_client.get(f"/review/{data['face_box']}").get_data(as_text=True)
    ann_id = re.search(r'data-annotation-id="(\d+)"', item).group(1)
    r = reviewer_client.post(
        f"/review/{data['face_box']}/rate", data={"annotation_id": ann_id, "value": "good"}
    )
    app, cpu, lock, held, *core = map(float, re.findall(r"dur=([\d.]+)", r.headers["Server-Timing"]))
    assert 0 < cpu <= app + 1 and 0 <= lock < app and 0 < held < app and all(0 <= c <= app for c in core)


def test_five_point_set_draws_five_points_without_contours(reviewer_client, data):
    page = reviewer_client.get(f"/review/{data['landmarks5']}").get_data(as_text=True)
    zoom = page.split('<figure class="zoom">')[1].split("</figure>")[0]
    assert len(drawn_points(zoom)) == 5 and len(path_tags(zoom, "pts")) == 1
    assert "contour" not in zoom
    assert "5 points" in zoom


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        (queries.Filters(), "COVERING INDEX annotations_queue "),
        (queries.Filters(min_score=0.1, max_score=0.9), "COVERING INDEX annotations_queue "),
        (queries.Filters(order="image"), "COVERING INDEX annotations_queue_image "),
        (queries.Filters(status="all"), "COVERING INDEX annotations_queue "),
    ],
)
def test_queue_walks_an_index_never_the_table(app, data, db, filters, index):
    """rate + next stays tiny on a big set: every queue query is a range of a covering index."""
    s = get_set_with_model(db, data["landmarks68"])
    uid = user_ids(db)["rev"]
    shown, _ = queries.claim_next(db, s, uid, filters, None, 60)
    seen: list[str] = []
    db.conn.set_trace_callback(seen.append)
    try:
        queries.claim_next(db, s, uid, filters, shown, 60)
    finally:
        db.conn.set_trace_callback(None)
    selects = [q for q in seen if q.startswith("SELECT a.id FROM annotations a")]
    assert selects
    for q in selects:
        plan = " | ".join(r[3] for r in db.execute("EXPLAIN QUERY PLAN " + q).fetchall())
        assert index in plan + " ", plan
        assert "SCAN" not in plan and "TEMP B-TREE" not in plan, plan


def test_rating_an_annotation_of_another_set_is_refused(reviewer_client, data, db):
    other = db.execute("SELECT min(id) FROM annotations WHERE set_id = ?", [data["object_box"]]).fetchone()[0]
    for headers in (HX, {}):
        r = reviewer_client.post(
            f"/review/{data['face_box']}/rate",
            data={"annotation_id": other, "value": "good"},
            headers=headers,
        )
        assert r.status_code == 404
    assert db.execute("SELECT count(*) FROM ratings").fetchone()[0] == 0


def test_all_good_in_image_leaves_items_other_reviewers_hold(app, data, db):
    set_id = data["face_box"]
    image_id, n = db.execute(
        "SELECT image_id, count(*) AS n FROM annotations WHERE set_id = ? GROUP BY image_id ORDER BY n DESC LIMIT 1",
        [set_id],
    ).fetchone()
    first, held = [
        r[0]
        for r in db.execute(
            "SELECT id FROM annotations WHERE set_id = ? AND image_id = ? ORDER BY id LIMIT 2",
            [set_id, image_id],
        )
    ]
    admin, rev = app.test_client(), app.test_client()
    login(admin, "admin"), login(rev, "rev")
    admin.get(f"/review/{set_id}?item={held}")
    page = rev.get(f"/review/{set_id}?item={first}").get_data(as_text=True)
    html = rev.post(
        f"/review/{set_id}/image-good",
        data={"annotation_id": first, "cursor": cursor_of(page), "confirm": str(n - 1)},
        headers=HX,
    ).get_data(as_text=True)
    assert f"Rated {plural(n - 1, 'annotation')} on image" in html
    assert db.execute("SELECT rating FROM annotations WHERE id = ?", [held]).fetchone()[0] is None
    assert db.execute("SELECT rating FROM annotations WHERE id = ?", [first]).fetchone()[0] == "good"
