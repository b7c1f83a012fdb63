"""Review in Chromium: log in, rate five items with the keyboard only, check the store."""

import re

import pytest

from tests.browser.conftest import browser_login, dot_pixels, vertex_count
from tests.review_data import seed, user_ids

pytestmark = pytest.mark.browser


def test_review_five_items_with_keyboard_only(live_server, page):
    db = live_server.db()
    data = seed(db, user_ids(db))
    db.close()
    set_id = data["landmarks68"]
    browser_login(page, live_server, "rev")
    page.goto(f"{live_server.url}/review/{set_id}")
    item = page.locator("#review-item")
    ids, keys = [], ["g", "b", "g", "g", "b"]
    for key in keys:
        current = item.get_attribute("data-annotation-id")
        ids.append(int(current))
        page.keyboard.press(key)
        # htmx swaps the next item in place: wait for another id, with no page load.
        page.wait_for_function(
            "id => document.getElementById('review-item').dataset.annotationId !== id", arg=current
        )
    assert page.url == f"{live_server.url}/review/{set_id}"
    db = live_server.db()
    try:
        rows = {
            r[0]: r[1:]
            for r in db.execute(
                "SELECT a.id, a.rating, u.username FROM annotations a JOIN users u ON u.id = a.rated_by"
                " WHERE a.set_id = ?",
                [set_id],
            ).fetchall()
        }
        assert rows == {i: ("good" if k == "g" else "bad", "rev") for i, k in zip(ids, keys, strict=True)}
        assert db.execute("SELECT count(*) FROM ratings").fetchone()[0] == 5
    finally:
        db.close()

    # u undoes the last rating and shows that item again; ← goes back; ? opens the help.
    page.keyboard.press("u")
    page.wait_for_function(
        "id => document.getElementById('review-item').dataset.annotationId === id", arg=str(ids[-1])
    )
    db = live_server.db()
    assert db.execute("SELECT rating FROM annotations WHERE id = ?", [ids[-1]]).fetchone()[0] is None
    db.close()
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(
        "id => document.getElementById('review-item').dataset.annotationId === id", arg=str(ids[-2])
    )
    page.keyboard.press("?")
    assert page.locator("#review-help").is_visible()
    page.keyboard.press("Escape")
    assert not page.locator("#review-help").is_visible()
    # Keys typed into a field are text, not ratings.
    before = live_server.db()
    n = before.execute("SELECT count(*) FROM ratings").fetchone()[0]
    before.close()
    page.fill("input[name=min_score]", "")
    page.focus("input[name=min_score]")
    page.keyboard.type("gb")
    page.wait_for_timeout(300)
    after = live_server.db()
    assert after.execute("SELECT count(*) FROM ratings").fetchone()[0] == n
    after.close()
    page.locator("input[name=min_score]").blur()
    # The zoomed crop has its 68 points and its nine contours drawn: the dots show as pixels.
    zoom = page.locator(".zoom svg")
    assert vertex_count(zoom.locator("path.pts")) == 68
    assert zoom.locator("path.contour").count() == 9
    assert dot_pixels(zoom) >= 68 * 4
    # e opens the item in the editor.
    current = item.get_attribute("data-annotation-id")
    page.keyboard.press("e")
    page.wait_for_url(
        re.compile(rf"{re.escape(live_server.url)}/edit/annotation/{current}\?next=%2Freview%2F")
    )


def test_set_page_draws_each_thumbnail_overlay(live_server, page):
    db = live_server.db()
    data = seed(db, user_ids(db))
    set_id = data["landmarks68"]
    first = db.execute("SELECT min(id) FROM annotations WHERE set_id = ?", [set_id]).fetchone()[0]
    db.execute("UPDATE annotations SET rating = 'bad' WHERE id = ?", [first])
    db.conn.commit()
    db.close()
    browser_login(page, live_server, "rev")
    page.goto(f"{live_server.url}/sets/{set_id}")
    thumbs = page.locator("li.thumb")
    assert thumbs.count() == 43
    assert page.locator("li.thumb.bad").count() == 1 and page.locator("li.thumb.unrated").count() == 42
    assert page.locator(f'li.thumb.bad[data-annotation-id="{first}"] .mark').inner_text() == "bad"
    for i in range(thumbs.count()):
        assert vertex_count(thumbs.nth(i).locator("path.pts")) == 68
        assert thumbs.nth(i).locator("rect.ann").count() == 1
    # The points show as dots in a thumbnail, not just in the markup.
    assert dot_pixels(thumbs.nth(0).locator("svg")) >= 68
