"""Hostile input through the real commands and HTTP: files that are not the store's images, script
URLs in imported fields, huge bodies, Unicode digits (issue 19).

The walk at the end imports hostile Open Images metadata and a hostile set file fetched through S3
(moto's server, as tests/test_storage.py), then follows every link a reviewer can reach.
"""

import io
import json
import re
import shutil
import socket
import time
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from PIL import Image

from app.auth import CSP
from app.db import connect
from app.paths import REPO_ROOT
from tests import test_storage
from tests.conftest import DEMO_DATA, login
from tests.live import PASSWORD, instance_app, serve
from tests.openimages_csv import BBOX_HEADER_V6, CLASSES, FACE, IMAGE_HEADER, bbox_row, image_row, write_csv

PHOTO = DEMO_DATA / "2008_001322.jpg"
NOW = "2026-01-01T00:00:00"
SCRIPT = "javascript:alert(document.domain)"
# Files of the repository that an image row may name but that must never be served.
REPO_FILES = ["pyproject.toml", "README.md", "app/__init__.py"]

moto_url = test_storage.moto_url
aws_env = test_storage.aws_env
s3 = test_storage.s3
bucket = test_storage.bucket


def _cli(app, *args):
    return app.test_cli_runner().invoke(args=["oiap", *args])


def _add_image(db, image_id: str, path: str | None, split: str = "train", **fields):
    cols = ["id", "split", "path", "created_at", *fields]
    db.execute(
        f"INSERT INTO images ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
        [image_id, split, path, NOW, *fields.values()],
    )


def _get(client, url):
    r = client.get(url)
    body = r.get_data()
    r.close()
    return r.status_code, body


ROUTES = ["", "/512", "/meta", "/crop?box=0.1,0.1,0.5,0.5"]


# --- 1. only real images inside the image folders are served ---------------------------


@pytest.mark.parametrize("rel", REPO_FILES)
def test_repository_files_named_by_a_row_are_never_served(admin_client, db, rel):
    _add_image(db, "00000000000000a1", rel)
    secret = (REPO_ROOT / rel).read_bytes()
    for suffix in ROUTES:
        status, body = _get(admin_client, f"/images/00000000000000a1{suffix}")
        assert status == 404, (suffix, status)
        assert secret[:64] not in body


def test_instance_secrets_are_never_served(app, admin_client, db):
    instance = Path(app.instance_path)
    (instance / "secret_key").write_text("s3cr3t-key-material")
    _add_image(db, "00000000000000a2", str(instance / "secret_key"))
    _add_image(db, "00000000000000a3", str(instance / "oiap.sqlite3"))
    for image_id in ("00000000000000a2", "00000000000000a3"):
        for suffix in ROUTES:
            status, body = _get(admin_client, f"/images/{image_id}{suffix}")
            assert status == 404, (image_id, suffix, status)
            assert b"s3cr3t" not in body and b"SQLite format" not in body


