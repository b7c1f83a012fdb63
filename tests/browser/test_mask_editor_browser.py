"""The mask editor in Debian's Chromium: click superpixels on a real photo's mask and save; a stale save
is refused and keeps the edits; a click on a 1024 px crop redraws in well under 50 ms."""

import statistics
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from app.annotations import masks
from app.annotations.rows import annotation_row, get_annotation, insert_annotations
from app.editor import mask_edits
from app.kinds import FACE_LABEL
from app.sets.queries import create_set
from tests.browser.conftest import browser_login
from tests.conftest import DEMO_DATA
from tests.editor_seed import add_image
from tests.live import http_login
from tests.mask_seed import seed_masks

pytestmark = pytest.mark.browser

CLICK_BOUND_MS = 150  # generous: the target is 50 ms on a laptop; this machine is shared


@pytest.fixture
def server(live_server):
    db = live_server.db()
    data = seed_masks(db)
    db.close()
    return data


@pytest.fixture
def page(browser, live_server, server):
    """A reviewer's page; fails the test on any JavaScript error."""
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    pg = context.new_page()
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    browser_login(pg, live_server, "rev")
    yield pg
    context.close()
    assert not pg.errors, pg.errors


def open_mask(page, url: str):
    # Predicates as functions: a bare expression is eval()ed in the page, which the CSP forbids.
    page.goto(url)
    page.wait_for_function("() => window.oiapMask !== undefined && window.oiapMask.ready")


def grid(page) -> tuple[int, int]:
    w, h = page.evaluate("oiapMask.size()")
    return w, h


def labels_of(page) -> np.ndarray:
    w, h = grid(page)
    return np.array(page.evaluate("oiapMask.labels()"), dtype=np.int32).reshape(h, w)


