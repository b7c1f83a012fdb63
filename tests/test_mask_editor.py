"""The mask editor's server side: the crop's superpixels and photo, the grids, saving with versions."""

import html
import io
import json
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from app.annotations import masks
from app.annotations.rows import get_annotation
from app.editor import mask_edits, superpixels
from app.images import cache_bound
from tests.conftest import login
from tests.mask_seed import seed_masks


@pytest.fixture
def data(db):
    """The demo photos with a face-shaped machine mask per face."""
    return seed_masks(db)


def biggest(db, data) -> dict:
    # The largest mask: the crop with the most superpixels.
    return max(data["masks"], key=lambda m: masks.area(get_annotation(db, m["id"])["mask"]))


def page_config(resp) -> dict:
    m = re.search(rb'<script type="application/json" id="mask-config">(.*?)</script>', resp.data, re.S)
    assert m, resp.data[:500]
    return json.loads(m.group(1))


def grid_labels(client, cfg) -> np.ndarray:
    with client.get(cfg["labels_url"]) as resp:
        assert resp.status_code == 200
        w, h = cfg["crop"]["width"], cfg["crop"]["height"]
        assert resp.headers["X-Grid"] == f"{w}x{h}"
        return np.frombuffer(zlib.decompress(resp.data), dtype="<u2").reshape(h, w)


def test_page_labels_and_photo_of_a_machine_mask(admin_client, db, data):
    m = biggest(db, data)
    resp = admin_client.get(f"/edit/mask/{m['id']}")
    assert resp.status_code == 200
    cfg = page_config(resp)
    crop = cfg["crop"]
    assert cfg["annotation"] == {**cfg["annotation"], "id": m["id"], "version": None, "source": "model"}
    # The crop holds the box with a margin, inside the image, at full resolution (small photo).
    row = get_annotation(db, m["id"])
    w, h = m["image"]["width"], m["image"]["height"]
    assert crop["x0"] <= row["x0"] * w and crop["x1"] >= row["x1"] * w and crop["x1"] <= w
    assert crop["y0"] <= row["y0"] * h and crop["y1"] >= row["y1"] * h and crop["y1"] <= h
    assert (crop["width"], crop["height"]) == (crop["x1"] - crop["x0"], crop["y1"] - crop["y0"])
    # The page's mask is the stored one's crop.
    work = mask_edits.from_runs(cfg["runs"], crop["width"], crop["height"])
    full = masks.decode(row["mask"])
    assert np.array_equal(work, full[crop["y0"] : crop["y1"], crop["x0"] : crop["x1"]])
    assert work.sum() == full.sum()  # the margin holds the whole mask

    labels = grid_labels(admin_client, cfg)
    n = int(labels.max()) + 1
    assert np.array_equal(np.unique(labels), np.arange(n))  # dense labels 0..n-1
    assert 0.5 * superpixels.n_segments(superpixels.Crop(0, 0, 1, 1, crop["width"], crop["height"])) < n
    for lab in range(n):  # each superpixel is one connected region
        assert ndimage.label(labels == lab)[1] == 1
    # Superpixels follow the photo: pixels inside one vary less than the crop as a whole.
    with admin_client.get(cfg["photo_url"]) as photo:
        assert photo.status_code == 200 and photo.mimetype == "image/jpeg"
        rgb = np.asarray(Image.open(io.BytesIO(photo.data)).convert("RGB"), dtype=float)
    assert rgb.shape == (crop["height"], crop["width"], 3)
    within = np.mean([rgb[labels == lab].std(axis=0).mean() for lab in range(n)])
    assert within < 0.6 * rgb.reshape(-1, 3).std(axis=0).mean()

    # Cached: a second request is the same file, and a matching ETag gets a 304.
    with admin_client.get(cfg["labels_url"]) as again:
        assert again.data == zlib.compress(labels.astype("<u2").tobytes(), 6)
        assert "immutable" in again.headers["Cache-Control"]
        etag = again.headers["ETag"].strip('"')
    with admin_client.get(cfg["labels_url"], headers={"If-None-Match": f'"{etag}"'}) as cached:
        assert cached.status_code == 304


@pytest.mark.parametrize(
    "rect, msg",
    [("1,2,3", "four whole pixel numbers"), ("5,5,4,9", "0 <= x0 < x1"), ("0,0,9999,10", "the image's size")],
)
def test_bad_rect_is_a_400_that_says_why(admin_client, data, rect, msg):
    image_id = data["masks"][0]["image"]["id"]
    resp = admin_client.get(f"/edit/mask/image/{image_id}/superpixels?rect={rect}")
    assert resp.status_code == 400 and msg in html.unescape(resp.get_data(as_text=True))


