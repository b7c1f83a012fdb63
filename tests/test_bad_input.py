"""Bad input at the entry points: CSV files, image files, editor JSON bodies, form fields, ids in URLs.

Each gets a clear 4xx or a reported line, never a 500 or a traceback.
"""

import json
import struct
import zlib

import pytest
from PIL import Image

from app.db import connect
from app.imports.demo import build_demo
from tests.conftest import DEMO_DATA

HEADER = "image_id,split,source,weight,annotation_id,set,x0,y0,x1,y1\n"


@pytest.fixture
def demo(app):
    db = connect(app.config["DATABASE"])
    build_demo(db)
    image_id = db.execute("SELECT id FROM images ORDER BY id LIMIT 1").fetchone()[0]
    db.close()
    return image_id


def _import(runner, path, kind="face_box", name="bad"):
    return runner.invoke(args=["oiap", "import-csv", str(path), "--kind", kind, "--set", name, "--json"])


def _count(app, name):
    db = connect(app.config["DATABASE"])
    try:
        row = db.execute(
            "SELECT count(*) FROM annotations a JOIN annotation_sets s ON s.id = a.set_id WHERE s.name = ?",
            [name],
        ).fetchone()
        return row[0]
    finally:
        db.close()


# ---- CSV imports ----------------------------------------------------------------------------------


def test_csv_in_utf16_and_with_a_bom_imports(app, runner, demo, tmp_path):
    row = f"{demo},train,human,1,1,x,0.1,0.1,0.5,0.5\n"
    (tmp_path / "u16.csv").write_bytes((HEADER + row).encode("utf-16"))
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + (HEADER + row).encode())
    for name in ("u16", "bom"):
        out = _import(runner, tmp_path / f"{name}.csv", name=name)
        assert out.exit_code == 0, out.output
        assert json.loads(out.output)["imported"] == 1


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(lambda row: (HEADER + row.replace("train", "träin")).encode("latin-1"), id="latin-1"),
        pytest.param(lambda row: bytes(range(256)) * 8, id="binary"),
        pytest.param(lambda row: HEADER.encode() + b"\xff\xfe\x00garbage\n", id="bad-byte-on-line-2"),
    ],
)
def test_csv_in_a_wrong_encoding_is_a_clear_error_and_imports_nothing(app, runner, demo, tmp_path, content):
    path = tmp_path / "bad.csv"
    path.write_bytes(content(f"{demo},train,human,1,1,x,0.1,0.1,0.5,0.5\n"))
    out = _import(runner, path)
    assert out.exit_code == 1 and "Traceback" not in out.output
    assert "not UTF-8" in out.output or "unrecognised CSV" in out.output
    assert _count(app, "bad") == 0


@pytest.mark.parametrize(
    "line, reason",
    [
        ("{id},train,human,1,1,x,nan,0.1,0.5,0.5", "inverted"),
        ("{id},train,human,1,1,x,0.1,0.1,inf,0.5", "finite"),
        ("{id},train,human,1,1,x,-5,-5,1e308,1e308", "outside the image"),
        ("{id},train,human,1,1,x,0.1,0.1,1.5,0.5", "outside the image"),
        ("{id},train,human,1,1,x,a,b,c,d", "not a number"),
        ("{id},train", "expected 10 columns"),
        ('"{id}",train,human,1,1,x,0.1,0.1,0.5,0.5,' + "9" * 200_000, "field larger"),
        ('"' + "a" * 200_000 + '",train,human,1,1,x,0.1,0.1,0.5,0.5', "field larger"),
        ("{id}\x00,train,human,1,1,x,0.1,0.1,0.5,0.5", "unknown image"),
        ("zz💥,train,human,1,1,x,0.1,0.1,0.5,0.5", "unknown image"),
        ('"unterminated,train', "expected 10 columns"),
    ],
)
def test_csv_bad_rows_are_reported_by_line_and_the_good_ones_imported(
    app, runner, demo, tmp_path, line, reason
):
    good = f"{demo},train,human,1,1,x,0.2,0.2,0.6,0.6\n"
    path = tmp_path / "rows.csv"
    path.write_text(HEADER + good + line.format(id=demo) + "\n", encoding="utf-8")
    out = _import(runner, path)
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["imported"] == 1
    assert [e["line"] for e in report["errors"]] == [3]
    assert reason in report["errors"][0]["reason"]


def test_csv_original_format_with_infinite_pixels_is_refused(app, runner, demo, tmp_path):
    path = tmp_path / "orig.csv"
    path.write_text(
        f"img_id,source,a,b,c,d,e,f,g,h\n{demo},x,1,1,inf,inf,0,0,0,0\n{demo},x,10,10,50,50,0,0,0,0\n",
        encoding="utf-8",
    )
    report = json.loads(_import(runner, path).output)
    assert report["imported"] == 1 and report["errors"][0]["line"] == 2


# ---- image files ----------------------------------------------------------------------------------


def _png_header_only(path, width, height):
    # A PNG whose header claims huge dimensions (a decompression bomb) with almost no data.
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00"))
        + chunk(b"IEND", b"")
    )


