"""The surface: every route needs a login, admin routes need an admin, CSRF, cookies, secret key."""

import os
import re
import shutil
import stat
import subprocess
import uuid
from pathlib import Path

import pytest
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Rule

from app import create_app
from app.auth import ADMIN_MESSAGE, PUBLIC_ENDPOINTS, is_admin_endpoint
from app.db import connect, migrate
from app.paths import REPO_ROOT
from tests.conftest import DEMO_DATA, PASSWORD, login

# Dummy values tried for each URL variable, in order, until the built URL routes back to the rule.
# A new converter that none of these fits makes test_every_route_can_be_built fail: add a value here.
CANDIDATES = {
    "IntegerConverter": [1],
    "IdConverter": [1],  # app.web: <int:...> bounded to SQLite integers
    "FloatConverter": [1.5],
    "UUIDConverter": [uuid.UUID(int=1)],
    "PathConverter": ["a/b.jpg", "x"],
    "default": ["x", "0123456789abcdef", "1", "train", "face_box", "a.jpg"],
}


def _methods(rule: Rule) -> list[str]:
    return sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})


def _candidates(rule: Rule, name: str, prefer: dict) -> list:
    if name in prefer:
        return [prefer[name]]
    converter = rule._converters[name]
    kind = type(converter).__name__
    if kind == "AnyConverter":
        return [v for v in re.findall(r"[\w-]+", converter.regex.replace("(?:", "")) if v]
    return CANDIDATES.get(kind, CANDIDATES["default"])


def build_url(app, rule: Rule, method: str, prefer: dict | None = None) -> str | None:
    """A URL that routes to this rule, with dummy values for its variables (or `prefer[name]`);
    None if none fits."""
    adapter = app.url_map.bind("localhost")
    names = sorted(rule.arguments)
    options = {n: _candidates(rule, n, prefer or {}) for n in names}
    for i in range(max([len(v) for v in options.values()] or [1])):
        values = {n: options[n][min(i, len(options[n]) - 1)] for n in names}
        url = adapter.build(rule.endpoint, values, method=method)
        try:
            endpoint, _ = adapter.match(url, method=method)
        except (NotFound, MethodNotAllowed):
            continue
        if endpoint == rule.endpoint:
            return url
    return None


def all_routes(app, prefer: dict | None = None):
    """(endpoint, method, url) for every registered route and method."""
    for rule in app.url_map.iter_rules():
        for method in _methods(rule):
            yield rule.endpoint, method, build_url(app, rule, method, prefer)


def test_every_route_can_be_built(app):
    unbuilt = [(e, m) for e, m, url in all_routes(app) if url is None]
    assert not unbuilt, f"add dummy values to CANDIDATES for {unbuilt}"


def test_every_route_needs_a_login(app, client, hx):
    # A new route without protection fails here unless it is added to PUBLIC_ENDPOINTS.
    checked = 0
    for endpoint, method, url in all_routes(app):
        if endpoint in PUBLIC_ENDPOINTS or url is None:
            continue
        r = client.open(url, method=method)
        assert r.status_code == 302, f"{method} {url} ({endpoint}) answered {r.status_code} anonymously"
        assert r.headers["Location"].startswith("/login"), (method, url)
        r = client.open(url, method=method, headers=hx)
        assert r.status_code == 401 and r.headers["HX-Redirect"] == "/login?expired=1", (method, url)
        checked += 1
    assert checked >= 5


def test_login_brings_you_back(client):
    r = client.get("/admin/users?x=1")
    assert r.headers["Location"] == "/login?next=/admin/users?x%3D1"
    r = client.post(r.headers["Location"], data={"username": "admin", "password": PASSWORD})
    assert r.headers["Location"] == "/admin/users?x=1"
    assert client.post("/logout").headers["Location"] == "/login"
    r = client.post("/admin/users", data={})
    assert r.headers["Location"] == "/login?expired=1"  # the login page says the post was not done


def test_allow_list_is_small():
    assert PUBLIC_ENDPOINTS == {"auth.login", "static", "favicon"}


def test_static_files_and_login_are_public(client):
    assert client.get("/login").status_code == 200
    r = client.get("/static/css/app.css")
    r.close()  # a file response: close it, or pytest reports the open file
    assert r.status_code == 200