def inner_pixel(labels: np.ndarray, lab: int) -> tuple[int, int]:
    """A pixel of superpixel `lab` whose 5x5 neighbourhood is all `lab`: a click there cannot round into another."""
    h, w = labels.shape
    ys, xs = np.nonzero(labels == lab)
    order = np.argsort((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2)
    for k in order:
        y, x = ys[k], xs[k]
        if 2 <= y < h - 2 and 2 <= x < w - 2 and (labels[y - 2 : y + 3, x - 2 : x + 3] == lab).all():
            return int(x), int(y)
    raise AssertionError(f"superpixel {lab} has no inner pixel")


def click_grid(page, x: int, y: int, shift: bool = False):
    p = page.evaluate(f"oiapMask.toScreen({x}, {y})")
    if shift:
        page.keyboard.down("Shift")
    page.mouse.click(p["x"], p["y"])
    if shift:
        page.keyboard.up("Shift")


def biggest(live_server, data) -> dict:
    db = live_server.db()
    try:
        return max(data["masks"], key=lambda m: masks.area(get_annotation(db, m["id"])["mask"]))
    finally:
        db.close()


def test_click_superpixels_and_save_changes_exactly_their_pixels(page, live_server, server):
    m = biggest(live_server, server)
    open_mask(page, f"{live_server.url}/edit/mask/{m['id']}")
    cfg = page.evaluate("JSON.parse(document.getElementById('mask-config').textContent)")
    crop = cfg["crop"]
    labels = labels_of(page)
    work = mask_edits.from_runs(cfg["runs"], crop["width"], crop["height"])
    # Two superpixels outside the mask to add, one inside to remove (shift inverts the mode).
    inside = np.bincount(labels.ravel(), weights=work.ravel()) / np.bincount(labels.ravel())
    outside = [lab for lab in np.argsort(inside) if inside[lab] == 0][:2]
    # The one to remove lies inside with a ring of mask around it, so removing it makes a hole.
    inner = next(
        lab
        for lab in np.argsort(-inside)
        if inside[lab] == 1.0 and work[ndimage.binary_dilation(labels == lab, iterations=2)].all()
    )
    assert len(outside) == 2
    for lab in outside:
        click_grid(page, *inner_pixel(labels, lab))
    click_grid(page, *inner_pixel(labels, inner), shift=True)
    expect = work.copy()
    expect[np.isin(labels, outside)] = True
    expect[labels == inner] = False
    assert page.evaluate("oiapMask.maskSum()") == int(expect.sum())
    clicks = page.evaluate("oiapMask.stats.clicks")
    print(
        f"\nclick + redraw on a {crop['width']}x{crop['height']} crop: {', '.join(f'{t:.1f}' for t in clicks)} ms"
    )
    page.keyboard.press("s")
    page.wait_for_function("() => document.getElementById('mk-status').textContent.startsWith('Saved')")

    db = live_server.db()
    try:
        human = db.execute("SELECT id FROM annotations WHERE origin_id = ?", [m["id"]]).fetchone()
        assert human, "no correction was stored"
        after = masks.decode(get_annotation(db, human[0])["mask"])
        machine = get_annotation(db, m["id"])
        before = masks.decode(machine["mask"])
        assert machine["rating"] == "bad"
    finally:
        db.close()
    changed = after != before
    sl = (slice(crop["y0"], crop["y1"]), slice(crop["x0"], crop["x1"]))
    # Changed exactly in those superpixels: the added ones' pixels that were out, the removed one's that were in.
    want = np.zeros_like(changed)
    want[sl] = (np.isin(labels, outside) & ~work) | ((labels == inner) & work)
    assert np.array_equal(changed, want)
    assert after[sl][np.isin(labels, outside)].all() and not after[sl][labels == inner].any()
    assert page.evaluate("oiapMask.annotation()") == {"id": human[0], "version": 1, "origin_id": m["id"]}

    # Undo, redo and fill holes act on the page's mask; a second save updates version 1 to 2.
    n = page.evaluate("oiapMask.maskSum()")
    page.keyboard.press("Control+z")
    assert page.evaluate("oiapMask.maskSum()") == n + int((labels == inner).sum())
    page.keyboard.press("Control+Shift+z")
    assert page.evaluate("oiapMask.maskSum()") == n
    page.keyboard.press("h")  # the removed superpixel was a hole inside the face: filled again
    assert page.evaluate("oiapMask.maskSum()") >= n + int((labels == inner).sum())
    page.keyboard.press("s")
    page.wait_for_function("() => oiapMask.annotation().version === 2")


def test_a_stale_save_is_refused_and_keeps_the_edits(page, live_server, server):
    m = biggest(live_server, server)
    open_mask(page, f"{live_server.url}/edit/mask/{m['id']}")
    cfg = page.evaluate("JSON.parse(document.getElementById('mask-config').textContent)")
    # Meanwhile the admin corrects the same machine mask.
    s = http_login(live_server.url, "admin")
    work = mask_edits.from_runs(cfg["runs"], cfg["crop"]["width"], cfg["crop"]["height"])
    work[0, 0] = True
    body = {
        "annotation_id": m["id"],
        "version": None,
        "rect": cfg["crop"]["rect"],
        "size": [cfg["crop"]["width"], cfg["crop"]["height"]],
        "runs": mask_edits.runs_of(work),
    }
    assert s.post(f"{live_server.url}/edit/mask/save", json=body, timeout=30).status_code == 200
    labels = labels_of(page)
    lab = int(labels[labels.shape[0] - 3, 2])
    click_grid(page, *inner_pixel(labels, lab))
    edited = page.evaluate("oiapMask.runs()")
    page.keyboard.press("s")
    page.wait_for_function("() => document.getElementById('mk-status').textContent.startsWith('Not saved')")
    assert "already corrected" in page.locator("#mk-status").text_content()
    assert page.locator("#mk-reload").is_visible()
    assert page.evaluate("oiapMask.runs()") == edited and page.evaluate("oiapMask.isDirty()")
    db = live_server.db()
    try:
        assert (
            db.execute("SELECT count(*) FROM annotations WHERE origin_id = ?", [m["id"]]).fetchone()[0] == 1
        )
    finally:
        db.close()


def test_a_click_on_a_1024_px_crop_redraws_fast(page, live_server):
    # A real photo enlarged four times (1440 x 1920) with a mask over most of it: a 1024 px working grid.
    path = Path(live_server.app.config["IMAGES_DIR"]) / "big.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(DEMO_DATA / "2008_001009.jpg") as src:
        src.convert("RGB").resize((1440, 1920), Image.Resampling.LANCZOS).save(path, quality=90)
    db = live_server.db()
    try:
        image = add_image(db, path)
        yy, xx = np.mgrid[0:1920, 0:1440]
        blob = ((xx - 720) / 560) ** 2 + ((yy - 960) / 760) ** 2 <= 1
        set_id = create_set(db, "big", "object_mask", "model", label=FACE_LABEL)
        insert_annotations(
            db, [annotation_row(set_id, image["id"], "object_mask", label=FACE_LABEL, mask=blob)]
        )
        ann_id = db.execute("SELECT max(id) FROM annotations").fetchone()[0]
        db.conn.commit()
    finally:
        db.close()
    open_mask(page, f"{live_server.url}/edit/mask/{ann_id}")
    w, h = grid(page)
    assert max(w, h) == 1024
    n_sp = page.evaluate("Number(document.getElementById('mk-status').textContent.split(' ')[0])")
    for k in range(10):
        x, y = int(w * (0.05 + 0.09 * k)), int(h * (0.1 + 0.08 * k))
        click_grid(page, x, y, shift=k % 2 == 1)
    clicks = page.evaluate("oiapMask.stats.clicks")
    med = statistics.median(clicks)
    print(
        f"\nclick + redraw, {w}x{h} crop, {n_sp} superpixels: median {med:.1f} ms, max {max(clicks):.1f} ms"
        f" over {len(clicks)} clicks"
    )
    assert len(clicks) == 10 and med < CLICK_BOUND_MS


def test_review_a_mask_with_g_and_b(page, live_server, server):
    set_id = server["set_id"]
    page.goto(f"{live_server.url}/review/{set_id}")
    item = page.locator("#review-item")
    ids = []
    for key in ("g", "b"):
        current = item.get_attribute("data-annotation-id")
        ids.append(int(current))
        # The mask is drawn over the whole image and over the zoomed crop, with a visible area on screen.
        for fig in (".overview", ".zoom"):
            box = page.locator(f"#review-item {fig} path.mask").bounding_box()
            assert box and box["width"] > 2 and box["height"] > 2
        page.keyboard.press(key)
        page.wait_for_function(
            "id => document.getElementById('review-item').dataset.annotationId !== id", arg=current
        )
    db = live_server.db()
    try:
        got = [db.execute("SELECT rating FROM annotations WHERE id = ?", [i]).fetchone()[0] for i in ids]
    finally:
        db.close()
    assert got == ["good", "bad"]


def test_brush_drag_paints_a_stroke_of_its_size_and_undo_removes_it(page, live_server, server):
    m = biggest(live_server, server)
    open_mask(page, f"{live_server.url}/edit/mask/{m['id']}")
    w, h = grid(page)
    before = mask_edits.from_runs(page.evaluate("oiapMask.runs()"), w, h)
    page.keyboard.press("r")
    page.keyboard.press("]")
    page.keyboard.press("]")  # radius 6 -> 8
    r = 8
    a, b = (10, 10), (w - 12, 20)
    pa, pb = (
        page.evaluate(f"oiapMask.toScreen({a[0]}, {a[1]})"),
        page.evaluate(f"oiapMask.toScreen({b[0]}, {b[1]})"),
    )
    page.mouse.move(pa["x"], pa["y"])
    page.mouse.down()
    page.mouse.move(pb["x"], pb["y"], steps=7)
    page.mouse.up()
    after = mask_edits.from_runs(page.evaluate("oiapMask.runs()"), w, h)
    # Distance of every grid pixel to the segment a-b.
    yy, xx = np.mgrid[0:h, 0:w]
    ab = np.subtract(b, a)
    t = np.clip(((xx - a[0]) * ab[0] + (yy - a[1]) * ab[1]) / (ab @ ab), 0, 1)
    dist = np.hypot(xx - (a[0] + t * ab[0]), yy - (a[1] + t * ab[1]))
    assert after[dist <= r - 1].all()  # the stroke is painted in
    assert np.array_equal(after[dist > r + 1.5], before[dist > r + 1.5])  # nothing beyond it changed
    page.keyboard.press("Control+z")
    assert page.evaluate("oiapMask.runs()") == mask_edits.runs_of(before)


def test_a_drag_in_remove_mode_removes_every_superpixel_it_crosses(page, live_server, server):
    m = biggest(live_server, server)
    open_mask(page, f"{live_server.url}/edit/mask/{m['id']}")
    w, h = grid(page)
    labels = labels_of(page)
    before = mask_edits.from_runs(page.evaluate("oiapMask.runs()"), w, h)
    page.keyboard.press("x")  # remove mode
    assert page.locator("#mk-mode").text_content() == "remove"
    y, a, b = h // 2, w // 4, 3 * w // 4
    pa, pb = page.evaluate(f"oiapMask.toScreen({a}, {y})"), page.evaluate(f"oiapMask.toScreen({b}, {y})")
    page.mouse.move(pa["x"], pa["y"])
    page.mouse.down()
    page.mouse.move(pb["x"], pb["y"], steps=5)
    page.mouse.up()
    crossed = np.unique(labels[y, a : b + 1])
    after = mask_edits.from_runs(page.evaluate("oiapMask.runs()"), w, h)
    assert before[np.isin(labels, crossed)].any()  # there was something to remove
    assert np.array_equal(after, before & ~np.isin(labels, crossed))
    # One drag is one undo step.
    page.keyboard.press("Control+z")
    assert page.evaluate("oiapMask.runs()") == mask_edits.runs_of(before)


@pytest.mark.parametrize("rotation", [90, 270])
def test_a_rotated_photo_is_shown_turned_and_clicks_land_on_the_grid(page, live_server, server, rotation):
    m = biggest(live_server, server)
    db = live_server.db()
    db.execute("UPDATE images SET rotation = ? WHERE id = ?", [rotation, m["image"]["id"]])
    db.conn.commit()
    db.close()
    open_mask(page, f"{live_server.url}/edit/mask/{m['id']}")
    assert page.evaluate("oiapMask.rotation") == rotation
    w, h = grid(page)
    # Turned a quarter: the box on screen is h wide and w high.
    box = page.locator("#mk-canvas").bounding_box()
    assert box["width"] / box["height"] == pytest.approx(h / w, rel=0.02)
    # Grid pixel (2, 2), the crop's top-left, is on the screen's bottom-left (90) or top-right (270).
    corner = page.evaluate("oiapMask.toScreen(2, 2)")
    left = corner["x"] < box["x"] + box["width"] / 2
    top = corner["y"] < box["y"] + box["height"] / 2
    assert (left, top) == ((True, False) if rotation == 90 else (False, True))
    labels = labels_of(page)
    before = mask_edits.from_runs(page.evaluate("oiapMask.runs()"), w, h)
    lab = int(labels[h - 4, w // 2])
    click_grid(page, *inner_pixel(labels, lab))
    after = mask_edits.from_runs(page.evaluate("oiapMask.runs()"), w, h)
    assert np.array_equal(after, before | (labels == lab))
