"""The editor in Debian's Chromium: drag a point at a known zoom and save, draw a new face, undo a drag."""

import json
import math
import re

import pytest

from app.annotations.rows import get_annotation
from app.db import connect
from tests.browser.conftest import browser_login
from tests.editor_seed import seed

pytestmark = pytest.mark.browser

KIND = "face_landmarks68"


@pytest.fixture
def server(live_server):
    """The live server (tests/browser/conftest.py) seeded with the demo faces; yields (url, app, data)."""
    db = live_server.db()
    data = seed(db)
    db.close()
    return live_server.url, live_server.app, data


def new_page(browser, live_server, username="rev"):
    """A logged-in page on a laptop-sized window, collecting JavaScript errors in page.errors."""
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    pg = context.new_page()
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    browser_login(pg, live_server, username)
    return pg


@pytest.fixture
def page(browser, live_server, server):
    """A reviewer's page at 1366x768; fails the test on any JavaScript error."""
    pg = new_page(browser, live_server)
    yield pg
    pg.context.close()
    assert not pg.errors, pg.errors


def open_editor(page, url: str):
    # Predicates as functions: a bare expression is eval()ed in the page, which the CSP forbids.
    page.goto(url)
    page.wait_for_function("() => window.oiapEditor !== undefined")
    page.wait_for_function("() => document.getElementById('photo').getBBox().width > 0")


def centre(page, selector: str) -> tuple[float, float]:
    box = page.locator(selector).bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def drag(page, start, dx, dy, steps=6):
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(start[0] + dx, start[1] + dy, steps=steps)
    page.mouse.up()


def wait_saved(page):
    # "Saved 1 face", "Deleted 1 face", "Saved 1 face, deleted 1 face": what the save did.
    page.wait_for_function("() => /^(Saved|Deleted) /.test(document.getElementById('ed-status').textContent)")


def test_drag_landmark_30_at_a_known_zoom_and_save(page, server):
    url, app, data = server
    f = data["faces"][14]
    w, h = f["image"]["width"], f["image"]["height"]
    open_editor(page, f"{url}/edit/annotation/{f['id']}")
    # The page fits a laptop screen: the stage and the side panel are inside the window.
    stage = page.locator("#stage").bounding_box()
    assert stage["y"] + stage["height"] <= 768 and page.locator(".ed-side").bounding_box()["x"] + 230 <= 1366
    x30, y30 = f["points_px"][30]
    zoom = 4
    page.evaluate(f"oiapEditor.setView({zoom}, {x30}, {y30})")
    page.wait_for_timeout(50)
    key = f"m{f['id']}"
    before = page.evaluate(f"oiapEditor.faces().find(g => g.key === '{key}').points[30]")
    assert before[:2] == pytest.approx([x30, y30], abs=1e-3)
    start = centre(page, f'circle[data-face="{key}"][data-pt="30"]')
    drag(page, start, 40, -24)
    moved = page.evaluate(f"oiapEditor.faces().find(g => g.key === '{key}').points[30]")
    assert moved[0] - before[0] == pytest.approx(40 / zoom, abs=1e-6)
    assert moved[1] - before[1] == pytest.approx(-24 / zoom, abs=1e-6)
    page.keyboard.press("s")
    wait_saved(page)

    db = connect(app.config["DATABASE"])
    try:
        human = db.execute("SELECT id FROM annotations WHERE origin_id = ?", [f["id"]]).fetchone()
        assert human, "no correction was stored"
        ann = get_annotation(db, human[0])
        orig = get_annotation(db, f["id"])
        assert ann["points"][30][0] - orig["points"][30][0] == pytest.approx(10 / w, abs=2e-6)
        assert ann["points"][30][1] - orig["points"][30][1] == pytest.approx(-6 / h, abs=2e-6)
        others = [i for i in range(68) if i != 30]
        assert all(ann["points"][i][:2] == pytest.approx(orig["points"][i][:2], abs=2e-6) for i in others)
        assert orig["rating"] == "bad"
    finally:
        db.close()
    # The page now holds the saved version: a second edit updates the same row to version 2.
    assert page.evaluate(f"oiapEditor.meta('{key}').version") == 1
    page.keyboard.press("ArrowRight")
    page.keyboard.press("s")
    page.wait_for_function(f"() => oiapEditor.meta('{key}').version === 2")