def test_import_dir_reports_broken_files_and_registers_the_good_one(app, runner, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    good = (DEMO_DATA / "2008_002470.jpg").read_bytes()
    (folder / "good.jpg").write_bytes(good)
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "garbage.jpg").write_bytes(b"not an image at all" * 10)
    (folder / "truncated.png").write_bytes((DEMO_DATA / "astronaut.png").read_bytes()[:40])
    _png_header_only(folder / "bomb.png", 60_000, 60_000)
    Image.new("RGB", (4, 4)).save(folder / "gif.jpg", format="GIF")
    out = runner.invoke(args=["oiap", "import-dir", str(folder), "--json"])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output[out.output.index("{") :])
    assert summary["added"] == 1
    assert len(summary["errors"]) == 5, summary["errors"]


# ---- the editor's JSON bodies ---------------------------------------------------------------------


def _deep(n):
    return "[" * n + "]" * n


@pytest.mark.parametrize(
    "body",
    [
        "{not json",
        "[]",
        "null",
        '"a string"',
        '{"image_id": 5, "kind": "face_box", "faces": []}',
        '{"image_id": "{id}", "kind": ["face_box"], "faces": []}',
        '{"image_id": "{id}", "kind": "face_box", "faces": "all"}',
        '{"image_id": "{id}", "kind": "face_box", "faces": [{"box": [NaN, 0, 1, 1]}]}',
        '{"image_id": "{id}", "kind": "face_box", "faces": [{"box": [0, 0, Infinity, 1]}]}',
        '{"image_id": "{id}", "kind": "face_box", "faces": [{"box": [0, 0, 1e400, 1]}]}',
        '{"image_id": "{id}", "kind": "face_box", "faces": [{"box": [0.1, 0.1, 0.2, 0.2], "id": 99999999999999999999999}]}',
        '{"image_id": "{id}", "kind": "face_box", "faces": [{"box": [0.1, 0.1, 0.2, 0.2], "origin_id": -1}]}',
        '{"image_id": "{id}", "kind": "face_box", "faces": [{"box": [0.1, 0.1, 0.2, 0.2], "version": "1", "id": 1}]}',
        '{"image_id": "{id}", "kind": "face_landmarks68", "faces": [{"box": [0.1, 0.1, 0.2, 0.2], "points": [[0.1, 0.1]]}]}',
        '{"image_id": "{id}", "kind": "face_box", "faces": ['
        + ",".join(['{"box": [0.1, 0.1, 0.2, 0.2]}'] * 5000)
        + "]}",
        '{"image_id": "{id}", "kind": "face_box", "faces": ' + _deep(100_000) + "}",
        '{"image_id": "{id}", "kind": "face_box", "faces": [{"box": [0.1, 0.1, 0.2, 0.2], "deleted": "yes"}]}',
        '{"image_id": "\\u0000", "kind": "face_box", "faces": [{"box": [0.1, 0.1, 0.2, 0.2]}]}',
    ],
)
def test_editor_refuses_bad_json_bodies_with_400(app, admin_client, demo, body):
    for url in ("/edit/save", "/edit/place"):
        r = admin_client.post(url, data=body.replace("{id}", demo), content_type="application/json")
        assert r.status_code in (400, 404), (url, r.status_code, r.data[:200])
        assert "error" in r.get_json()


def test_editor_refuses_a_body_that_is_not_json_or_too_large(app, admin_client, demo):
    r = admin_client.post("/edit/save", data="image_id=x", content_type="application/x-www-form-urlencoded")
    assert r.status_code == 400
    r = admin_client.post("/edit/save", data=b"\xff\xfe\x00\x01", content_type="application/json")
    assert r.status_code == 400
    big = json.dumps(
        {"image_id": demo, "kind": "face_box", "faces": [{"box": [0.1, 0.1, 0.2, 0.2]}] * 20_000}
    )
    r = admin_client.post("/edit/save", data=big, content_type="application/json")
    assert r.status_code == 400 and "larger than" in r.get_json()["error"]


# ---- form fields and ids in URLs ------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        {"min_score": "abc"},
        {"min_score": "0.9", "max_score": "0.1"},
        {"status": "💥"},
        {"order": "x" * 10_000},
        {"split": "\x00"},
        {"cursor": "1:2:3"},
        {"cursor": "a:b"},
        {"item": "99999999999999999999999"},
    ],
)
def test_review_filters_refused_with_400(app, admin_client, demo, query):
    r = admin_client.get("/review/1", query_string=query)
    assert r.status_code == 400, (query, r.status_code)


def test_review_of_a_missing_item_is_404_not_a_foreign_key_error(app, admin_client, demo):
    assert admin_client.get("/review/1", query_string={"item": "0"}).status_code == 404
    assert admin_client.get("/review/1", query_string={"item": "-5"}).status_code == 404


@pytest.mark.parametrize(
    "path", ["/sets/99999999999999999999999", "/review/9223372036854775808", "/edit/annotation/-1"]
)
def test_ids_beyond_sqlite_integers_are_404(app, admin_client, demo, path):
    assert admin_client.get(path).status_code == 404