def admin_routes(app):
    return [(e, m, url) for e, m, url in all_routes(app) if url and is_admin_endpoint(app, e)]


def test_admin_routes_are_found(app):
    found = {e for e, _, _ in admin_routes(app)}
    assert {"users.index", "users.add", "users.role", "users.active", "users.password"} <= found
    # A view that calls admin_required() itself counts too (the audit page does).
    assert "audit.index" in found
    assert "sets.index" not in found and "auth.logout" not in found


def test_routes_under_admin_are_marked_admin_only(app):
    unmarked = [
        r.rule
        for r in app.url_map.iter_rules()
        if r.rule.startswith("/admin") and not is_admin_endpoint(app, r.endpoint)
    ]
    assert not unmarked, f"mark these with @admin_only or admin_blueprint(): {unmarked}"


def test_reviewer_gets_403_with_reason_on_every_admin_route(app, reviewer_client, db):
    before = db.execute("SELECT count(*) FROM events WHERE action NOT LIKE 'login%'").fetchone()[0]
    for endpoint, method, url in admin_routes(app):
        r = reviewer_client.open(
            url, method=method, data={"username": "x", "password": "y" * 10, "role": "admin"}
        )
        assert r.status_code == 403, f"{method} {url} ({endpoint}) answered {r.status_code} to a reviewer"
        assert ADMIN_MESSAGE.encode() in r.data
    # Refused before anything changed.
    assert db.execute("SELECT count(*) FROM events WHERE action NOT LIKE 'login%'").fetchone()[0] == before


def test_admin_passes_every_admin_check(app, admin_client):
    # Dummy values may be refused as input (400/404), but never for the role.
    for _, method, url in admin_routes(app):
        if method == "GET":
            r = admin_client.get(url)
            r.close()
            assert r.status_code not in (302, 401, 403), (url, r.status_code)
    assert admin_client.get("/admin/users").status_code == 200


# --- CSRF -------------------------------------------------------------------------


@pytest.fixture
def csrf_app(app):
    app.config["WTF_CSRF_ENABLED"] = True
    return app


def token_from(html: bytes) -> str:
    return re.search(rb'name="csrf_token" value="([^"]+)"', html).group(1).decode()


def test_anonymous_post_goes_to_login_before_csrf(csrf_app, hx):
    # An htmx POST from a page whose session ended: navigate to login, do nothing.
    c = csrf_app.test_client()
    r = c.post("/logout", headers=hx)
    assert r.status_code == 401 and r.headers["HX-Redirect"] == "/login?expired=1"
    # From a page: back to it after the login; never to another site.
    r = c.post("/review/1/rate", headers={**hx, "HX-Current-URL": "http://localhost/review/1?split=test"})
    assert r.status_code == 401 and r.headers["HX-Redirect"] == "/login?next=/review/1?split%3Dtest&expired=1"
    r = c.post("/review/1/rate", headers={**hx, "HX-Current-URL": "http://localhost//evil.example/x"})
    assert r.headers["HX-Redirect"] == "/login?expired=1"
    assert b"your last action was not saved" in c.get("/login?expired=1").data
    # A plain form post (no JavaScript): back to the page the form was on, from the Referer.
    r = c.post("/review/1/rate", headers={"Referer": "http://localhost/review/1?split=test"})
    assert r.status_code == 302 and r.headers["Location"] == "/login?next=/review/1?split%3Dtest&expired=1"
    r = c.post("/review/1/rate")
    assert r.status_code == 302 and r.headers["Location"] == "/login?expired=1"
    r = c.post("/admin/users", data={"username": "mallory", "password": PASSWORD})
    assert r.status_code == 302 and r.headers["Location"].startswith("/login")


def test_login_post_without_token_is_refused(csrf_app):
    c = csrf_app.test_client()
    r = login(c, "rev")
    assert r.status_code == 400
    assert b"The CSRF token is missing" in r.data and b"reload the page" in r.data