def test_draw_a_new_face_and_save_it(page, server):
    url, app, data = server
    f = data["faces"][14]
    image_id = f["image"]["id"]
    open_editor(page, f"{url}/edit/image/{image_id}?kind={KIND}")
    n_before = page.evaluate("oiapEditor.faces().length")
    # An empty region of 2008_001009.jpg, away from its two faces: (240, 360)-(320, 440) in image pixels (360x480).
    a = page.evaluate("oiapEditor.toScreen(240, 360)")
    b = page.evaluate("oiapEditor.toScreen(320, 440)")
    page.keyboard.press("a")
    drag(page, (a["x"], a["y"]), b["x"] - a["x"], b["y"] - a["y"])
    page.wait_for_function(f"() => oiapEditor.faces().length === {n_before + 1}")
    new = page.evaluate("oiapEditor.faces().find(g => g.key.startsWith('new'))")
    assert new["box"] == pytest.approx([240, 360, 320, 440], abs=0.5)
    assert len(new["points"]) == 68
    page.keyboard.press("s")
    wait_saved(page)
    db = connect(app.config["DATABASE"])
    try:
        rows = db.execute(
            "SELECT a.id FROM annotations a JOIN annotation_sets s ON s.id = a.set_id"
            " WHERE s.name = 'human-face_landmarks68' AND a.origin_id IS NULL AND a.image_id = ?",
            [image_id],
        ).fetchall()
        assert len(rows) == 1
        ann = get_annotation(db, rows[0][0])
        w, h = f["image"]["width"], f["image"]["height"]
        assert [ann["x0"] * w, ann["y0"] * h, ann["x1"] * w, ann["y1"] * h] == pytest.approx(
            [240, 360, 320, 440], abs=0.5
        )
        assert len(ann["points"]) == 68
        assert all(235 <= p[0] * w <= 325 and 355 <= p[1] * h <= 445 for p in ann["points"])
    finally:
        db.close()
    # Undoing the addition after the save deletes the stored face at the next save.
    page.keyboard.press("Control+z")
    assert page.evaluate("oiapEditor.faces().length") == n_before
    page.keyboard.press("s")
    page.wait_for_function(f"() => oiapEditor.meta('{new['key']}').gone === true")
    db = connect(app.config["DATABASE"])
    try:
        assert db.execute(
            "SELECT deleted, version FROM annotations WHERE id = ?", [rows[0][0]]
        ).fetchone() == (1, 2)
    finally:
        db.close()


def test_undo_and_redo_a_drag(page, server):
    url, _app, data = server
    f = data["faces"][15]
    key = f"m{f['id']}"
    open_editor(page, f"{url}/edit/annotation/{f['id']}")
    x30, y30 = f["points_px"][30]
    page.evaluate(f"oiapEditor.setView(5, {x30}, {y30})")
    page.wait_for_timeout(50)
    selector = f'circle[data-face="{key}"][data-pt="30"]'
    before = page.evaluate(f"oiapEditor.faces().find(g => g.key === '{key}').points[30]")
    # Hovering names the point.
    page.mouse.move(*centre(page, selector))
    page.wait_for_function("() => !document.getElementById('ed-tip').hidden")
    assert page.locator("#ed-tip").text_content() == "nose tip (30)"
    drag(page, centre(page, selector), 30, 30)
    after = page.evaluate(f"oiapEditor.faces().find(g => g.key === '{key}').points[30]")
    assert after[0] == pytest.approx(before[0] + 6, abs=1e-6)
    assert page.evaluate("oiapEditor.changed()") == [key]
    page.keyboard.press("Control+z")
    undone = page.evaluate(f"oiapEditor.faces().find(g => g.key === '{key}').points[30]")
    assert undone == before
    assert page.evaluate("oiapEditor.changed()") == []
    page.keyboard.press("Control+Shift+z")
    assert page.evaluate(f"oiapEditor.faces().find(g => g.key === '{key}').points[30]") == after
    # Keys: nudge the selected point, mark it occluded; one undo step per kind of edit.
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("o")
    p = page.evaluate(f"oiapEditor.faces().find(g => g.key === '{key}').points[30]")
    assert p[0] == pytest.approx(after[0] - 1 / 5, abs=1e-6) and p[2] == 0
    page.keyboard.press("Control+z")
    page.keyboard.press("Control+z")
    assert page.evaluate(f"oiapEditor.faces().find(g => g.key === '{key}').points[30]") == after


def point(page, key, i):
    return page.evaluate(f"oiapEditor.faces().find(g => g.key === '{key}').points[{i}]")


