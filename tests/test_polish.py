"""Small polish from issue 18 (points 7 and 8): form defaults, favicon, error pages' links, wording."""

import re

from flask import render_template

from app.wording import plural
from tests.editor_seed import seed

KIND = "face_landmarks68"


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


def test_404_page_links_back_to_the_dashboard(client, admin_client, hx):
    for c in (client, admin_client):
        r = c.get("/no/such/page")
        assert r.status_code == 404
        assert b'<a href="/">Back to the dashboard</a>' in r.data
    r = admin_client.get("/sets/999999", headers=hx)  # a missing set: the htmx fragment has it too
    assert r.status_code == 404 and b'<a href="/">Back to the dashboard</a>' in r.data


def test_throttled_login_links_to_the_login_page(client):
    for _ in range(5):
        client.post("/login", data={"username": "rev", "password": "wrong password"})
    r = client.post("/login", data={"username": "rev", "password": "wrong password"})
    assert r.status_code == 429
    assert re.search(rb'Try again in \d+ s from <a href="/login">the login page</a>', r.data)


def test_429_error_page_links_to_the_login_page(app):
    # What a 429 page (errors/page.html) offers: the login page to someone logged out.
    with app.test_request_context("/"):
        page = render_template("errors/page.html", code=429, message="Too many requests.")
    assert '<a href="/login">Back to the login page</a>' in page


def test_plural():
    assert plural(1, "annotation") == "1 annotation"
    assert plural(0, "annotation") == "0 annotations"
    assert plural(2, "face") == "2 faces"
    assert plural(2, "box", "boxes") == "2 boxes"


def test_editor_save_says_what_it_did(admin_client, db):
    # "Saved 1 face" after a delete did not say what happened.
    machine = seed(db)["faces"][0]
    image_id = machine["image"]["id"]
    pts = [[0.1 + i / 1000, 0.2 + i / 2000, 1] for i in range(68)]

    def save(*faces):
        r = admin_client.post("/edit/save", json={"image_id": image_id, "kind": KIND, "faces": list(faces)})
        assert r.status_code == 200, r.json
        return r.json

    new = {"key": "n1", "box": [0.05, 0.1, 0.3, 0.4], "points": pts}
    assert save(new)["message"] == "Saved 1 face"
    both = save({**new, "key": "n2"}, {**new, "key": "n3"})
    assert both["message"] == "Saved 2 faces"
    first = both["faces"][0]
    gone = {"key": "n2", "id": first["id"], "version": first["version"], "deleted": True}
    assert save(gone)["message"] == "Deleted 1 face"
    assert save({"key": "m", "origin_id": machine["id"], "deleted": True}, {**new, "key": "n4"})[
        "message"
    ] == ("Saved 1 face, deleted 1 face")