def test_a_folder_is_served_once_import_dir_registered_it(app, admin_client, db, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(PHOTO, folder / "a.jpg")
    # A row naming the file, but nobody imported its folder: not served.
    _add_image(db, "00000000000000a4", str(folder / "a.jpg"))
    assert _get(admin_client, "/images/00000000000000a4")[0] == 404
    result = _cli(app, "import-dir", str(folder))
    assert result.exit_code == 0, result.output
    image_id = db.execute(
        "SELECT id FROM images WHERE path = ? AND id != '00000000000000a4'", [str(folder / "a.jpg")]
    ).fetchone()[0]
    for some_id in ("00000000000000a4", image_id):
        status, body = _get(admin_client, f"/images/{some_id}")
        assert status == 200 and body == PHOTO.read_bytes()


def test_a_registered_file_replaced_later_is_checked_again(app, admin_client, db, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(PHOTO, folder / "a.jpg")
    assert _cli(app, "import-dir", str(folder)).exit_code == 0
    image_id = db.execute("SELECT id FROM images").fetchone()[0]
    assert _get(admin_client, f"/images/{image_id}")[0] == 200
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"PRIVATE KEY")
    shutil.copy(PHOTO, outside / "private.jpg")
    # Replaced by a text file, then by symlinks out of the folder (to a text file and to a photo).
    (folder / "a.jpg").write_bytes(b"PRIVATE KEY, not a JPEG")
    for suffix in ROUTES:
        status, body = _get(admin_client, f"/images/{image_id}{suffix}")
        # /meta answers from the row (its size is known) and reads nothing of the file.
        assert status == (200 if suffix == "/meta" else 404) and b"PRIVATE KEY" not in body, (suffix, status)
    for target in ("secret.txt", "private.jpg"):
        (folder / "a.jpg").unlink()
        (folder / "a.jpg").symlink_to(outside / target)
        status, body = _get(admin_client, f"/images/{image_id}")
        assert status == 404 and b"PRIVATE KEY" not in body and body != PHOTO.read_bytes(), target


def test_a_non_image_inside_an_image_folder_is_a_404_on_every_route(app, admin_client, db):
    images = Path(app.config["IMAGES_DIR"])
    images.mkdir(parents=True)
    (images / "x.jpg").write_bytes(b"#!/bin/sh\necho not an image\n")
    _add_image(db, "00000000000000a5", str(images / "x.jpg"))
    for suffix in ROUTES:
        status, body = _get(admin_client, f"/images/00000000000000a5{suffix}")
        assert status == 404, (suffix, status)
        assert b"not an image\n" not in body


def test_a_truncated_jpeg_is_a_404_not_a_500(app, admin_client, db):
    images = Path(app.config["IMAGES_DIR"])
    images.mkdir(parents=True)
    (images / "cut.jpg").write_bytes(PHOTO.read_bytes()[:3000])
    _add_image(db, "00000000000000a6", str(images / "cut.jpg"))
    for suffix in ("/512", "/crop?box=0.1,0.1,0.5,0.5"):
        assert _get(admin_client, f"/images/00000000000000a6{suffix}")[0] == 404, suffix


def test_set_file_paths_outside_the_demo_photos_are_dropped_at_import():
    from app.images.allowed import imported_path

    assert imported_path("app/demo_data/2008_001322.jpg") == "app/demo_data/2008_001322.jpg"
    for bad in (
        *REPO_FILES,
        ".git/config",
        "instance/secret_key",
        "app/demo_data/../../README.md",
        "/etc/passwd",
    ):
        assert imported_path(bad) is None, bad


# --- 5. decoding is bounded: reduced JPEG decode, a pixel cap, an LRU cache ------------------


def _big(tmp_path, fmt: str, size=(4000, 3000)) -> Path:
    path = tmp_path / f"big.{fmt.lower()}"
    with Image.open(PHOTO) as im:
        im.convert("RGB").resize(size).save(path, fmt)
    return path


def test_big_jpeg_decodes_reduced_under_the_pixel_cap_and_png_is_refused(app, admin_client, db, tmp_path):
    images = Path(app.config["IMAGES_DIR"])
    images.mkdir(parents=True)
    # 12 million pixels each; a request may decode 1 million: the JPEG decodes at 1/8, the PNG cannot.
    app.config["IMAGE_MAX_DECODE_PIXELS"] = 1_000_000
    for image_id, fmt in (("00000000000000b1", "JPEG"), ("00000000000000b2", "PNG")):
        shutil.move(_big(tmp_path, fmt), images / f"{image_id}.{fmt.lower()}")
        _add_image(db, image_id, str(images / f"{image_id}.{fmt.lower()}"))
    status, body = _get(admin_client, "/images/00000000000000b1/128")
    assert status == 200 and Image.open(io.BytesIO(body)).size == (128, 96)
    assert _get(admin_client, "/images/00000000000000b1/crop?box=0.4,0.4,0.6,0.6&size=128")[0] == 200
    status, body = _get(admin_client, "/images/00000000000000b2/128")
    assert status == 400 and b"IMAGE_MAX_DECODE_PIXELS" in body
    # A crop of the whole JPEG at 2048 needs it at 1/1 (4096 pixels wide): refused the same way.
    assert _get(admin_client, "/images/00000000000000b1/crop?box=0,0,1,1&size=2048")[0] == 400


def test_cache_is_bounded_and_evicts_the_least_recently_used(app, admin_client):
    from app.images.cache_bound import cache_bytes

    db = connect(app.config["DATABASE"])
    result = _cli(app, "demo")
    assert result.exit_code == 0, result.output
    image_id = db.execute("SELECT id FROM images WHERE path LIKE '%2008_001322.jpg'").fetchone()[0]
    db.close()
    app.config["IMAGE_CACHE_BYTES"] = 40_000
    first = f"/images/{image_id}/crop?box=0.1,0.1,0.3,0.3&size=256"
    assert _get(admin_client, first)[0] == 200
    for i in range(30):
        x = 0.2 + i / 100
        assert (
            _get(admin_client, f"/images/{image_id}/crop?box={x:.2f},0.2,{x + 0.2:.2f},0.5&size=256")[0]
            == 200
        )
        time.sleep(0.01)  # distinct mtimes
        assert _get(admin_client, first)[0] == 200  # used again: never the oldest
    assert cache_bytes(app.config) <= 40_000
    crops = list((Path(app.config["CACHE_DIR"]) / "crops").rglob("*.jpg"))
    assert 1 < len(crops) < 31
    assert any("0.1000-0.1000-0.3000-0.3000" in p.name for p in crops)


# --- 2. only http(s) links from imported fields; a strict CSP ------------------------------


def test_csp_is_strict_and_no_template_has_inline_script():
    assert CSP == "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    handler = re.compile(r"<[^>]*\son[a-z]+\s*=", re.I)
    for path in (REPO_ROOT / "templates").rglob("*.html"):
        text = path.read_text()
        assert not handler.search(text), f"{path}: an on...= handler would be blocked by the CSP"
        for m in re.finditer(r"<script\b([^>]*)>", text):
            assert "src=" in m.group(1) or "application/json" in m.group(1), f"{path}: inline script"
        assert "javascript:" not in text, path


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("https://www.flickr.com/people/someone/", True),
        ("http://example.org/a?b=c", True),
        (SCRIPT, False),
        ("JavaScript:alert(1)", False),
        (" javascript:alert(1)", False),
        ("java\tscript:alert(1)", False),
        ("data:text/html,<script>alert(1)</script>", False),
        ("vbscript:msgbox(1)", False),
        ("//evil.example/x", False),
        ("/relative/path", False),
        ("https:evil", False),
        ("", False),
    ],
)
def test_http_url(value, kept):
    from app.links import http_url

    assert (http_url(value) == value) is kept


