"""The attention mesh's crop (mesh478.warp: OpenCV's bilinear warp, area-reduced first for big
downscales) and its batched runs."""

import numpy as np
import pytest
from PIL import Image

from app.annotators import mesh478
from app.models import eval68


def _photo() -> np.ndarray:
    return eval68.load_rgb(eval68.DEMO_DATA / "2008_002506.jpg")


def _pil_warp(img: np.ndarray, m, t) -> np.ndarray:
    # PIL's bilinear affine transform, which the crop used before: output pixel corners (u + 0.5) map
    # to input corners.
    c = t + 0.5 - m @ np.array([0.5, 0.5])
    data = (m[0, 0], m[0, 1], c[0], m[1, 0], m[1, 1], c[1])
    out = Image.fromarray(img).transform(
        (mesh478.INPUT_SIZE,) * 2, Image.Transform.AFFINE, data, Image.Resampling.BILINEAR
    )
    return np.asarray(out).astype(int)


@pytest.mark.parametrize("roi", [(200.0, 150.0, 150.0, 0.3), (120.5, 260.25, 300.0, -0.7)])
def test_samples_what_pils_bilinear_transform_samples(roi):
    img = _photo()
    m, t = mesh478.roi_transform(roi)
    assert mesh478.reduction(np.sqrt(abs(np.linalg.det(m)))) == 1
    diff = np.abs(mesh478.warp(img, m, t).astype(int) - _pil_warp(img, m, t))
    # OpenCV places bilinear weights on a 1/32 pixel grid: a grey level apart at most, out of the border.
    assert diff.mean() < 1.0
    assert np.percentile(diff, 99) <= 2


def test_a_big_downscale_is_area_reduced_not_aliased(monkeypatch):
    # One-pixel stripes read 6 image pixels a crop pixel: bilinear alone lands on the white stripes
    # every time (aliased to white), the area reduction gives their mean grey.
    img = np.zeros((1500, 1500, 3), np.uint8)
    img[:, ::2] = 255
    m, t = 6.0 * np.eye(2), np.array([100.0, 80.0])
    assert mesh478.reduction(6.0) == 6
    crop = mesh478.warp(img, m, t)[20:-20, 20:-20].astype(float)
    assert abs(crop.mean() - 127.5) < 2 and crop.std() < 3
    monkeypatch.setattr(mesh478, "REDUCE_FROM", float("inf"))
    assert mesh478.warp(img, m, t)[20:-20, 20:-20].min() == 255


def test_the_reduced_crop_samples_the_same_places():
    # Smooth waves (periods of 80 and 96 pixels, up to 10 grey levels a pixel): the reduced crop must
    # read the same image positions as the unreduced one (a pixel off would be ~10 levels apart).
    yy, xx = np.mgrid[0:1400, 0:1400].astype(np.float64)
    waves = [np.sin(xx * 2 * np.pi / 80), np.sin(yy * 2 * np.pi / 96), np.sin((xx + yy) * 2 * np.pi / 160)]
    img = np.stack([127.5 + 127 * w for w in waves], axis=2).astype(np.uint8)
    roi = (700.0, 690.0, 5.0 * mesh478.INPUT_SIZE, 0.4)
    m, t = mesh478.roi_transform(roi)
    assert mesh478.reduction(5.0) == 5
    reduced = mesh478.warp(img, m, t).astype(int)
    plain = cv2_plain(img, m, t)
    inside = (slice(10, -10), slice(10, -10))
    assert np.abs(reduced[inside] - plain[inside]).mean() < 1.5
    assert np.abs(reduced[inside] - plain[inside]).max() <= 6


def cv2_plain(img, m, t):
    """OpenCV's bilinear warp with no reduction."""
    import cv2

    a = np.hstack([m, t[:, None]])
    return cv2.warpAffine(
        img, a, (mesh478.INPUT_SIZE,) * 2, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    ).astype(int)


def test_faces_of_an_image_run_together_as_each_alone(monkeypatch):
    img = _photo()
    faces = [
        f for f in eval68.load_faces(eval68.DEMO_DATA / eval68.DEV_XMLS[1]) if f.file == "2008_002506.jpg"
    ]
    assert len(faces) >= 3
    rois = [mesh478.first_roi(f.box) for f in faces]
    together = mesh478.run_rois(img, rois)
    lite = mesh478.run_rois_lite(img, rois)
    monkeypatch.setattr(mesh478, "RUN_BATCH", 1)
    monkeypatch.setattr(mesh478, "LITE_RUN_BATCH", 8)
    for a, b in zip(together, mesh478.run_rois(img, rois), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-3)
    for a, b in zip(lite, mesh478.run_rois_lite(img, rois), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-3)


@pytest.mark.slow
def test_the_scripts_measure_the_levers():
    import subprocess
    import sys

    from app.paths import REPO_ROOT

    def run(*args):
        out = subprocess.run(
            [sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.splitlines()

    lines = run("scripts/eval_mesh_crop.py", "-k", "1", "12", "--options", "none", "2/1")
    nme = {int(line.split()[0][2:]): [float(v) for v in line.split()[2::5]] for line in lines[1:]}
    assert nme[1][0] == nme[1][1]  # nothing to reduce at the photos' own size
    assert nme[12][1] <= nme[12][0]  # the kept reduction on 12x upscaled faces: no worse than none
    lines = run("scripts/bench_mesh_stage.py", "-n", "2", "--repeats", "1")
    assert lines[0].startswith("2 images,") and any(line.startswith("crop: OpenCV warp") for line in lines)
