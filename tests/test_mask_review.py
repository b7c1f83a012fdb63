"""Masks in the review queue: drawn as a filled outline over the image and the crop, rated with g and b."""

import re

import numpy as np
import pytest
from PIL import Image, ImageDraw

from app.annotations import masks
from app.annotations.mask_drawing import path_d
from app.annotations.rows import get_annotation
from app.editor import mask_edits
from tests.mask_seed import seed_masks

PATH = re.compile(r'<path class="mask current" fill-rule="evenodd" d="([^"]+)"/>')


def rasterise(d: str, width: int, height: int) -> np.ndarray:
    """An SVG path of closed rings filled even-odd, as a boolean image (pixel centres inside)."""
    out = np.zeros((height, width), bool)
    for ring in re.findall(r"M([^MZ]+)Z", d):
        nums = [float(v) for v in ring.split()]
        # PIL fills pixel (i, j) when its corner-based point is inside; shift by half a pixel to centres.
        pts = [(nums[k] - 0.5, nums[k + 1] - 0.5) for k in range(0, len(nums), 2)]
        im = Image.new("1", (width, height))
        ImageDraw.Draw(im).polygon(pts, fill=1)
        out ^= np.asarray(im, dtype=bool)
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / (a | b).sum()


def test_contours_follow_the_mask_holes_included():
    yy, xx = np.mgrid[0:300, 0:400]
    ring = (((xx - 200) / 150) ** 2 + ((yy - 150) / 100) ** 2 <= 1) & ~(
        ((xx - 200) ** 2 + (yy - 150) ** 2) <= 40**2
    )
    d = path_d(masks.encode(ring))
    assert d.count("M") == 2  # the outline and the hole
    assert iou(rasterise(d, 400, 300), ring) > 0.97
    # A large mask is traced on a sampled grid, and is still close.
    big = np.zeros((3000, 4000), bool)
    big[200:2800, 300:3700] = ((np.mgrid[0:2600, 0:3400][1] - 1700) / 1700) ** 2 + (
        (np.mgrid[0:2600, 0:3400][0] - 1300) / 1300
    ) ** 2 <= 1
    d = path_d(masks.encode(big))
    assert iou(rasterise(d, 4000, 3000), big) > 0.98 and len(d) < 12_000
    assert path_d(masks.encode(np.zeros((5, 5), bool))) == ""


@pytest.fixture
def data(db):
    return seed_masks(db, limit=4)


def item_id(html: str) -> int:
    return int(re.search(r'data-annotation-id="(\d+)"', html).group(1))


def test_review_draws_the_mask_and_rates_it_with_one_key(reviewer_client, db, data, hx):
    set_id = data["set_id"]
    page = reviewer_client.get(f"/review/{set_id}")
    html = page.get_data(as_text=True)
    first = item_id(html)
    row = get_annotation(db, first)
    image = next(m["image"] for m in data["masks"] if m["id"] == first)
    paths = PATH.findall(html)
    # The same path over the whole image and over the zoomed crop, close to the stored mask.
    assert len(paths) == 2 and paths[0] == paths[1]
    assert iou(rasterise(paths[0], image["width"], image["height"]), masks.decode(row["mask"])) > 0.9
    print(f"\nmask path of annotation {first}: {len(paths[0])} bytes, page {len(page.data)} bytes")
    # g rates it good and swaps in the next item, with its mask; b rates that one bad.
    form = {
        "annotation_id": first,
        "value": "good",
        "cursor": re.search(r'name="cursor" value="([^"]+)"', html)[1],
    }
    nxt = reviewer_client.post(
        f"/review/{set_id}/rate", data=form, headers={**hx, "HX-Target": "review-item"}
    )
    assert nxt.status_code == 200
    assert get_annotation(db, first)["rating"] == "good"
    html2 = nxt.get_data(as_text=True)
    second = item_id(html2)
    assert second != first and len(PATH.findall(html2)) == 2
    form = {
        "annotation_id": second,
        "value": "bad",
        "cursor": re.search(r'name="cursor" value="([^"]+)"', html2)[1],
    }
    reviewer_client.post(f"/review/{set_id}/rate", data=form, headers={**hx, "HX-Target": "review-item"})
    assert get_annotation(db, second)["rating"] == "bad"
    # The keys are the page's: g and b on the rating buttons.
    assert 'data-key="g"' in html and 'data-key="b"' in html


def test_a_corrected_mask_is_reviewed_as_corrected(app, reviewer_client, db, data):
    m = data["masks"][0]
    with app.app_context():
        loaded = mask_edits.load(db, app.config, m["id"])
    crop = loaded["crop"]
    work = np.zeros((crop.height, crop.width), bool)
    work[2:12, 3:20] = True
    body = {
        "annotation_id": m["id"],
        "version": None,
        "rect": crop.rect(),
        "size": (crop.width, crop.height),
        "runs": mask_edits.runs_of(work),
    }
    admin = db.execute("SELECT id FROM users WHERE username = 'admin'").fetchone()[0]
    with app.app_context():
        saved = mask_edits.save_mask(db, app.config, body, admin)
    html = reviewer_client.get(f"/review/{data['set_id']}?item={m['id']}&status=bad").get_data(as_text=True)
    assert "corrected by admin" in html
    d = PATH.findall(html)[0]
    stored = masks.decode(get_annotation(db, saved["id"])["mask"])
    assert iou(rasterise(d, *stored.shape[::-1]), stored) > 0.9
