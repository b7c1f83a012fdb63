"""Object boxes in Chromium: filter the review queue by class, rate all boxes of a class on an image
with c and take it back with one u; in the editor draw a box, give it a class, resize it, change a
machine box's class, save, and check the stored rows."""

import re

import pytest

from app.annotations.rows import get_annotation
from tests.browser.conftest import browser_login
from tests.objects_seed import CAR, HEAD, PERSON, seed_objects

pytestmark = pytest.mark.browser

DOG = "/m/0bt9lr"


@pytest.fixture
def objects(live_server):
    db = live_server.db()
    try:
        return seed_objects(db)
    finally:
        db.close()


@pytest.fixture
def laptop(browser, live_server):
    """A reviewer's page at 1366x768; fails the test on any JavaScript error."""
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    pg = context.new_page()
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    browser_login(pg, live_server, "rev")
    yield pg
    context.close()
    assert not errors, errors


def ratings(live_server, ids):
    db = live_server.db()
    try:
        marks = ",".join("?" * len(ids))
        return [
            r[0] for r in db.execute(f"SELECT rating FROM annotations WHERE id IN ({marks}) ORDER BY id", ids)
        ]
    finally:
        db.close()


def wait_item_change(page, current):
    page.wait_for_function(
        "id => document.getElementById('review-item').dataset.annotationId !== id", arg=current
    )


def test_filter_by_class_rate_all_of_a_class_and_undo_it_with_one_u(laptop, live_server, objects):
    page, set_id = laptop, objects["set_id"]
    page.goto(f"{live_server.url}/review/{set_id}")
    # Unfiltered, the lowest score comes first: a Person box. Choose Human head in the filter bar.
    assert page.locator(".review-info .class-name").text_content() == "Person"
    page.select_option("#queue-class", HEAD)
    page.click(".queue-filters button[type=submit]")
    page.wait_for_url(re.compile(r".*label=%2Fm%2F04hgtk.*"))
    assert page.locator(".review-info .class-name").text_content() == "Human head"
    # g rates one head and the next item is a head too.
    first = page.locator("#review-item").get_attribute("data-annotation-id")
    page.keyboard.press("g")
    wait_item_change(page, first)
    assert page.locator(".review-info .class-name").text_content() == "Human head"
    assert ratings(live_server, [int(first)]) == ["good"]

    # The photo with the most boxes: c rates all its heads good in one action, persons untouched.
    by_image: dict[str, list] = {}
    for b in objects["boxes"]:
        by_image.setdefault(b["image_id"], []).append(b)
    image_id, boxes = max(by_image.items(), key=lambda kv: len(kv[1]))
    heads = [b["id"] for b in boxes if b["label"] == HEAD]
    persons = [b["id"] for b in boxes if b["label"] == PERSON]
    page.goto(f"{live_server.url}/review/{set_id}?item={heads[1]}&label={HEAD}")
    assert page.locator("[data-key=c]").is_visible()
    page.keyboard.press("c")
    # More than the box on screen: it asks first; c again rates them all.
    page.wait_for_function("() => /press c again/.test(document.getElementById('review-item').textContent)")
    assert ratings(live_server, heads) == ["good" if i == int(first) else None for i in heads]
    page.keyboard.press("c")
    page.wait_for_function(
        "() => /Rated \\d+ Human head boxes/.test(document.getElementById('review-item').textContent)"
    )
    assert ratings(live_server, heads) == ["good"] * len(heads)
    assert ratings(live_server, persons) == [None] * len(persons)
    # One u takes the whole action back, and only it (the earlier g stays).
    shown = page.locator("#review-item").get_attribute("data-annotation-id")
    page.keyboard.press("u")
    page.wait_for_function(
        "id => document.getElementById('review-item').dataset.annotationId !== id"
        " || /Undid/.test(document.getElementById('review-item').textContent)",
        arg=shown,
    )
    page.wait_for_function("() => /Undid/.test(document.getElementById('review-item').textContent)")
    # Each head is back to its rating before c: the one g rated stays good, the others unrated.
    assert ratings(live_server, heads) == ["good" if i == int(first) else None for i in heads]
    assert ratings(live_server, [int(first)]) == ["good"]
    # The filter stays in the page's links.
    assert "label=%2Fm%2F04hgtk" in page.locator("#review-item").get_attribute("data-here")
    # e opens the box in the editor with its class; b comes back to the class-filtered queue.
    current = page.locator("#review-item").get_attribute("data-annotation-id")
    page.keyboard.press("e")
    page.wait_for_url(re.compile(rf".*/edit/annotation/{current}\?.*"))
    page.wait_for_function("() => window.oiapEditor !== undefined")
    assert page.locator("#ed-class").input_value() == "Human head"
    page.keyboard.press("b")
    page.wait_for_url(re.compile(rf".*/review/{set_id}\?.*label=%2Fm%2F04hgtk.*"))
    assert page.locator(".review-info .class-name").text_content() == "Human head"


