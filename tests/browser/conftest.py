"""Browser-test fixtures: a live server and Debian's Chromium driven by Playwright."""

import pytest

from tests.live import PASSWORD, LiveServer, live_app, serve

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture
def live_server(tmp_path):
    """The app served over HTTP on a free port (users admin and rev, password PASSWORD, CSRF on)."""
    app = live_app(tmp_path / "instance")
    with serve(app) as url:
        yield LiveServer(url, app)


@pytest.fixture
def browser():
    """Headless Debian Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A fresh browser page (own cookies)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    yield pg
    context.close()


def browser_login(page, server: LiveServer, username: str = "rev", password: str = PASSWORD) -> None:
    """Log in through the login form."""
    page.goto(f"{server.url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/")


def vertex_count(path_locator) -> int:
    """Vertices ("M x y") of an SVG points path: one per drawn point."""
    return path_locator.evaluate("p => p.getAttribute('d').split('M').length - 1")


def dot_pixels(svg_locator) -> int:
    """Pixels of the points' colour in a screenshot of an SVG with its photo and boxes hidden: the dots."""
    import io

    import numpy as np
    from PIL import Image

    # The current box has the points' colour too.
    hide = "s => s.querySelectorAll('image, rect').forEach(e => e.style.visibility = '%s')"
    svg_locator.evaluate(hide % "hidden")
    try:
        shot = Image.open(io.BytesIO(svg_locator.screenshot())).convert("RGB")
    finally:
        svg_locator.evaluate(hide % "")
    # #22d3ee, the points' colour in app.css; antialiased edges vary, the dots' cores do not.
    diff = np.abs(np.asarray(shot, dtype=np.int16) - np.array([0x22, 0xD3, 0xEE], dtype=np.int16))
    return int((diff.max(axis=2) < 24).sum())