def test_a_stale_page_gets_a_conflict_and_keeps_its_edit(browser, live_server, server, page):
    url, app, data = server
    f = data["faces"][14]
    key = f"m{f['id']}"
    other = new_page(browser, live_server, "admin")
    try:
        for pg in (page, other):
            open_editor(pg, f"{url}/edit/annotation/{f['id']}")
            pg.evaluate(f"oiapEditor.select('{key}', 30)")
        assert not page.locator("#ed-reload").is_visible()
        # The admin corrects the face first...
        other.keyboard.press("ArrowUp")
        other.keyboard.press("s")
        wait_saved(other)
        # ...then the reviewer, whose page predates it, is refused and keeps the edit on screen.
        page.keyboard.press("ArrowDown")
        mine = point(page, key, 30)
        stage_top = page.locator("#stage").bounding_box()["y"]
        page.keyboard.press("s")
        page.wait_for_function("() => document.getElementById('ed-status').classList.contains('conflict')")
        assert "already corrected by admin" in page.locator("#ed-status").text_content()
        assert "already corrected" in page.locator("#ed-message").text_content()
        assert page.locator("#stage").bounding_box()["y"] == stage_top  # a long message moves nothing
        assert point(page, key, 30) == mine and page.evaluate("oiapEditor.changed()") == [key]
        assert page.locator("#ed-reload").is_visible()
        db = connect(app.config["DATABASE"])
        try:
            rows = db.execute(
                "SELECT id, created_by FROM annotations WHERE origin_id = ?", [f["id"]]
            ).fetchall()
            admin = db.execute("SELECT id FROM users WHERE username = 'admin'").fetchone()[0]
            assert len(rows) == 1 and rows[0][1] == admin
        finally:
            db.close()
        # Loading the saved faces shows the admin's correction, now editable by version.
        page.once("dialog", lambda d: d.accept())
        page.click("#ed-reload")
        page.wait_for_function("() => oiapEditor.faces().some(g => g.key.startsWith('h'))")
        h = page.evaluate("oiapEditor.faces().find(g => g.key.startsWith('h')).key")
        assert page.evaluate(f"oiapEditor.meta('{h}').version") == 1
        assert page.evaluate("oiapEditor.changed()") == []
    finally:
        other.context.close()
    assert not other.errors, other.errors


def test_rotate_and_scale_the_points_then_delete_the_face(page, server):
    url, app, data = server
    f = data["faces"][16]
    key = f"m{f['id']}"
    open_editor(page, f"{url}/edit/annotation/{f['id']}")
    page.evaluate(f"oiapEditor.select('{key}', null)")
    pts = page.evaluate(f"oiapEditor.faces().find(g => g.key === '{key}').points")

    def centroid(ps):
        return sum(p[0] for p in ps) / len(ps), sum(p[1] for p in ps) / len(ps)

    def spread(ps):
        c = centroid(ps)
        return sum(((p[0] - c[0]) ** 2 + (p[1] - c[1]) ** 2) ** 0.5 for p in ps)

    page.keyboard.press("Period")  # grow 2%
    grown = page.evaluate(f"oiapEditor.faces().find(g => g.key === '{key}').points")
    assert spread(grown) == pytest.approx(spread(pts) * 1.02, rel=1e-6)
    assert centroid(grown) == pytest.approx(centroid(pts), abs=1e-6)
    page.keyboard.press("Shift+BracketRight")  # rotate 5 degrees
    turned = page.evaluate(f"oiapEditor.faces().find(g => g.key === '{key}').points")
    c = centroid(grown)
    a0 = math.atan2(grown[45][1] - c[1], grown[45][0] - c[0])
    a1 = math.atan2(turned[45][1] - c[1], turned[45][0] - c[0])
    assert math.degrees(a1 - a0) == pytest.approx(5, abs=1e-4)
    # Shift-drag on the box scales the points about their centre; the box stays.
    box = page.evaluate(f"oiapEditor.faces().find(g => g.key === '{key}').box")
    c = centroid(turned)
    start = page.evaluate(f"oiapEditor.toScreen({c[0] + 20}, {c[1] + 20})")
    page.keyboard.down("Shift")
    drag(page, (start["x"], start["y"]), 10, 10)
    page.keyboard.up("Shift")
    scaled = page.evaluate(f"oiapEditor.faces().find(g => g.key === '{key}')")
    assert scaled["box"] == box
    zoom = page.evaluate("oiapEditor.view.zoom")
    assert spread(scaled["points"]) == pytest.approx(spread(turned) * (20 + 10 / zoom) / 20, rel=1e-3)
    # Delete the false face and save: the machine face is rated bad, a deleted human row remembers it.
    page.keyboard.press("Delete")
    assert page.evaluate(f"oiapEditor.faces().some(g => g.key === '{key}')") is False
    page.keyboard.press("s")
    wait_saved(page)
    db = connect(app.config["DATABASE"])
    try:
        assert db.execute("SELECT deleted FROM annotations WHERE origin_id = ?", [f["id"]]).fetchone() == (1,)
        assert get_annotation(db, f["id"])["rating"] == "bad"
    finally:
        db.close()


