"""Palm regions from landmarks: the pure geometry (device.vision.palm_from_landmarks) and the
crop rules of device.vision.landmarks, on the fixture hand's MediaPipe landmarks."""
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.vision.landmarks import (Crop, crop_change, crop_from_box, crop_from_landmarks,
                                     frame_crop, hand_rotation, mask_box)
from device.vision.palm_from_landmarks import (LandmarkGeometry, convex_hull, estimate_valleys,
                                               inside_fraction, is_mirrored, palm_frame,
                                               palm_outline, region_centre, region_corners)

FIXTURE = Path(__file__).parent / "fixtures" / "hand_landmarks"


@pytest.fixture(scope="module")
def lm():
    """MediaPipe's landmarks of the fixture's upright right palm (x, y, z)."""
    d = json.loads((FIXTURE / "mediapipe.json").read_text())
    return np.array(d["images"]["hand_upright.jpg"], np.float64)


def _rot(pts, deg, centre=(0.0, 0.0)):
    a = math.radians(deg)
    R = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    out = np.array(pts, np.float64)
    out[:, :2] = (out[:, :2] - centre) @ R.T + centre
    return out


def _mirror(pts, x0=0.0):
    out = np.array(pts, np.float64)
    out[:, 0] = 2 * x0 - out[:, 0]
    return out


def test_palm_frame_of_an_upright_right_palm(lm):
    f = palm_frame(lm)
    assert f.hand == "right"
    assert f.u[0] > 0.8                       # little -> index runs to the image right
    assert f.n[1] > 0.8                       # toward the wrist = down
    assert f.width == pytest.approx(np.hypot(*(lm[5, :2] - lm[17, :2])))


def test_mirrored_landmarks_are_a_left_palm(lm):
    assert palm_frame(_mirror(lm, 160)).hand == "left"


def test_regions_are_upright_and_never_mirrored_unless_asked(lm):
    g = LandmarkGeometry(0.94, 0.42, -0.06)
    right = region_corners(palm_frame(lm), g, 128)
    assert not is_mirrored(right)
    assert right[0][1] < right[3][1]          # the top edge (fingers) above the bottom
    left = region_corners(palm_frame(_mirror(lm, 160)), g, 128)
    assert not is_mirrored(left) and left[0][1] < left[3][1]
    # a mirrored hand's region is the mirror image of the hand's region
    np.testing.assert_allclose(np.sort(left[:, 0]), np.sort(320 - right[:, 0]), atol=1e-9)
    on = region_corners(palm_frame(_mirror(lm, 160)), LandmarkGeometry(
        0.94, 0.42, -0.06, mirror_left=True), 128)
    assert is_mirrored(on)


def test_region_geometry_follows_rotation_scale_and_shift(lm):
    g = LandmarkGeometry(0.94, 0.42, -0.06)
    c0 = region_corners(palm_frame(lm), g, 128)
    for deg, s, t in ((90, 1.0, (0, 0)), (-37, 1.6, (40, -12)), (180, 0.5, (3, 7))):
        moved = _rot(lm, deg, (160, 120))
        moved[:, :2] = (moved[:, :2] - 160) * s + 160 + np.array(t)
        c1 = region_corners(palm_frame(moved), g, 128)
        expect = _rot(np.c_[c0, np.zeros(4)], deg, (160, 120))[:, :2]
        expect = (expect - 160) * s + 160 + np.array(t)
        np.testing.assert_allclose(c1, expect, atol=1e-6)


def test_region_side_centre_and_second_region(lm):
    g = LandmarkGeometry(1.0, 0.5, 0.0)
    f = palm_frame(lm)
    c = region_corners(f, g, 128)
    # pixel centres of a 128 grid span 127 steps of side/127: the side is g.side * width
    assert np.hypot(*(c[1] - c[0])) == pytest.approx(f.width, rel=1e-9)
    np.testing.assert_allclose(c.mean(0), region_centre(f, g))
    np.testing.assert_allclose(region_centre(f, g), f.origin + 0.5 * f.width * f.n)
    c2 = region_corners(f, g, 192)
    np.testing.assert_allclose(c2.mean(0), c.mean(0))
    assert np.hypot(*(c2[1] - c2[0])) == pytest.approx(f.width * 191 / 127)