# --- 3. request bodies are capped before they are read ----------------------------------------


def test_a_huge_post_is_refused_with_413_before_it_is_read(tmp_path):
    app = instance_app(tmp_path / "instance")
    with serve(app) as url:
        host, port = urlsplit(url).hostname, urlsplit(url).port
        with socket.create_connection((host, port), timeout=10) as sock:
            # 300 MB announced, 1 KiB sent: the answer must come without waiting for the rest.
            sock.sendall(
                b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                b"Content-Length: 314572800\r\n\r\n" + b"a" * 1024
            )
            t0 = time.monotonic()
            head = sock.recv(4096)
            assert head.startswith(b"HTTP/1.1 413"), head[:80]
            assert time.monotonic() - t0 < 5
    client = app.test_client()
    login(client, "rev")
    r = client.post("/edit/save", data=b"x" * (2 * 1024 * 1024), content_type="application/json")
    assert r.status_code == 413 and b"larger than" in r.data


# --- 6. Unicode digits in numeric parameters are a 4xx, never a 500 ----------------------------


def test_unicode_digits_in_numeric_params_are_not_500(app, admin_client):
    assert _cli(app, "demo").exit_code == 0
    db = connect(app.config["DATABASE"])
    set_id, ann_id = db.execute("SELECT set_id, id FROM annotations ORDER BY id LIMIT 1").fetchone()
    image_id = db.execute("SELECT image_id FROM annotations WHERE id = ?", [ann_id]).fetchone()[0]
    db.close()
    for url in (
        f"/review/{set_id}?trail=²",
        f"/review/{set_id}?trail=1,²,3",
        f"/sets/{set_id}?after={image_id}.²",
        f"/sets/{set_id}?before={image_id}.١٢",
        f"/edit/image/{image_id}?kind=face_box&set=²",
        f"/edit/annotation/{ann_id}?set=²",
        f"/edit/image/{image_id}/faces?kind=face_box&set=²",
        "/audit?user=²",
        "/audit?set=²&before=³",
        "/export/?set=²",
    ):
        r = admin_client.get(url)
        assert r.status_code < 500, (url, r.status_code)