def test_a_rotated_image_is_edited_in_its_stored_pixel_grid(page, server):
    """Open Images' Rotation 90 (counterclockwise): a drag to the right on screen is +y in the file."""
    url, app, data = server
    f = data["faces"][14]
    db = connect(app.config["DATABASE"])
    db.execute("UPDATE images SET rotation = 90 WHERE id = ?", [f["image"]["id"]])
    db.conn.commit()
    db.close()
    key = f"m{f['id']}"
    open_editor(page, f"{url}/edit/annotation/{f['id']}")
    assert page.evaluate("oiapEditor.view.rotation") == 90
    # The file's top-right corner is shown top-left, its top-left corner bottom-left.
    w = f["image"]["width"]
    tr, tl = page.evaluate(f"oiapEditor.toScreen({w}, 0)"), page.evaluate("oiapEditor.toScreen(0, 0)")
    assert tr["x"] == pytest.approx(tl["x"]) and tl["y"] - tr["y"] == pytest.approx(
        w * page.evaluate("oiapEditor.view.zoom")
    )
    x30, y30 = f["points_px"][30]
    page.evaluate(f"oiapEditor.setView(4, {x30}, {y30})")
    page.wait_for_timeout(50)
    before = point(page, key, 30)
    drag(page, centre(page, f'circle[data-face="{key}"][data-pt="30"]'), 40, 0)
    after = point(page, key, 30)
    assert after[0] - before[0] == pytest.approx(0, abs=1e-6)
    assert after[1] - before[1] == pytest.approx(10, abs=1e-6)
    page.keyboard.press("ArrowUp")  # up on screen is +x in the file at this rotation
    nudged = point(page, key, 30)
    assert nudged[0] - after[0] == pytest.approx(1 / 4, abs=1e-6) and nudged[1] == pytest.approx(after[1])


