"""Small polish from issue 18 (points 7 and 8): form defaults, favicon, error pages' links, wording."""

import re


def test_add_user_form_defaults_to_reviewer(admin_client):
    page = admin_client.get("/admin/users").get_data(as_text=True)
    form = page[page.index('class="inline add-user"') :]
    form = form[: form.index("</form>")]
    selected = re.findall(r'<option value="(\w+)" selected>', form)
    assert selected == ["reviewer"]


def test_favicon_answers_without_login(client):
    r = client.get("/favicon.ico")
    assert r.status_code in (301, 302, 308)
    assert r.headers["Location"] == "/static/favicon.svg"
    with client.get("/static/favicon.svg") as icon:
        assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
        assert b"<svg" in icon.data


def test_pages_link_the_icon(client, admin_client):
    for page in (client.get("/login"), admin_client.get("/")):
        assert b'<link rel="icon" type="image/svg+xml" href="/static/favicon.svg">' in page.data
