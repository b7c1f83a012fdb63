"""The overlay markup (app/annotations/drawing.py) and the image URLs the review and set pages format."""

import pytest
from flask import url_for

from app.annotations.drawing import figure
from app.images import urls
from app.kinds import LANDMARK68_GROUPS
from tests.svg_paths import drawn_points, path_tags, vertices


@pytest.mark.parametrize("image_id", ["0123456789abcdef", "photo_01-b", "with space", "é", "a;b"])
def test_formatted_image_urls_equal_url_for(app, image_id):
    box = (0.1234567, 0.2, 0.5, 0.75)
    with app.test_request_context():
        url, region = urls.crop(image_id, box, (640, 480), 256, 0.15)
        assert url == url_for(
            "images.crop", image_id=image_id, box=",".join(f"{v:.6f}" for v in box), size=256, pad=0.15
        )
        assert urls.full_url(image_id) == url_for("images.resized", image_id=image_id, size=1024)
    with app.test_request_context("/", base_url="http://localhost/oiap/"):
        # Mounted under a prefix: the formatted URLs carry it as url_for's do.
        assert urls.full_url(image_id, 512) == url_for("images.resized", image_id=image_id, size=512)
        assert urls.full_url(image_id, 512).startswith("/oiap/images/")


def test_figure_draws_points_contours_and_hidden_points():
    pts = [[(i % 10) / 10 + 0.01, (i // 10) / 10 + 0.02, 0 if i in (3, 40) else 1] for i in range(68)]
    fig = figure(
        {"x0": 0.1, "y0": 0.2, "x1": 0.3, "y1": 0.4, "points": pts}, "face_landmarks68", (200, 100), 2.0
    )
    expected = [(p[0] * 200, p[1] * 100) for p in pts]
    shown = [e for e, p in zip(expected, pts, strict=True) if p[2]]
    hidden = [expected[3], expected[40]]
    assert drawn_points(fig["points"]) == [pytest.approx(e, abs=0.051) for e in shown + hidden]
    (tag,) = path_tags(fig["points"], "pts hidden-pt")
    assert vertices(tag) == [pytest.approx(e, abs=0.051) for e in hidden]
    # Dots 2 r across; the dark edge under them a little wider.
    assert 'stroke-width="4.00"' in path_tags(fig["points"], "pts")[0]
    assert 'stroke-width="5.20"' in path_tags(fig["points"], "pts-edge")[0]
    for group, (idx, closed) in LANDMARK68_GROUPS.items():
        (tag,) = path_tags(fig["lines"], f"contour {group}")
        assert vertices(tag) == [pytest.approx(expected[i], abs=0.051) for i in idx]
        assert tag.endswith('Z"/>') == closed
    assert fig["rect"] == '<rect class="ann current" x="20.0" y="20.0" width="40.0" height="20.0"/>'
    assert fig["n_points"] == 68
    # Thumbnails skip the contours; five points and boxes never have any.
    assert figure({"points": pts}, "face_landmarks68", (200, 100), 2.0, contours=False)["lines"] == ""
    five = figure({"points": pts[:5]}, "face_landmarks5", (200, 100), 2.0)
    assert five["lines"] == "" and len(drawn_points(five["points"])) == 5
    # Points without a visibility flag are visible; no points, no paths.
    assert len(drawn_points(figure({"points": [[0.5, 0.5]]}, "face_landmarks5", (10, 10), 1)["points"])) == 1
    assert (
        figure({"x0": 0, "y0": 0, "x1": 1, "y1": 1, "points": None}, "face_box", (10, 10), 1)["points"] == ""
    )
