"""The landmark path's finger valleys (device.vision.landmark_valleys): the regression from the
landmarks and the refinement on the image."""
import cv2
import numpy as np

from device.vision.landmark_valleys import (VALLEY_REGRESSION, landmark_valleys,
                                            refine_valley, regress_valleys)
from device.vision.palm_from_landmarks import PalmFrame, estimate_valleys, palm_frame

SKIN = (120, 150, 200)         # BGR
BACKGROUND = (200, 80, 60)


def _gap_image(tip=(200.0, 150.0)):
    """Skin with a background wedge between two 'fingers' (fingers up), its tip at ``tip``,
    and a dark crease across the palm below it."""
    im = np.full((300, 400, 3), SKIN, np.uint8)
    x, y = tip
    cv2.fillPoly(im, [np.int32([[x - 25, 0], [x + 25, 0], [x, y]])], BACKGROUND, cv2.LINE_AA)
    cv2.line(im, (100, int(y) + 12), (300, int(y) + 8), (70, 90, 130), 2, cv2.LINE_AA)
    return im


FRAME = PalmFrame(np.array([200.0, 160.0]), np.array([1.0, 0.0]), np.array([0.0, 1.0]),
                  100.0, "right")


def test_refinement_finds_the_gap_end():
    im = _gap_image()
    for start in ([203.0, 153.0], [197.0, 146.0], [200.0, 155.0]):
        p = refine_valley(im, np.array(start), FRAME)
        assert np.hypot(*(p - (200, 150))) < 1.8, (start, p)


def test_refinement_keeps_the_estimate_without_a_gap_or_colour():
    skin = np.full((300, 400, 3), SKIN, np.uint8)
    p0 = np.array([200.0, 150.0])
    assert np.array_equal(refine_valley(skin, p0, FRAME), p0)
    grey = cv2.cvtColor(_gap_image(), cv2.COLOR_BGR2GRAY)
    assert np.array_equal(refine_valley(grey, p0, FRAME), p0)
    far = np.array([200.0, 175.0])          # the gap's end 25 px = 0.25 widths away: too far
    assert np.array_equal(refine_valley(_gap_image(), far, FRAME), far)


def test_regression_is_near_the_fixed_offsets_on_a_real_hand():
    from tests.test_front_end import _upright
    im, lm = _upright()
    f = palm_frame(lm)
    r, e = regress_valleys(lm, f), estimate_valleys(lm, f)
    assert np.all(np.hypot(*(r - e).T) < 0.2 * f.width)
    v = landmark_valleys(im, lm, f)
    assert v.shape == (4, 2) and np.isfinite(v).all()
    assert np.all(np.hypot(*(v - r).T) <= 0.15 * f.width + 1e-6)     # REFINE_WIDE
    assert len(VALLEY_REGRESSION) == 4 and all(w.shape == (13, 2) for w in VALLEY_REGRESSION)


def test_front_end_reports_the_refined_valleys_and_keeps_its_regions(monkeypatch):
    from tests.test_front_end import _upright
    import device.vision.front_end as fe
    im, lm = _upright()
    reg = fe.regions_from_landmarks(im, lm, "visible")
    assert np.allclose(reg.keypoints.valleys, landmark_valleys(im, lm))
    # the regions do not depend on the reported valleys
    monkeypatch.setattr(fe, "landmark_valleys", lambda *a: np.zeros((4, 2)))
    other = fe.regions_from_landmarks(im, lm, "visible")
    assert np.array_equal(other.roi, reg.roi) and np.array_equal(other.second_mask,
                                                                  reg.second_mask)


def test_fit_recovers_a_linear_valley_model():
    """tools.fit_valley_model.fit on landmarks whose valleys follow a known table."""
    from tests.test_front_end import _upright
    from tools.fit_valley_model import as_python, fit
    _, lm0 = _upright()
    rng = np.random.default_rng(0)
    data = []
    for _ in range(80):
        lm = lm0[:, :2] + rng.normal(0, 4, (21, 2))
        gt = regress_valleys(lm)                 # the shipped table is the truth here
        data.append((None, lm, gt, np.ones(4, bool)))
    W = fit(data, ridge=1e-6)    # a ridge: the two knuckles about their midpoint are collinear
    for lm in (d[1] for d in data[:5]):
        assert np.allclose(regress_valleys(lm, model=W), regress_valleys(lm), atol=0.05)
    ns: dict = {"np": np}
    exec(as_python(W), ns)
    assert np.allclose(np.array(ns["VALLEY_REGRESSION"]), W, atol=1e-4)