def test_csrf_form_field_and_htmx_header(csrf_app, hx):
    c = csrf_app.test_client()
    token = token_from(c.get("/login").data)
    r = c.post("/login", data={"username": "rev", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 302
    page = c.get("/").data
    # base.html configures the header once for every htmx request.
    header_token = re.search(rb'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', page).group(1).decode()
    assert "X-CSRFToken" in csrf_app.config["WTF_CSRF_HEADERS"]

    r = c.post("/logout", headers=hx)
    assert r.status_code == 400
    assert b"CSRF" in r.data and b"<html" not in r.data  # an htmx request gets the fragment
    r = c.post("/logout", headers={**hx, "X-CSRFToken": "forged"})
    assert r.status_code == 400
    assert c.get("/").status_code == 200  # still logged in
    r = c.post("/logout", headers={**hx, "X-CSRFToken": header_token})
    assert r.status_code == 302
    assert c.get("/").status_code == 302


def test_token_from_another_session_is_refused(csrf_app):
    other = csrf_app.test_client()
    stolen = token_from(other.get("/login").data)
    c = csrf_app.test_client()
    c.get("/login")
    r = c.post("/login", data={"username": "rev", "password": PASSWORD, "csrf_token": stolen})
    assert r.status_code == 400


def test_admin_post_without_token_changes_nothing(csrf_app, db):
    c = csrf_app.test_client()
    token = token_from(c.get("/login").data)
    c.post("/login", data={"username": "admin", "password": PASSWORD, "csrf_token": token})
    r = c.post("/admin/users", data={"username": "mallory", "password": PASSWORD, "role": "admin"})
    assert r.status_code == 400
    assert not list(db.query("SELECT id FROM users WHERE username = 'mallory'"))


# --- cookies and secret key -------------------------------------------------------


def _set_cookie(response) -> str:
    [cookie] = [h for h in response.headers.getlist("Set-Cookie") if h.startswith("session=")]
    return cookie


def test_session_cookie_flags(client):
    cookie = _set_cookie(login(client, "rev"))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie


def _env_app(tmp_path, monkeypatch, **env):
    instance = tmp_path / "inst"
    monkeypatch.setenv("OIAP_INSTANCE", str(instance))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return create_app()


def test_security_headers_on_every_kind_of_response(client, admin_client):
    for r in (client.get("/login"), client.get("/"), admin_client.get("/"), admin_client.get("/nowhere")):
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["Content-Security-Policy"] == (
            "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
        )
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "same-origin"


def test_secure_cookie_when_configured(tmp_path, monkeypatch):
    app = _env_app(tmp_path, monkeypatch, OIAP_SESSION_COOKIE_SECURE="true")
    assert app.config["SESSION_COOKIE_SECURE"] is True
    db = connect(app.config["DATABASE"])
    migrate(db)
    from app.auth.users import create_user

    create_user(db, "rev", PASSWORD)
    db.close()
    cookie = _set_cookie(login(app.test_client(), "rev"))
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_secret_key_generated_once_into_instance(tmp_path, monkeypatch):
    monkeypatch.delenv("OIAP_SECRET_KEY", raising=False)
    app = _env_app(tmp_path, monkeypatch)
    path = tmp_path / "inst" / "secret_key"
    key = path.read_text().strip()
    assert app.config["SECRET_KEY"] == key and re.fullmatch(r"[0-9a-f]{64}", key)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # The next start reads the same key, so sessions survive a restart.
    assert create_app().config["SECRET_KEY"] == key
    # A different instance gets a different key.
    monkeypatch.setenv("OIAP_INSTANCE", str(tmp_path / "other"))
    assert create_app().config["SECRET_KEY"] != key


def test_configured_secret_key_wins(tmp_path, monkeypatch):
    app = _env_app(tmp_path, monkeypatch, OIAP_SECRET_KEY="from-the-environment")
    assert app.config["SECRET_KEY"] == "from-the-environment"
    assert not (tmp_path / "inst" / "secret_key").exists()


def test_secret_key_is_never_committed():
    r = subprocess.run(
        ["git", "check-ignore", "-q", "instance/secret_key"], cwd=REPO_ROOT, capture_output=True
    )
    assert r.returncode == 0, "instance/secret_key must be git-ignored"
    tracked = subprocess.run(["git", "ls-files", "instance"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert "secret_key" not in tracked.stdout


# --- path traversal ---------------------------------------------------------------

TRAVERSALS = [
    "../app/__init__.py",
    "css/../../app/__init__.py",
    "%2e%2e/app/__init__.py",
    "%2e%2e%2fapp%2f__init__.py",
    "..%2fapp%2f__init__.py",
    "%252e%252e%252fapp%252f__init__.py",
    "..%5capp%5c__init__.py",
    "/etc/passwd",
    "%2fetc%2fpasswd",
    "....//app/__init__.py",
]


@pytest.mark.parametrize("attempt", TRAVERSALS)
def test_static_route_never_leaves_static_folder(admin_client, attempt):
    r = admin_client.get("/static/" + attempt, follow_redirects=True)
    body = r.get_data()
    r.close()
    assert r.status_code in (400, 404), (attempt, r.status_code)
    assert b"def create_app" not in body and b"root:" not in body


# --- image routes: only images in the store, only from the image folders ---------------

GOOD = "00000000000000aa"
LINK = "00000000000000bb"
MISSING = "00000000000000cc"
SECRET = b"TOP SECRET, outside every image folder"


@pytest.fixture(params=["OPEN_IMAGES_DIR", "OPEN_IMAGES_DIR_MAP"])
def images(request, app, db, tmp_path):
    """An image folder (either layout) with one real photo and one symlink pointing outside it."""
    root = tmp_path / "openimages"
    (root / "validation").mkdir(parents=True)
    photo = DEMO_DATA / "2008_001322.jpg"
    shutil.copy(photo, root / "validation" / f"{GOOD}.jpg")
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(photo, outside / "private.jpg")
    (outside / "secret.txt").write_bytes(SECRET)
    (root / "validation" / f"{LINK}.jpg").symlink_to(outside / "private.jpg")
    if request.param == "OPEN_IMAGES_DIR":
        app.config["OPEN_IMAGES_DIR"] = str(root)
    else:
        app.config["OPEN_IMAGES_DIR_MAP"] = {"validation": str(root / "validation")}
    for image_id in (GOOD, LINK):
        db.execute(
            "INSERT INTO images (id, split, created_at) VALUES (?, 'validation', '2026-01-01T00:00:00')",
            [image_id],
        )
    return {"root": root, "outside": outside, "photo": photo.read_bytes()}


def _get(client, url):
    r = client.get(url, follow_redirects=True)
    body = r.get_data()
    r.close()
    return r.status_code, body


def test_image_in_the_store_is_served(admin_client, images):
    status, body = _get(admin_client, f"/images/{GOOD}")
    assert status == 200 and body == images["photo"]
    status, body = _get(admin_client, f"/images/{GOOD}/256")
    assert status == 200 and body[:2] == b"\xff\xd8"


def test_anonymous_gets_no_image(client, images):
    r = client.get(f"/images/{GOOD}")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


@pytest.mark.parametrize("suffix", ["", "/256", "/meta", "/crop?box=0.1,0.1,0.5,0.5"])
def test_symlink_out_of_the_image_folder_is_not_followed(admin_client, images, app, suffix):
    status, body = _get(admin_client, f"/images/{LINK}{suffix}")
    # Not even its size (meta reads it from the file) comes from the outside file.
    assert status == 404, status
    assert body != images["photo"] and body[:2] != b"\xff\xd8"
    # Nothing was rendered from the outside file either.
    assert not list(Path(app.config["CACHE_DIR"]).rglob(f"{LINK}*"))


def test_image_not_in_the_store_is_404_even_if_its_file_exists(admin_client, images):
    shutil.copy(
        images["root"] / "validation" / f"{GOOD}.jpg", images["root"] / "validation" / f"{MISSING}.jpg"
    )
    status, _ = _get(admin_client, f"/images/{MISSING}")
    assert status == 404


def _attempts(images):
    secret = str(images["outside"] / "secret.txt")
    return [
        "../../../../../../etc/passwd",
        "..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
        "%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "%252e%252e%252f%252e%252e%252f%252e%252e%252fetc%252fpasswd",
        "..%252f..%252f..%252fetc%252fpasswd",
        "..%5c..%5c..%5cetc%5cpasswd",
        "....//....//....//etc/passwd",
        "/etc/passwd",
        "%2fetc%2fpasswd",
        "/" + secret.lstrip("/"),
        secret.replace("/", "%2f"),
        secret.replace("/", "%252f"),
        f"{GOOD}/../../../../etc/passwd",
        f"{GOOD}%00.jpg",
        "..%2f..%2f..%2foutside%2fsecret.txt",
    ]


@pytest.mark.parametrize("suffix", ["", "/256", "/meta", "/crop?box=0,0,1,1"])
def test_traversal_attempts_read_nothing(admin_client, images, suffix):
    for attempt in _attempts(images):
        url = f"/images/{attempt}{suffix}"
        status, body = _get(admin_client, url)
        assert status in (400, 404), (url, status)
        assert SECRET not in body and b"root:" not in body and body != images["photo"], url


def test_sizes_are_limited(admin_client, images):
    assert _get(admin_client, f"/images/{GOOD}/99999")[0] == 400
    assert _get(admin_client, f"/images/{GOOD}/-256")[0] == 404


def test_stored_relative_path_cannot_leave_the_repository(admin_client, db, images):
    db.execute(
        "INSERT INTO images (id, split, path, created_at) VALUES (?, 'train', ?, '2026-01-01T00:00:00')",
        ["00000000000000dd", "../../../../etc/passwd"],
    )
    status, body = _get(admin_client, "/images/00000000000000dd")
    assert status in (400, 404) and b"root:" not in body


# --- every change made through the web is audited -------------------------------------

# Tables whose rows may change without an audit event: the log itself, and reviewers' leases.
NOT_AUDITED = {"events", "claims"}


def _snapshot(db) -> dict:
    tables = [t for t in db.table_names() if t not in NOT_AUDITED and not t.startswith(("_", "sqlite_"))]
    return {t: db.execute(f"SELECT * FROM [{t}]").fetchall() for t in tables}


def test_every_web_change_is_audited(app, db):
    """POST (PUT, PATCH, DELETE) to every route as an admin with plausible form values: any route that
    changes the store must add an event naming the admin. New routes are covered automatically."""
    from app.imports.demo import build_demo

    build_demo(db)
    image_id = db.execute("SELECT id FROM images ORDER BY id LIMIT 1").fetchone()[0]
    admin_id = db.execute("SELECT id FROM users WHERE username = 'admin'").fetchone()[0]
    form = {
        "username": "zed",
        "password": PASSWORD,
        "current": PASSWORD,
        "new": PASSWORD,
        "confirm": PASSWORD,
        "role": "reviewer",
        "active": "1",
        "rating": "good",
        "value": "good",
        "name": "audit-check",
        "kind": "face_box",
        "set_id": "1",
        "annotation_id": "1",
        "image_id": image_id,
        "box": "0.1,0.1,0.5,0.5",
        "x0": "0.1",
        "y0": "0.1",
        "x1": "0.5",
        "y1": "0.5",
        "points": "[]",
        "version": "1",
    }
    box = [0.1, 0.1, 0.5, 0.5]
    json_bodies = [
        {"image_id": image_id, "kind": "face_box", "faces": [{"box": box}]},
        {"image_id": image_id, "kind": "face_box", "box": box},
    ]
    changed = []
    for endpoint, method, url in all_routes(app, prefer={"image_id": image_id}):
        if method == "GET" or url is None or endpoint in PUBLIC_ENDPOINTS:
            continue
        client = app.test_client()
        assert login(client, "admin").status_code == 302
        # A form first, then the JSON bodies the editor's endpoints take, until one changes something.
        for payload in ({"data": form}, *({"json": body} for body in json_bodies)):
            before_rows = _snapshot(db)
            last_event = db.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
            try:
                client.open(url, method=method, **payload)
            except Exception:  # noqa: BLE001 - a crash on dummy input is not this test's subject
                continue
            if _snapshot(db) != before_rows:
                changed.append(endpoint)
                actors = [
                    r[0]
                    for r in db.execute("SELECT user_id FROM events WHERE id > ?", [last_event]).fetchall()
                ]
                assert admin_id in actors, (
                    f"{method} {url} ({endpoint}) changed the store without an audit event"
                )
                break
    # The check exercised real changes (the users page at least).
    assert {"users.add", "users.password"} <= set(changed)