def test_rectified_region_is_the_same_for_a_turned_image(lm):
    """A turned copy of an image, with its landmarks turned alike, gives the same region."""
    from device.vision.roi_geometry import rectify
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 255, (240, 320), np.uint8), (0, 0), 2)
    turned = cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)
    lm_t = lm.copy()
    lm_t[:, 0], lm_t[:, 1] = 239 - lm[:, 1], lm[:, 0]
    g = LandmarkGeometry(0.94, 0.42, -0.06)
    a = rectify(img, region_corners(palm_frame(lm), g, 128), 128)
    b = rectify(turned, region_corners(palm_frame(lm_t), g, 128), 128)
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 1.0


def test_valleys_and_outline(lm):
    f = palm_frame(lm)
    v = estimate_valleys(lm, f)
    assert v.shape == (4, 2)
    # the finger valleys lie beyond the knuckle line, toward the fingers
    assert all(np.dot(p - f.origin, f.n) < 0 for p in v[:3])
    outline = palm_outline(lm, f)
    inside = cv2.pointPolygonTest(outline.astype(np.float32).reshape(-1, 1, 2),
                                  tuple(map(float, region_centre(f, LandmarkGeometry()))),
                                  False)
    assert inside > 0
    for k in (0, 5, 9, 13, 17):
        assert cv2.pointPolygonTest(outline.astype(np.float32).reshape(-1, 1, 2),
                                    tuple(map(float, lm[k, :2])), False) > 0


def test_convex_hull_and_inside_fraction():
    pts = np.array([[0, 0], [2, 0], [1, 1], [2, 2], [0, 2], [1, 0.5]], float)
    h = convex_hull(pts)
    assert len(h) == 4 and {tuple(p) for p in h} == {(0, 0), (2, 0), (2, 2), (0, 2)}
    assert inside_fraction(np.array([[1, 1], [-1, 5], [9, 9]]), (10, 10)) == pytest.approx(2 / 3)


def test_geometry_validation():
    with pytest.raises(ValueError):
        LandmarkGeometry(side=0)
    with pytest.raises(ValueError):
        palm_frame(np.zeros((21, 3)))


# ---------------------------------------------------------------- crops (landmarks.py)
def test_crop_maps_pixel_centres_and_back():
    c = Crop((100.0, 80.0), 112.0, math.radians(30))
    A = c.to_image(224)
    centre = A[:, :2] @ np.array([111.5, 111.5]) + A[:, 2]
    np.testing.assert_allclose(centre, [100, 80], atol=1e-9)
    # a crop pixel step is side/224 image pixels, turned by the rotation
    step = A[:, :2] @ np.array([1.0, 0.0])
    assert np.hypot(*step) == pytest.approx(0.5)
    assert math.degrees(math.atan2(step[1], step[0])) == pytest.approx(30)
    pts = c.points_to_image(np.array([[111.5, 111.5, 4.0]]), 224)
    np.testing.assert_allclose(pts[0], [100, 80, 2.0])


def test_mediapipe_crop_rule_of_an_upright_hand(lm):
    c = crop_from_landmarks(lm)
    assert abs(math.degrees(c.rotation)) < 25
    pts = lm[[0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18], :2]
    assert c.side > 1.9 * max(np.ptp(pts, 0)) * 0.9
    # shifted toward the fingers: the crop centre is above the palm box centre
    assert c.centre[1] < (pts[:, 1].max() + pts[:, 1].min()) / 2


def test_crop_rule_turns_with_the_hand(lm):
    c0 = crop_from_landmarks(lm)
    for deg in (90, -135, 180):
        c1 = crop_from_landmarks(_rot(lm, deg, (160, 120)))
        assert math.degrees(c1.rotation - c0.rotation) % 360 == pytest.approx(deg % 360,
                                                                               abs=1e-6)
        assert c1.side == pytest.approx(c0.side, rel=1e-6)
        np.testing.assert_allclose(c1.centre, _rot(np.array([[*c0.centre, 0]]), deg,
                                                   (160, 120))[0, :2], atol=1e-6)
    assert hand_rotation(lm) == pytest.approx(c0.rotation)
    assert crop_change(c0, c0) == 0


def test_first_crop_helpers():
    m = np.zeros((100, 200), np.uint8)
    m[20:60, 50:90] = 1
    assert mask_box(m) == (50.0, 20.0, 90.0, 60.0)
    assert mask_box(np.zeros((100, 200), np.uint8)) is None
    c = crop_from_box(50, 20, 90, 60, scale=1.5)
    assert c.centre == (70.0, 40.0) and c.side == 60.0
    f = frame_crop((480, 640, 3))
    assert f.side == 640 and f.centre == (319.5, 239.5)
