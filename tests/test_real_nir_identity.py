"""The NIR sensor identity check on real pegged NIR frames (device/eval/real_nir_identity.py) and
the palm patch's ``area`` (device/gate/sensor_identity.py): a tiny fixture the test draws."""
import numpy as np

from device.gate import sensor_identity as S


def _lines(rng, shape=(128, 128)):
    """An NIR-like frame: a bright palm with thin dark random lines."""
    import cv2
    g = np.full(shape, 180, np.uint8)
    for _ in range(25):
        p = rng.integers(10, 118, 4)
        cv2.line(g, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), 120, 1)
    return g


def _palm_landmarks():
    lm = np.full((21, 2), np.nan)
    lm[0], lm[1] = (64, 110), (30, 90)
    lm[5], lm[9], lm[13], lm[17] = (40, 25), (58, 20), (76, 22), (94, 30)
    return lm


def test_palm_patch_area_keeps_only_the_pixels_it_allows():
    g = _lines(np.random.default_rng(3))
    whole = S.palm_patch(g, _palm_landmarks(), 1.0, veins_out=False)
    area = np.zeros(g.shape, bool)
    area[:, :64] = True                         # the frame's left half only
    half = S.palm_patch(g, _palm_landmarks(), 1.0, veins_out=False, area=area)
    assert 0 < half[1].sum() < whole[1].sum()
    # the grid's right half (the frame's right: x grows to the right, up is toward row 0)
    assert half[1][:, 45:].sum() == 0 and whole[1][:, 45:].sum() > 0
    # no area given: the same as before
    same = S.palm_patch(g, _palm_landmarks(), 1.0, veins_out=False, area=None)
    np.testing.assert_array_equal(same[0], whole[0])
    np.testing.assert_array_equal(same[1], whole[1])