def test_only_the_crops_of_masks_get_superpixels(admin_client, data):
    image_id = data["masks"][0]["image"]["id"]
    resp = admin_client.get(f"/edit/mask/image/{image_id}/superpixels?rect=0,0,300,300")
    assert resp.status_code == 404 and "not the crop of a mask" in resp.get_data(as_text=True)
    assert admin_client.get(f"/edit/mask/image/{image_id}/photo?rect=0,0,300,300").status_code == 404


def test_runs_round_trip_and_a_reduced_grid_keeps_untouched_detail():
    rng = np.random.default_rng(0)
    grid = rng.random((37, 53)) > 0.5
    assert np.array_equal(mask_edits.from_runs(mask_edits.runs_of(grid), 53, 37), grid)
    assert mask_edits.runs_of(np.ones((2, 2), bool)) == [0, 4]
    # A 2400 x 1800 crop is edited on a 1024 x 768 grid: a change there changes only its stored pixels.
    full = np.zeros((2000, 3000), bool)
    full[100:1900, 200:2600] = rng.random((1800, 2400)) > 0.3  # detail finer than the working grid
    crop = superpixels.crop_from_rect("200,100,2600,1900", 3000, 2000)
    assert (crop.width, crop.height) == (1024, 768)
    work = mask_edits.to_working(full, crop)
    work[300:310, 500:520] = True
    out = mask_edits.apply_working(full, crop, work)
    changed = np.argwhere(out != full)
    assert len(changed) and out[changed[:, 0], changed[:, 1]].all()
    ys, xs = changed[:, 0], changed[:, 1]
    # Working rows 300..309 are stored rows 100 + 300 * 1800/768 ... ; columns likewise.
    assert ys.min() >= 100 + int(300 * 1800 / 768) and ys.max() <= 100 + int(310 * 1800 / 768) + 1
    assert xs.min() >= 200 + int(500 * 2400 / 1024) and xs.max() <= 200 + int(520 * 2400 / 1024) + 1


def save(client, body):
    return client.post("/edit/mask/save", json=body)


def body_for(cfg, work, **kw):
    return {
        "annotation_id": cfg["annotation"]["id"],
        "version": cfg["annotation"]["version"],
        "rect": cfg["crop"]["rect"],
        "size": [cfg["crop"]["width"], cfg["crop"]["height"]],
        "runs": mask_edits.runs_of(work),
        **kw,
    }


