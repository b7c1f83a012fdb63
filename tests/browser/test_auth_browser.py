"""Accounts in Chromium: the login form, the users page, htmx's CSRF header, the 403 page."""

import pytest

from tests.browser.conftest import browser_login
from tests.live import PASSWORD

pytestmark = pytest.mark.browser


def test_admin_manages_users_in_the_browser(live_server, page):
    browser_login(page, live_server, "admin")
    page.click("nav >> text=Users")
    page.wait_for_url(f"{live_server.url}/admin/users")
    page.fill(".add-user input[name=username]", "zoe")
    page.fill(".add-user input[name=password]", PASSWORD)
    page.select_option(".add-user select[name=role]", "reviewer")
    page.click(".add-user button[type=submit]")
    page.wait_for_selector("text=added zoe")
    row = page.locator("tr", has_text="zoe")
    row.locator("button", has_text="Disable").click()
    page.wait_for_selector("text=user disabled")
    assert page.locator("tr.disabled", has_text="zoe").count() == 1
    db = live_server.db()
    try:
        rows = db.execute(
            "SELECT e.action, a.username FROM events e JOIN users a ON a.id = e.user_id"
            " WHERE e.target_id = (SELECT id FROM users WHERE username = 'zoe') ORDER BY e.id"
        ).fetchall()
        assert rows == [("user.add", "admin"), ("user.disable", "admin")]
    finally:
        db.close()
    page.click("text=Log out")
    page.wait_for_url(f"{live_server.url}/login")


def test_htmx_post_carries_the_csrf_header(live_server, page):
    browser_login(page, live_server, "rev")
    # A real htmx element, processed by the vendored htmx: its POST only passes CSRF
    # because base.html's hx-headers adds X-CSRFToken.
    page.evaluate(
        """() => {
            const b = document.createElement('button');
            b.id = 'hx-logout'; b.setAttribute('hx-post', '/logout'); b.setAttribute('hx-target', 'main');
            document.querySelector('main').appendChild(b);
            htmx.process(b);
        }"""
    )
    with page.expect_response(lambda r: r.url.endswith("/logout")) as info:
        page.click("#hx-logout")
    assert info.value.request.headers.get("x-csrftoken")
    assert info.value.status in (200, 302)
    page.goto(f"{live_server.url}/")
    assert page.url.startswith(f"{live_server.url}/login")


def test_reviewer_sees_why_an_admin_page_is_refused(live_server, page):
    browser_login(page, live_server, "rev")
    response = page.goto(f"{live_server.url}/admin/users")
    assert response.status == 403
    assert page.locator("text=This action needs an admin account").is_visible()
    assert page.locator("nav >> text=Users").count() == 0