# --- the walk: hostile metadata and set files, every page a reviewer can reach -------------------


def _hostile_metadata(d: Path) -> Path:
    d.mkdir()
    ids = ["00000000000000c1", "00000000000000c2"]
    rows = [image_row(i, "train") for i in ids]
    for row in rows:
        row[2] = row[3] = SCRIPT  # OriginalURL, OriginalLandingURL
        row[4] = "javascript:alert(1)"  # License
        row[5] = SCRIPT  # AuthorProfileURL
        row[6] = '<img src=x onerror="alert(1)">'  # Author
    write_csv(d / "train-images-boxable-with-rotation.csv", IMAGE_HEADER, rows)
    write_csv(d / "class-descriptions-boxable.csv", None, CLASSES)
    write_csv(d / "oidv6-train-annotations-bbox.csv", BBOX_HEADER_V6, [bbox_row(i, FACE) for i in ids])
    return d


LINK_TO_SCRIPT = re.compile(r"""(?:href|src|action|formaction|hx-\w+)\s*=\s*["']?\s*javascript:""", re.I)
LINK = re.compile(r"""(?:href|src|hx-get|action)\s*=\s*["']([^"']*)["']""", re.I)


def _walk(client, start: str, limit: int = 400) -> dict[str, tuple[int, bytes]]:
    """GET every same-site URL reachable from start (by href, src, hx-get, form action)."""
    seen: dict[str, tuple[int, bytes]] = {}
    queue = [start]
    per_route: dict[str, int] = {}
    while queue and len(seen) < limit:
        url = queue.pop(0)
        if url in seen:
            continue
        r = client.get(url)
        body = r.get_data()
        r.close()
        seen[url] = (r.status_code, body)
        if r.status_code in (301, 302, 303) and r.location:
            queue.append(urljoin(url, r.location))
        if not r.mimetype or "html" not in r.mimetype:
            continue
        for link in LINK.findall(body.decode("utf-8", "replace")):
            link = link.replace("&amp;", "&")
            parts = urlsplit(urljoin(url, link))
            if parts.scheme not in ("", "http") or parts.netloc not in ("", "localhost"):
                continue
            if parts.path in ("/logout",) or parts.path.startswith("/static/"):
                continue
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            # Enough of each kind of page: the queue pages forever through the same routes.
            route = re.sub(r"\d+|[0-9a-f]{16}", "N", parts.path)
            if per_route.get(route, 0) >= 25 or target in seen:
                continue
            per_route[route] = per_route.get(route, 0) + 1
            queue.append(target)
    return seen