def open_editor(page, url):
    page.goto(url)
    page.wait_for_function("() => window.oiapEditor !== undefined")
    page.wait_for_function("() => document.getElementById('photo').getBBox().width > 0")


def drag(page, start, dx, dy, steps=6):
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(start[0] + dx, start[1] + dy, steps=steps)
    page.mouse.up()


def choose_class(page, name):
    page.keyboard.press("c")
    assert page.evaluate("() => document.activeElement.id") == "ed-class"
    page.keyboard.type(name)
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") != "ed-class"


def test_draw_a_box_change_classes_resize_and_save(laptop, live_server, objects):
    page = laptop
    image = objects["images"]["2008_001009.jpg"]  # 360x480
    w, h = image["width"], image["height"]
    open_editor(page, f"{live_server.url}/edit/image/{image['id']}?kind=object_box")
    n_before = page.evaluate("oiapEditor.faces().length")
    assert page.locator("#faces text.cls").first.text_content() in ("Human head", "Person")
    # Draw a box, then give it a class: Car.
    a = page.evaluate("oiapEditor.toScreen(240, 360)")
    b = page.evaluate("oiapEditor.toScreen(320, 440)")
    page.keyboard.press("a")
    drag(page, (a["x"], a["y"]), b["x"] - a["x"], b["y"] - a["y"])
    page.wait_for_function(f"() => oiapEditor.faces().length === {n_before + 1}")
    choose_class(page, "Car")
    new = page.evaluate("oiapEditor.faces().find(g => g.key.startsWith('new'))")
    assert new["label"] == CAR and new["box"] == pytest.approx([240, 360, 320, 440], abs=0.5)
    # render() draws on the next animation frame: wait for the frame rather than read the SVG before it.
    page.wait_for_function(
        "k => document.querySelector(`#faces g[data-key='${k}'] text.cls`)?.textContent === 'Car'",
        arg=new["key"],
    )
    # Resize it by its bottom-right corner: 20 image pixels right and down.
    se = page.locator(f"#faces g[data-key={new['key']}] rect.handle.se").bounding_box()
    z = page.evaluate("oiapEditor.view.zoom")
    drag(page, (se["x"] + se["width"] / 2, se["y"] + se["height"] / 2), 20 * z, 20 * z)
    new = page.evaluate("oiapEditor.faces().find(g => g.key.startsWith('new'))")
    assert new["box"] == pytest.approx([240, 360, 340, 460], abs=1.0)
    # A machine box of this image: select it and make it a Dog.
    machine = page.evaluate(
        "label => oiapEditor.faces().find(g => g.key.startsWith('m') && g.label === label)", PERSON
    )
    page.evaluate("key => oiapEditor.select(key, null)", machine["key"])
    choose_class(page, "dog")  # the list matches names whatever the case
    assert page.evaluate("k => oiapEditor.faces().find(g => g.key === k).label", machine["key"]) == DOG
    # One undo step per class change: ctrl+z gives it back its class, ctrl+shift+z the Dog again.
    page.keyboard.press("Control+z")
    assert page.evaluate("k => oiapEditor.faces().find(g => g.key === k).label", machine["key"]) == PERSON
    page.keyboard.press("Control+Shift+z")
    assert page.evaluate("k => oiapEditor.faces().find(g => g.key === k).label", machine["key"]) == DOG
    page.keyboard.press("s")
    page.wait_for_function("() => /^Saved 2 boxes/.test(document.getElementById('ed-status').textContent)")

    db = live_server.db()
    try:
        rows = {
            r[0]: r[1:]
            for r in db.execute(
                "SELECT a.id, a.label, a.origin_id, a.x0, a.y0, a.x1, a.y1 FROM annotations a"
                " JOIN annotation_sets s ON s.id = a.set_id WHERE s.name = 'human-object_box' AND a.deleted = 0"
            )
        }
        assert len(rows) == 2
        car = next(v for v in rows.values() if v[0] == CAR)
        assert car[1] is None
        assert [car[2] * w, car[3] * h, car[4] * w, car[5] * h] == pytest.approx(
            [240, 360, 340, 460], abs=1.0
        )
        dog_id, dog = next((k, v) for k, v in rows.items() if v[0] == DOG)
        m_id = int(machine["key"][1:])
        assert dog[1] == m_id
        assert dog[2:] == pytest.approx(
            tuple(get_annotation(db, m_id)[k] for k in ("x0", "y0", "x1", "y1")), abs=1e-5
        )
        assert get_annotation(db, m_id)["rating"] == "bad"
    finally:
        db.close()
    # Reloaded, the editor shows the corrected box as a human Dog box with its name.
    open_editor(page, f"{live_server.url}/edit/annotation/{m_id}")
    assert page.evaluate("oiapEditor.selection.key") == f"h{dog_id}"
    assert page.locator(f"#faces g[data-key=h{dog_id}] text.cls").text_content() == "Dog"
    assert page.locator("#ed-class").input_value() == "Dog"