def test_from_the_review_queue_to_the_editor_and_back(browser, live_server):
    """e -> drag -> s -> b: back in the review on the same item, drawn corrected and marked
    "corrected by rev"; the review's own back (<-) and the browser's back button work after it."""
    from tests.review_data import seed as review_seed
    from tests.review_data import user_ids
    from tests.svg_paths import vertices

    db = live_server.db()
    sets = review_seed(db, user_ids(db))
    db.close()
    page = new_page(browser, live_server)

    def shown_id():
        return int(page.locator("#review-item").get_attribute("data-annotation-id"))

    def zoom_points():
        d = page.locator(".zoom svg path.pts:not(.hidden-pt)").first.get_attribute("d")
        return vertices(f'd="{d}"')

    try:
        queue = f"{live_server.url}/review/{sets['landmarks68']}"
        page.goto(queue)
        ann_id = shown_id()
        before = zoom_points()
        page.keyboard.press("e")
        page.wait_for_url(re.compile(rf"{re.escape(live_server.url)}/edit/annotation/{ann_id}\?next="))
        page.wait_for_function("() => window.oiapEditor !== undefined")
        page.wait_for_function("() => document.getElementById('photo').getBBox().width > 0")
        key = f"m{ann_id}"
        assert page.evaluate("oiapEditor.selection.key") == key
        x30, y30 = page.evaluate(f"oiapEditor.faces().find(g => g.key === '{key}').points[30]")[:2]
        page.evaluate(f"oiapEditor.setView(4, {x30}, {y30})")
        page.wait_for_timeout(50)
        drag(page, centre(page, f'circle[data-face="{key}"][data-pt="30"]'), 40, -24)
        moved = page.evaluate(f"oiapEditor.faces().find(g => g.key === '{key}').points[30]")
        assert moved[0] - x30 == pytest.approx(10, abs=1e-6) and moved[1] - y30 == pytest.approx(-6, abs=1e-6)
        page.keyboard.press("s")
        wait_saved(page)
        page.keyboard.press("b")
        page.wait_for_url(re.compile(rf"{re.escape(queue)}\?.*item={ann_id}"))
        page.wait_for_selector("#review-item")
        # The same item, now drawn with the corrected point 30 and marked.
        assert shown_id() == ann_id
        assert "corrected by rev" in page.locator(".review-info").inner_text()
        assert "1 corrected" in page.locator(".review-counts").inner_text()
        after = zoom_points()
        assert after[30] == pytest.approx((round(moved[0], 1), round(moved[1], 1)), abs=0.11)
        assert after[:30] == before[:30] and after[30] != before[30]
        # Skip on, then the review's back (<-) returns to the corrected item.
        page.keyboard.press("ArrowRight")
        page.wait_for_function(
            "id => document.getElementById('review-item').dataset.annotationId !== id", arg=str(ann_id)
        )
        page.keyboard.press("ArrowLeft")
        page.wait_for_function(
            "id => document.getElementById('review-item').dataset.annotationId === id", arg=str(ann_id)
        )
        assert "corrected by rev" in page.locator(".review-info").inner_text()
        # The browser's back button from the editor after a second save: the review page again, never
        # the item as it was before the save.
        page.keyboard.press("e")
        page.wait_for_url(re.compile(rf".*/edit/annotation/{ann_id}\?next="))
        page.wait_for_function("() => window.oiapEditor !== undefined")
        # The editor now holds the correction (a human face), selected.
        fixed = page.evaluate("oiapEditor.selection.key")
        assert fixed and fixed != key
        page.evaluate(f"oiapEditor.select('{fixed}', 31)")
        page.keyboard.press("Shift+ArrowRight")
        page.keyboard.press("s")
        wait_saved(page)
        page.go_back()
        page.wait_for_selector("#review-item")
        # The page's address is this item's (?item=, from b): reloaded or restored from the cache and
        # fetched again, it shows the item with the second save.
        page.wait_for_function(
            "() => document.querySelector('.review-info').innerText.includes('corrected by rev')"
        )
        assert shown_id() == ann_id
        for _ in range(50):  # the item may be fetched again after the page is restored
            if zoom_points()[31] != before[31]:
                break
            page.wait_for_timeout(100)
        assert zoom_points()[31] != before[31] and zoom_points()[30] == after[30]
        db = live_server.db()
        try:
            assert get_annotation(db, ann_id)["rating"] == "bad"
            assert (
                db.execute("SELECT count(*) FROM annotations WHERE origin_id = ?", [ann_id]).fetchone()[0]
                == 1
            )
        finally:
            db.close()
    finally:
        page.context.close()
    assert not page.errors, page.errors


@pytest.mark.parametrize("kind,n_points", [("face_box", None), ("face_landmarks5", 5)])
def test_box_and_five_point_editors_add_and_save_a_face(page, server, kind, n_points):
    url, app, data = server
    f = data["faces"][14]
    image_id = f["image"]["id"]
    open_editor(page, f"{url}/edit/image/{image_id}?kind={kind}")
    assert page.evaluate("oiapEditor.faces().length") == 0
    a = page.evaluate("oiapEditor.toScreen(140, 80)")
    b = page.evaluate("oiapEditor.toScreen(225, 160)")
    page.click("#ed-add")
    drag(page, (a["x"], a["y"]), b["x"] - a["x"], b["y"] - a["y"])
    page.wait_for_function("() => oiapEditor.faces().length === 1")
    face = page.evaluate("oiapEditor.faces()[0]")
    assert (face["points"] and len(face["points"])) == n_points
    # Drag the box's bottom-right corner 8 screen pixels right.
    page.evaluate(f"oiapEditor.select('{face['key']}', null)")
    page.wait_for_timeout(50)
    corner = centre(page, f'rect.handle.se[data-face="{face["key"]}"]')
    drag(page, corner, 8, 0)
    zoom = page.evaluate("oiapEditor.view.zoom")
    moved = page.evaluate("oiapEditor.faces()[0].box")
    assert moved[2] - face["box"][2] == pytest.approx(8 / zoom, abs=1e-6) and moved[:2] == face["box"][:2]
    page.click("#ed-save")
    wait_saved(page)
    db = connect(app.config["DATABASE"])
    try:
        row = db.execute(
            "SELECT a.kind, a.points, s.name FROM annotations a JOIN annotation_sets s ON s.id = a.set_id"
            " WHERE a.image_id = ? AND a.kind = ?",
            [image_id, kind],
        ).fetchone()
        assert row[0] == kind and row[2] == f"human-{kind}"
        assert (row[1] is None) if n_points is None else len(json.loads(row[1])) == n_points
    finally:
        db.close()