def test_reviewer_walks_every_page_after_hostile_imports(tmp_path, moto_url, s3, bucket):
    config = {"S3_BUCKET": bucket, "S3_ENDPOINT_URL": moto_url, "S3_PREFIX": "team", "S3_MAX_ATTEMPTS": 1}
    # A teammate's instance whose rows were tampered with: paths into the repository, script URLs.
    a = instance_app(tmp_path / "a", **config)
    assert _cli(a, "demo").exit_code == 0
    db = connect(a.config["DATABASE"])
    demo_ids = [r[0] for r in db.execute("SELECT id FROM images ORDER BY id")]
    db.execute(
        "UPDATE images SET path = 'pyproject.toml', author_url = ?, url = ? WHERE id = ?",
        [SCRIPT, SCRIPT, demo_ids[0]],
    )
    db.execute(
        "UPDATE images SET path = '.git/config', licence = ? WHERE id = ?",
        ["javascript:alert(2)", demo_ids[1]],
    )
    db.execute("UPDATE images SET path = 'app/demo_data/../../README.md' WHERE id = ?", [demo_ids[2]])
    db.conn.commit()
    db.close()
    pushed = _cli(a, "push")
    assert pushed.exit_code == 0, pushed.output

    b = instance_app(tmp_path / "b", WTF_CSRF_ENABLED=False, **config)
    fetched = _cli(b, "fetch")
    assert fetched.exit_code == 0, fetched.output
    meta = _cli(b, "import-openimages", "--meta-dir", str(_hostile_metadata(tmp_path / "meta")))
    assert meta.exit_code == 0, meta.output
    db = connect(b.config["DATABASE"])
    assert db.execute("SELECT count(*) FROM annotation_sets").fetchone()[0] >= 3
    rows = {r["id"]: r for r in db.query("SELECT * FROM images")}
    assert rows[demo_ids[0]]["path"] is None and rows[demo_ids[1]]["path"] is None
    assert rows[demo_ids[2]]["path"] is None
    assert not any(SCRIPT in json.dumps(r) for r in rows.values())
    # A row imported before the fix still holds a script URL: pages must not link it either.
    db.execute("UPDATE images SET author_url = ?, licence = ? WHERE id = ?", [SCRIPT, SCRIPT, demo_ids[3]])
    db.conn.commit()
    db.close()

    client = b.test_client()
    assert login(client, "rev").status_code == 302
    pages = _walk(client, "/")
    secrets = [(REPO_ROOT / f).read_bytes()[:200] for f in ("pyproject.toml", "README.md")]
    assert len(pages) > 40
    assert any(u.startswith("/review/") for u in pages) and any(u.startswith("/images/") for u in pages)
    for url, (status, body) in pages.items():
        assert status < 500, (url, status)
        # Shown as text (a licence that says so) it is harmless; as a link target it would run.
        assert not LINK_TO_SCRIPT.search(body.decode("utf-8", "replace")), url
        assert not any(s in body for s in secrets), url
        if url.startswith("/images/") and status == 200 and not url.endswith("/meta"):
            assert body[:2] == b"\xff\xd8" or body[:8] == b"\x89PNG\r\n\x1a\n", url


# --- 6. models add loads the file and runs its runner once -----------------------------------


