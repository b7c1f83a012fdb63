import io
import os

import pytest
from PIL import Image

from app.images.cache import crop_region
from app.imports.demo import build_demo
from app.imports.folder import content_id
from tests.conftest import DEMO_DATA

PHOTO = content_id(DEMO_DATA / "2008_001009.jpg")  # 360 x 480
ASTRONAUT = content_id(DEMO_DATA / "astronaut.png")  # 512 x 512 PNG


def get(client, url, **kw):
    """GET and close the response (send_file keeps the file open until then)."""
    r = client.get(url, **kw)
    r.get_data()
    r.close()
    return r


@pytest.fixture
def demo(db):
    build_demo(db)


def test_resized_is_a_cached_jpeg_with_etag_and_304(admin_client, app, demo):
    r = get(admin_client, f"/images/{PHOTO}/256")
    assert r.status_code == 200 and r.mimetype == "image/jpeg"
    im = Image.open(io.BytesIO(r.data))
    assert im.format == "JPEG" and im.size == (192, 256)
    cc = r.headers["Cache-Control"]
    assert "private" in cc and "max-age=31536000" in cc and "immutable" in cc and "public" not in cc
    etag = r.headers["ETag"]
    cached = os.path.join(app.config["CACHE_DIR"], "images", "256", PHOTO[:2], f"{PHOTO}.jpg")
    assert os.path.isfile(cached)
    # A second request serves the cached file, not a new render (which would replace it: a new inode);
    # it marks the file used (mtime), for the cache's least-recently-used eviction.
    os.utime(cached, (1, 1))
    inode = os.stat(cached).st_ino
    assert get(admin_client, f"/images/{PHOTO}/256").data == r.data
    assert os.stat(cached).st_ino == inode and os.stat(cached).st_mtime > 1
    r304 = get(admin_client, f"/images/{PHOTO}/256", headers={"If-None-Match": etag})
    assert r304.status_code == 304 and r304.data == b""


def test_resized_never_upscales_and_converts_png(admin_client, demo):
    r = get(admin_client, f"/images/{ASTRONAUT}/1024")
    im = Image.open(io.BytesIO(r.data))
    assert (im.format, im.size, im.mode) == ("JPEG", (512, 512), "RGB")


def test_original_is_the_stored_file(admin_client, demo):
    r = get(admin_client, f"/images/{PHOTO}")
    assert r.status_code == 200 and r.data == (DEMO_DATA / "2008_001009.jpg").read_bytes()
    assert "immutable" in r.headers["Cache-Control"]
    assert (
        get(admin_client, f"/images/{PHOTO}", headers={"If-None-Match": r.headers["ETag"]}).status_code == 304
    )


def test_crop_shows_the_padded_box_and_says_where(admin_client, demo):
    r = get(admin_client, f"/images/{PHOTO}/crop?box=0.25,0.25,0.5,0.5&size=128")
    assert r.status_code == 200 and r.mimetype == "image/jpeg"
    x0, y0, x1, y1 = map(float, r.headers["X-Crop-Box"].split(","))
    # Box 90x120 px: a square of 120 * 1.5 = 180 px around its centre (135, 180).
    assert (round(x0 * 360), round(y0 * 480), round(x1 * 360), round(y1 * 480)) == (45, 90, 225, 270)
    assert Image.open(io.BytesIO(r.data)).size == (128, 128)
    assert crop_region((0.25, 0.25, 0.5, 0.5), 360, 480) == (x0, y0, x1, y1)
    again = get(admin_client, f"/images/{PHOTO}/crop?box=0.25,0.25,0.5,0.5&size=128")
    assert again.headers["ETag"] == r.headers["ETag"]


def test_crop_at_the_edge_is_clipped():
    # 10 px box, 15 px square around (5, 5): -2.5..12.5, clipped at 0, rounded up to whole pixels.
    assert crop_region((0.0, 0.0, 0.1, 0.1), 100, 100) == (0.0, 0.0, 0.13, 0.13)


@pytest.mark.parametrize(
    "url, code",
    [
        ("/images/0123456789abcdef/256", 404),  # valid id, not in the store
        ("/images/0123456789abcdef", 404),
        ("/images/NOT-AN-ID/256", 400),
        ("/images/..%2F..%2Fetc%2Fpasswd", 404),  # the slashes leave no route to match
        ("/images/0123456789ABCDEF", 400),
        (f"/images/{PHOTO}/300", 400),  # not an allowed size
        (f"/images/{PHOTO}/crop?box=0.5,0.5,0.2,0.9", 400),
        (f"/images/{PHOTO}/crop?box=nope", 400),
        (f"/images/{PHOTO}/crop?box=0.1,0.1,0.2,0.2&size=100000", 400),
    ],
)
def test_bad_requests(admin_client, demo, url, code):
    assert get(admin_client, url).status_code == code


def test_images_need_login(client, demo):
    r = get(client, f"/images/{PHOTO}/256")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_meta_reads_the_size_of_an_open_images_file_and_writes_nothing(admin_client, app, db, tmp_path):
    image_id = "000002b66c9c498e"
    folder = tmp_path / "oi" / "train_0"
    folder.mkdir(parents=True)
    Image.new("RGB", (64, 32), "red").save(folder / f"{image_id}.jpg")
    db.execute(
        "INSERT INTO images (id, split, rotation, created_at) VALUES (?, 'train', 90, 'now')", [image_id]
    )
    db.conn.commit()
    app.config["OPEN_IMAGES_DIR"] = str(tmp_path / "oi")
    r = get(admin_client, f"/images/{image_id}/meta")
    assert r.json["width"] == 64 and r.json["height"] == 32 and r.json["rotation"] == 90
    # A GET does not write: the size comes from the file's header each time it is not stored.
    assert db["images"].get(image_id)["width"] is None
    assert get(admin_client, f"/images/{image_id}/meta").json["width"] == 64
    im = Image.open(io.BytesIO(get(admin_client, f"/images/{image_id}/128").data))
    assert im.size == (64, 32)  # never rotated: the stored pixel grid
