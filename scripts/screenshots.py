#!/usr/bin/env python
"""Screenshots of every page at 1366x768 and 800 px wide, for before/after comparisons of the UI.

Builds a fresh store in a temporary folder (the real demo photos with their 68 points, the builtin
models, a few ratings so the audit log and undo notice have something to show), serves it on a free
localhost port and drives Debian's Chromium headless through Playwright. Each page is saved twice:
`<name>-1366.png` (1366x768, the viewport only: what a laptop shows without scrolling) and
`<name>-800.png` (800x900, also only the viewport).

    python scripts/screenshots.py /tmp/o18-after          # every page
    python scripts/screenshots.py /tmp/shots --full-page  # whole pages, scrolled parts included
"""

import argparse
import logging
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CHROMIUM = "/usr/bin/chromium"
SIZES = {"1366": (1366, 768), "800": (800, 900)}


def build(instance: Path) -> dict:
    """The store the screenshots show: demo photos and sets, builtin models, a few ratings."""
    from app.annotations.rows import rate_many
    from app.db import connect
    from app.models.builtin import ensure_builtin_models
    from tests.live import live_app
    from tests.review_data import seed, user_ids

    app = live_app(instance)
    db = connect(app.config["DATABASE"])
    try:
        ids = user_ids(db)
        data = seed(db, ids)
        ensure_builtin_models(db)
        first = [
            r[0]
            for r in db.execute(
                "SELECT id FROM annotations WHERE set_id = ? ORDER BY id LIMIT 3", [data["landmarks68"]]
            )
        ]
        rate_many(db, first, ids["rev"], "good")
    finally:
        db.close()
    return {"app": app, **data}


def shoot(out: Path, full_page: bool) -> list[Path]:
    """Serve a fresh store and save each page at each size; returns the files written."""
    from playwright.sync_api import sync_playwright

    from tests.live import PASSWORD, serve

    # One line per request would bury the list of files written.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        data = build(Path(tmp) / "instance")
        lm = data["landmarks68"]
        pages = {
            "dashboard": "/",
            "review": f"/review/{lm}",
            "set": f"/sets/{lm}",
            "editor": None,  # filled in from the review page's item
            "models": "/models/",
            "model": "/models/1",
            "audit": "/audit",
            "users": "/admin/users",
            "export": "/export/",
            "not-found": "/no-such-page",
        }
        with serve(data["app"]) as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            for size, (w, h) in SIZES.items():
                ctx = browser.new_context(viewport={"width": w, "height": h})
                page = ctx.new_page()
                page.goto(f"{url}/login")
                written.append(_save(page, out / f"login-{size}.png", full_page))
                page.fill("input[name=username]", "admin")
                page.fill("input[name=password]", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_url(f"{url}/")
                for name, path in pages.items():
                    if name == "editor":
                        page.goto(f"{url}/review/{lm}")
                        path = page.locator("#review-item").get_attribute("data-edit-url")
                    page.goto(url + path)
                    page.wait_for_load_state("networkidle")
                    written.append(_save(page, out / f"{name}-{size}.png", full_page))
                # The review page with the undo notice shown: rate one item, then undo it.
                page.goto(f"{url}/review/{lm}")
                page.keyboard.press("g")
                page.wait_for_timeout(500)
                page.keyboard.press("u")
                page.wait_for_selector(".review-message")
                page.wait_for_load_state("networkidle")
                written.append(_save(page, out / f"review-undo-{size}.png", full_page))
                ctx.close()
            browser.close()
    return written


def _save(page, path: Path, full_page: bool) -> Path:
    page.screenshot(path=str(path), full_page=full_page)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path, help="folder for the PNG files (created if missing)")
    parser.add_argument("--full-page", action="store_true", help="capture whole pages, not only the viewport")
    args = parser.parse_args()
    for path in shoot(args.out, args.full_page):
        print(path)


if __name__ == "__main__":
    main()