def test_models_add_refuses_files_that_cannot_run_and_try_works_on_what_it_accepts(app, runner, tmp_path):
    from app.annotators.facemesh68 import MODEL_PATH
    from tests.test_storage import _tiny_onnx

    text = tmp_path / "text.onnx"
    text.write_text("not a model")
    tiny = tmp_path / "tiny.onnx"
    _tiny_onnx(tiny)

    def add(path, *extra):
        return runner.invoke(args=["oiap", "models", "add", str(path), "--kind", "face_landmarks68", *extra])

    r = add(text)
    assert r.exit_code != 0 and "not an ONNX model onnxruntime can load" in r.output, r.output
    r = add(tiny, "--runner", "landmarks68:facemesh68")
    assert r.exit_code != 0 and "does not run with runner landmarks68:facemesh68" in r.output, r.output
    assert "inputs: x [1, 3]" in r.output  # the file's own signature, to see what is wrong
    assert add(tiny, "--runner", "landmarks68:nope").exit_code != 0
    assert add(tiny, "--runner", "mtcnn").exit_code != 0
    db = connect(app.config["DATABASE"])
    assert db.execute("SELECT count(*) FROM models WHERE source = 'added'").fetchone()[0] == 0
    r = add(MODEL_PATH, "--runner", "landmarks68:facemesh68", "--name", "mesh-copy")
    assert r.exit_code == 0 and "mesh-copy" in r.output, r.output
    model_id = db.execute("SELECT id FROM models WHERE name = 'mesh-copy'").fetchone()[0]
    db.close()
    assert _cli(app, "demo").exit_code == 0
    db = connect(app.config["DATABASE"])
    image_id = db.execute("SELECT id FROM images WHERE path LIKE '%2008_001322.jpg'").fetchone()[0]
    db.close()
    client = app.test_client()
    login(client, "rev")
    r = client.get(f"/models/{model_id}/try?image_id={image_id}")
    assert r.status_code == 200 and b"<svg" in r.data


# --- 8. next= never leaves the site ----------------------------------------------------------

OFFSITE = [
    "/%5Cevil.example",
    "/%5C%5Cevil.example",
    "%2F%2Fevil.example",
    "//evil.example",
    "https://evil.example/",
    "/%09/evil.example",
    "/%0A/evil.example",
    "javascript:alert(1)",
    "/\\evil.example",
]


def test_next_never_leads_off_site(app):
    assert _cli(app, "demo").exit_code == 0
    db = connect(app.config["DATABASE"])
    ann_id = db.execute("SELECT id FROM annotations ORDER BY id LIMIT 1").fetchone()[0]
    db.close()
    client = app.test_client()
    for target in OFFSITE:
        # After login: the redirect stays on the site.
        r = client.post(f"/login?next={target}", data={"username": "rev", "password": PASSWORD})
        assert r.status_code == 302 and r.location == "/", (target, r.location)
        # The editor's Back link.
        status, body = _get(client, f"/edit/annotation/{ann_id}?next={target}")
        assert status == 200
        assert b"evil.example" not in body and b'id="ed-back"' not in body, target
        client.post("/logout")
    login(client, "rev")
    status, body = _get(client, f"/edit/annotation/{ann_id}?next=/review/1%3Fitem%3D2")
    assert b'href="/review/1?item=2" id="ed-back"' in body


# --- 5. model tries: reduced decode, one per user, a small pool -------------------------------


def _try_setup(app, tmp_path):
    from app.annotators.facemesh68 import MODEL_PATH

    r = _cli(
        app,
        "models",
        "add",
        str(MODEL_PATH),
        "--kind",
        "face_landmarks68",
        "--runner",
        "landmarks68:facemesh68",
    )
    assert r.exit_code == 0, r.output
    images = Path(app.config["IMAGES_DIR"])
    images.mkdir(parents=True)
    db = connect(app.config["DATABASE"])
    for image_id, fmt in (("00000000000000d1", "JPEG"), ("00000000000000d2", "PNG")):
        shutil.move(_big(tmp_path, fmt), images / f"{image_id}.{fmt.lower()}")
        _add_image(db, image_id, str(images / f"{image_id}.{fmt.lower()}"), width=4000, height=3000)
        # A stored face box, so the landmark model runs on it.
        db.execute(
            "INSERT INTO annotation_sets (name, kind, source, status, created_at) VALUES (?, 'face_box', 'human', 'open', ?)",
            [f"faces-{image_id}", NOW],
        )
        set_id = db.execute("SELECT max(id) FROM annotation_sets").fetchone()[0]
        db.execute(
            "INSERT INTO annotations (set_id, image_id, kind, label, x0, y0, x1, y1, created_at)"
            " VALUES (?, ?, 'face_box', '/m/0dzct', 0.4, 0.2, 0.6, 0.5, ?)",
            [set_id, image_id, NOW],
        )
    model_id = db.execute("SELECT id FROM models WHERE source = 'added'").fetchone()[0]
    users = dict(db.execute("SELECT username, id FROM users").fetchall())
    db.close()
    return model_id, users