@pytest.mark.parametrize(
    "image_id", ["zz", "%F0%9F%92%A5", "a" * 300, "..%2F..%2Fetc%2Fpasswd", "ffffffffffffffff"]
)
def test_bad_image_ids_in_urls_are_4xx(app, admin_client, demo, image_id):
    for path in ("/images/{}", "/images/{}/640", "/images/{}/crop", "/images/{}/meta", "/edit/image/{}"):
        r = admin_client.get(path.format(image_id))
        r.close()
        assert 400 <= r.status_code < 500, (path, r.status_code)


@pytest.mark.parametrize(
    "form",
    [
        {"username": "", "password": ""},
        {"username": "x" * 100_000, "password": "y"},
        {"username": "admin\x00", "password": "z"},
        {"username": "💥", "password": "💥" * 1000},
    ],
)
def test_login_form_with_hostile_fields_is_refused_without_5xx(app, client, form):
    r = client.post("/login", data=form)
    assert r.status_code in (200, 400, 401, 429), r.status_code


@pytest.mark.parametrize(
    "form",
    [
        {"username": "", "password": "long enough password", "role": "reviewer"},
        {"username": "a" * 10_000, "password": "long enough password", "role": "reviewer"},
        {"username": "bob\x00", "password": "long enough password", "role": "reviewer"},
        {"username": "bob", "password": "short", "role": "reviewer"},
        {"username": "bob", "password": "long enough password", "role": "root"},
        {"username": "admin", "password": "long enough password", "role": "reviewer"},
    ],
)
def test_user_admin_forms_refuse_bad_fields(app, admin_client, form):
    r = admin_client.post("/admin/users", data=form)
    assert r.status_code < 500
    db = connect(app.config["DATABASE"])
    try:
        assert db.execute("SELECT count(*) FROM users").fetchone()[0] == 2
    finally:
        db.close()


# ---- import-openimages ----------------------------------------------------------------------------

from tests.openimages_csv import FACE, IMAGE_HEADER, bbox_row, image_row  # noqa: E402
from tests.test_import_openimages import IDS  # noqa: E402
from tests.test_import_openimages import v6_dir as _v6_dir  # noqa: E402


@pytest.fixture
def meta_dir(tmp_path):
    """The import-openimages tests' v6 metadata folder."""
    return _v6_dir.__wrapped__(tmp_path)


def _bbox_text(d):
    return (d / "oidv6-train-annotations-bbox.csv").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "damage",
    [
        "images-latin-1",
        "images-utf-16",
        "images-nul",
        "images-huge-field",
        "bbox-latin-1",
        "bbox-utf-16",
        "bbox-nul",
        "bbox-nan",
        "bbox-huge-field",
        "bbox-wrong-types",
        "bbox-empty",
    ],
)
def test_import_openimages_damaged_files_are_reported_not_a_traceback(app, runner, meta_dir, damage):
    v6_dir = meta_dir
    images = v6_dir / "train-images-boxable-with-rotation.csv"
    bbox = v6_dir / "oidv6-train-annotations-bbox.csv"
    row = ",".join(image_row(IDS[5], "train", title="Café"))
    face = ",".join(bbox_row(IDS[0], FACE))
    if damage == "images-latin-1":
        images.write_bytes(images.read_bytes() + (row + "\n").encode("latin-1"))
    elif damage == "images-utf-16":
        images.write_bytes(images.read_text(encoding="utf-8").encode("utf-16"))
    elif damage == "images-nul":
        images.write_bytes(images.read_bytes() + row.replace("Café", "Ca\x00fe").encode() + b"\n")
    elif damage == "images-huge-field":
        images.write_text(images.read_text() + row.replace("Café", '"' + "x" * 200_000 + '"') + "\n")
    elif damage == "bbox-latin-1":
        bbox.write_bytes(bbox.read_bytes() + face.replace("xclick", "é").encode("latin-1") + b"\n")
    elif damage == "bbox-utf-16":
        bbox.write_bytes(_bbox_text(v6_dir).encode("utf-16"))
    elif damage == "bbox-nul":
        bbox.write_bytes(bbox.read_bytes() + face.replace("xclick", "x\x00").encode() + b"\n")
    elif damage == "bbox-nan":
        bbox.write_text(_bbox_text(v6_dir) + face.replace("0.100000", "nan") + "\n")
    elif damage == "bbox-huge-field":
        bbox.write_text(_bbox_text(v6_dir) + face.replace("xclick", '"' + "x" * 200_000 + '"') + "\n")
    elif damage == "bbox-wrong-types":
        bbox.write_text(_bbox_text(v6_dir) + face.replace(",0,1,0,0,0,", ",a,[],{},1.5,-,") + "\n")
    elif damage == "bbox-empty":
        bbox.write_bytes(b"")
    assert IMAGE_HEADER  # the fixture's images file keeps Google's header
    out = runner.invoke(args=["oiap", "import-openimages", "--meta-dir", str(v6_dir), "--json"])
    assert out.exception is None or isinstance(out.exception, SystemExit), repr(out.exception)
    assert "Traceback" not in out.output
    if out.exit_code != 0:
        assert "Error:" in out.output
