"""five_roi: the attention mesh's ROI from MTCNN's five points instead of a first mesh pass."""

import numpy as np
import pytest

from app.annotators import five_roi, mesh478
from app.annotators.attention68 import AttentionMesh68
from app.images.decode import load_rgb
from app.imports.dlib_xml import parse_dlib_xml
from app.models import eval68
from tests.conftest import load_script

pytest.importorskip("app.annotators.mtcnn")


def test_the_script_refits_the_shipped_coefficients_without_labels():
    fit = load_script("fit_five_roi")
    x, y = fit.samples()
    assert len(x) >= 15
    np.testing.assert_allclose(fit.fit(x, y), five_roi.COEF, atol=2e-4)
    # Mirror-symmetric by construction: a mirrored face gets the mirrored ROI.
    five = np.array([[40.0, 50.0], [80.0, 52.0], [66.0, 70.0], [47.0, 90.0], [77.0, 91.0]])
    mfive = five[[1, 0, 2, 4, 3]] * [-1, 1] + [200, 0]
    cx, cy, size, angle = five_roi.roi_from_five(five)
    mx, my, msize, mangle = five_roi.roi_from_five(mfive)
    assert (mx, my, msize, mangle) == pytest.approx((200 - cx, cy, size, -angle))


def test_on_unseen_photos_it_lands_near_the_first_pass_roi():
    # The testing file's photos: never used by the fit.
    detector = eval68.get_detector()
    files = sorted({im["file"] for im in parse_dlib_xml(eval68.DEMO_DATA / eval68.DEV_XMLS[1])})
    err = []
    for file in files:
        img = load_rgb(eval68.DEMO_DATA / file)
        for box, _, five in detector.detect(img):
            first = mesh478.run_rois_lite(img, [mesh478.first_roi(box, five)])[0]
            want = mesh478.roi_from_landmarks(first)
            got = five_roi.roi_from_five(five)
            err.append((np.hypot(got[0] - want[0], got[1] - want[1]) / want[2], abs(got[2] / want[2] - 1)))
    err = np.array(err)
    assert len(err) >= 20
    # Measured: the centre off by 2.9 % of the ROI's side on average (worst 7.4 %), the size by 6.0 %
    # (worst 45.5 %: a 16 px background face in 2008_004176.jpg that no dev file labels, where the
    # first pass's own ROI is shaky; 30 % before MTCNN's area pyramid and five_roi's refit. The mesh's
    # second pass tolerates such ROIs, see the NME test below).
    assert err[:, 0].mean() < 0.05 and err[:, 0].max() < 0.15
    assert err[:, 1].mean() < 0.07 and err[:, 1].max() < 0.5


def test_training_file_nme_within_the_allowed_tolerance_of_two_passes():
    xml = eval68.DEV_XMLS[0]
    detector = eval68.get_detector()
    two = eval68.face_nmes(AttentionMesh68(five_roi=False), xml, "mtcnn", detector=detector)
    five = eval68.face_nmes(AttentionMesh68(five_roi=True), xml, "mtcnn", detector=detector)
    # Measured: 0.0575 and 0.0578 (worst face 0.083 and 0.093); since MTCNN's area pyramid, PNet at
    # 0.7 and five_roi's refit, 0.05535 and 0.05531 (worst face 0.087 both).
    assert len(five) == len(two) >= 17
    assert np.mean(five) < np.mean(two) + 0.001
    assert max(five) < 0.10


def test_given_boxes_get_five_points_from_onet():
    xml = eval68.DEV_XMLS[0]
    # From the training file's own boxes (no detector): measured 0.0598 against 0.0613 with the first
    # mesh pass (worst face 0.095 and 0.097).
    two = eval68.face_nmes(AttentionMesh68(five_roi=False), xml, "box")
    onet = eval68.face_nmes(AttentionMesh68(five_roi=True), xml, "box")
    assert len(onet) == len(two) == 18
    assert np.mean(onet) < np.mean(two) + 0.001 and max(onet) < 0.10
    img = load_rgb(eval68.DEMO_DATA / "2008_002506.jpg")
    h, w = img.shape[:2]
    inside, outside = (200.0, 60.0, 260.0, 130.0), (w + 10.0, 5.0, w + 60.0, 60.0)
    five = five_roi.onet_points5(img, [inside, outside])
    # Five points inside their box, eyes above the mouth; none for a box beyond the image.
    assert five[1] is None and five[0].shape == (5, 2)
    assert (five[0][:, 0] > 200).all() and (five[0][:, 0] < 260).all()
    assert five[0][:2, 1].max() < five[0][3:, 1].min()
    # A face whose box has no pixel in the image still gets the two passes (no error).
    pts = AttentionMesh68(five_roi=True).predict_many(img, [inside, outside])
    assert len(pts) == 2 and np.isfinite(pts[0]).all()