def test_try_decodes_big_photos_reduced_and_refuses_what_it_cannot_reduce(app, admin_client, tmp_path):
    model_id, _ = _try_setup(app, tmp_path)
    app.config.update(IMAGE_MAX_DECODE_PIXELS=1_000_000, TRY_DECODE_SIDE=512)
    # 12 million pixels: the JPEG decodes at 1/8 (500x375), under the cap; the PNG cannot.
    status, body = _get(admin_client, f"/models/{model_id}/try?image_id=00000000000000d1")
    assert status == 200 and b"<svg" in body, body[-500:]
    status, body = _get(admin_client, f"/models/{model_id}/try?image_id=00000000000000d2")
    assert status == 400 and b"IMAGE_MAX_DECODE_PIXELS" in body


def test_one_try_per_user_and_a_small_pool(app, admin_client, reviewer_client, tmp_path):
    from app.models.trying import gate

    model_id, users = _try_setup(app, tmp_path)
    app.config.update(TRY_POOL=2, TRY_WAIT_SECONDS=0.2)
    url = f"/models/{model_id}/try?image_id=00000000000000d1"
    tries = gate(app)
    with tries.slot(users["rev"]):  # rev's first try, still running
        status, body = _get(reviewer_client, url)
        assert status == 429 and b"already have a model try running" in body
        assert _get(admin_client, url)[0] == 200  # another user: the pool has room
        with tries.slot(12345):  # the pool is full now
            status, body = _get(admin_client, url)
            assert status == 429 and b"Other model tries are running" in body
    assert _get(reviewer_client, url)[0] == 200


def test_a_crop_decoded_reduced_shows_the_same_region(app, admin_client, db, tmp_path):
    import numpy as np

    images = Path(app.config["IMAGES_DIR"])
    images.mkdir(parents=True)
    path = images / "big.jpg"
    shutil.move(_big(tmp_path, "JPEG"), path)
    _add_image(db, "00000000000000b3", str(path))
    r = admin_client.get("/images/00000000000000b3/crop?box=0.33,0.41,0.47,0.58&size=128")
    got = np.asarray(Image.open(io.BytesIO(r.data)).convert("RGB"), dtype=np.float64)
    x0, y0, x1, y1 = (float(v) for v in r.headers["X-Crop-Box"].split(","))
    r.close()
    with Image.open(path) as im:  # the same region from every pixel, as before the reduced decode
        full = im.convert("RGB").crop(
            (round(x0 * 4000), round(y0 * 3000), round(x1 * 4000), round(y1 * 3000))
        )
    full.thumbnail((128, 128), Image.Resampling.LANCZOS)
    want = np.asarray(full, dtype=np.float64)
    assert got.shape == want.shape
    assert (
        np.abs(got - want).mean() < 4.0
    )  # JPEG re-encoding and resampling differ; a shifted region would not


def test_try_of_a_model_row_that_was_never_checked_is_a_400(app, admin_client, tmp_path):
    from app.models.registry import register_model
    from tests.test_storage import _tiny_onnx

    _try_setup(app, tmp_path)
    tiny = tmp_path / "tiny.onnx"
    _tiny_onnx(tiny)
    # A row from before `models add` checked files (or fetched from a bucket): registered unchecked.
    db = connect(app.config["DATABASE"])
    model_id = register_model(
        db,
        tiny,
        "face_landmarks68",
        name="legacy",
        models_dir=app.config["MODELS_DIR"],
        params={"runner": "landmarks68:facemesh68"},
    )
    db.conn.commit()
    db.close()
    status, body = _get(admin_client, f"/models/{model_id}/try?image_id=00000000000000d1")
    assert status == 400 and b"does not run with runner landmarks68:facemesh68" in body