def test_correct_a_machine_mask_then_update_it_at_its_version(app, admin_client, db, data):
    m = biggest(db, data)
    cfg = page_config(admin_client.get(f"/edit/mask/{m['id']}"))
    crop = cfg["crop"]
    labels = grid_labels(admin_client, cfg)
    work = mask_edits.from_runs(cfg["runs"], crop["width"], crop["height"])
    # Add the superpixel at the crop's top-left corner (outside the face) and remove the one under the centre.
    add, remove = labels[0, 0], labels[crop["height"] // 2, crop["width"] // 2]
    work[labels == add] = True
    work[labels == remove] = False
    resp = save(admin_client, body_for(cfg, work))
    assert resp.status_code == 200, resp.json
    out = resp.json
    assert out["origin_id"] == m["id"] and out["version"] == 1 and out["message"].startswith("Saved the mask")
    human = get_annotation(db, out["id"])
    machine = get_annotation(db, m["id"])
    assert human["origin_id"] == m["id"] and human["kind"] == "object_mask" and machine["rating"] == "bad"
    before, after = masks.decode(machine["mask"]), masks.decode(human["mask"])
    sl = (slice(crop["y0"], crop["y1"]), slice(crop["x0"], crop["x1"]))
    expect = before.copy()
    expect[sl][labels == add] = True
    expect[sl][labels == remove] = False
    assert np.array_equal(after, expect)
    # The box follows the mask.
    assert [human["x0"], human["y0"], human["x1"], human["y1"]] == pytest.approx(
        list(masks.bbox(human["mask"]))
    )
    assert masks.decode(machine["mask"]).sum() == before.sum()  # the machine row never changes

    # The machine row now opens its correction, at version 1.
    cfg2 = page_config(admin_client.get(f"/edit/mask/{m['id']}"))
    assert cfg2["annotation"]["id"] == out["id"] and cfg2["annotation"]["version"] == 1
    work2 = mask_edits.from_runs(cfg2["runs"], cfg2["crop"]["width"], cfg2["crop"]["height"])
    work2[-1, -1] = True
    ok = save(admin_client, body_for(cfg2, work2))
    assert ok.status_code == 200 and ok.json["version"] == 2
    # A stale save (version 1 again) is refused and writes nothing.
    stored = get_annotation(db, out["id"])["mask"]
    work2[0, -1] = True
    stale = save(admin_client, body_for(cfg2, work2))
    assert (
        stale.status_code == 409
        and "version 2" in stale.json["error"]
        and "nothing was saved" in stale.json["error"]
    )
    assert get_annotation(db, out["id"])["mask"] == stored and get_annotation(db, out["id"])["version"] == 2
    # So is a second correction of the machine row by someone who loaded it before the first.
    other = app.test_client()
    assert login(other, "rev").status_code == 302
    again = save(other, body_for(cfg, work))
    assert again.status_code == 409 and "already corrected" in again.json["error"]
    n = db.execute("SELECT count(*) FROM annotations WHERE origin_id = ?", [m["id"]]).fetchone()[0]
    assert n == 1


@pytest.mark.parametrize(
    "change, msg",
    [
        ({"runs": [1, 2]}, "runs cover 3 pixels"),
        ({"size": [3, 3], "runs": [9]}, "is not the working grid"),
        ({"runs": [-1]}, "whole numbers >= 0"),
        ({"rect": "0,0"}, "four whole pixel numbers"),
        ({"extra": 1}, "unknown field(s): extra"),
        ({"version": 0}, "version must be a positive integer"),
    ],
)
def test_bad_save_bodies_are_400s_that_name_the_field(admin_client, db, data, change, msg):
    m = data["masks"][0]
    cfg = page_config(admin_client.get(f"/edit/mask/{m['id']}"))
    work = mask_edits.from_runs(cfg["runs"], cfg["crop"]["width"], cfg["crop"]["height"])
    resp = save(admin_client, body_for(cfg, work, **change))
    assert resp.status_code == 400 and msg in resp.json["error"]
    assert db.execute("SELECT count(*) FROM annotations WHERE origin_id IS NOT NULL").fetchone()[0] == 0


def test_a_save_not_sent_as_json_or_too_large_is_a_400_that_says_so(app, admin_client, data):
    r = admin_client.post("/edit/mask/save", data="runs=1", content_type="application/x-www-form-urlencoded")
    assert r.status_code == 400 and "send the body as application/json" in r.json["error"]
    # Above the mask editor's own limit on a server that takes larger bodies: refused before parsing.
    app.config["MAX_CONTENT_LENGTH"] = 4 * mask_edits.MAX_BODY_BYTES
    big = b'{"runs": [' + b"1," * mask_edits.MAX_BODY_BYTES + b"1]}"
    r = admin_client.post("/edit/mask/save", data=big, content_type="application/json")
    want = f"the body is larger than {mask_edits.MAX_BODY_BYTES} bytes; save a simpler mask"
    assert r.status_code == 400 and want in r.json["error"]


def test_an_empty_mask_is_refused(admin_client, db, data):
    m = data["masks"][0]
    cfg = page_config(admin_client.get(f"/edit/mask/{m['id']}"))
    work = np.zeros((cfg["crop"]["height"], cfg["crop"]["width"]), bool)
    resp = save(admin_client, body_for(cfg, work))
    assert resp.status_code == 400 and "the mask is empty" in resp.json["error"]


def test_the_editor_link_of_a_mask_opens_the_mask_editor(admin_client, data):
    m = data["masks"][0]
    resp = admin_client.get(f"/edit/annotation/{m['id']}?next=/review/1")
    assert resp.status_code == 302 and resp.headers["Location"] == f"/edit/mask/{m['id']}?next=/review/1"
    page = admin_client.get(resp.headers["Location"])
    assert b'href="/review/1"' in page.data and b"mask_editor.js" in page.data


def test_superpixel_maps_count_in_the_image_cache_bound(app, admin_client, data):
    m = data["masks"][0]
    cfg = page_config(admin_client.get(f"/edit/mask/{m['id']}"))
    grid_labels(admin_client, cfg)
    with admin_client.get(cfg["photo_url"]):
        pass
    folder = Path(app.config["CACHE_DIR"]) / "crops" / "superpixels"
    files = sorted(p.suffix for p in folder.rglob("*") if p.is_file())
    assert files == [".bin", ".jpg"]
    assert cache_bound.cache_bytes(app.config) == sum(
        p.stat().st_size for p in folder.rglob("*") if p.is_file()
    )
