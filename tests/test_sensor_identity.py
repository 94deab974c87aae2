"""The same-modality identity features of the sensor frame (device/eval/sensor_identity.py)."""
import numpy as np

from device.eval import sensor_identity as I
from device.gate.binding_joints import CHAINS

JOINT_ROWS = (250, 200, 170)          # each finger's three joints (rows), the tip at 145


def _fingers(rows=JOINT_ROWS, tip=145):
    """A drawn X-ray of five parallel vertical fingers (bright bones, dark 2-px joint spaces)
    and the landmarks on them, 1 px a mm."""
    img = np.full((300, 220), 40.0, np.float32)
    lm = np.zeros((21, 2))
    lm[0] = (110, 295)
    for f, chain in enumerate(CHAINS):
        x = 20 + 40 * f
        img[tip:290, x - 3:x + 4] = 200.0
        for r in rows:
            img[r - 1:r + 1, x - 3:x + 4] = 40.0
        for k, r in enumerate(list(rows) + [tip]):
            lm[chain[k]] = (x, r)
    return img, lm


def test_bone_lengths_are_the_distances_between_the_joint_spaces():
    img, lm = _fingers()
    got = I.bone_lengths(img, lm, 1.0)
    assert got.shape == (10,)
    np.testing.assert_allclose(got[0::2], 50.0, atol=1.0)
    np.testing.assert_allclose(got[1::2], 30.0, atol=1.0)


def test_bone_lengths_follow_the_frame_not_the_landmarks():
    img, _ = _fingers(rows=(250, 205, 170))        # a longer proximal phalanx in the frame
    _, lm = _fingers()                               # the landmarks as before
    got = I.bone_lengths(img, lm, 1.0)
    np.testing.assert_allclose(got[0::2], 45.0, atol=1.0)
    np.testing.assert_allclose(got[1::2], 35.0, atol=1.0)


def test_bone_lengths_nan_without_landmarks_or_outside_the_field():
    img, lm = _fingers()
    bad = lm.copy()
    bad[5] = np.nan
    assert np.isnan(I.bone_lengths(img, bad, 1.0)).all()
    none = np.full_like(img, np.nan)
    assert np.isnan(I.bone_lengths(none, lm, 1.0)).all()


def test_bone_distance_trims_and_needs_enough_lengths():
    a = np.array([40.0, 20, 45, 25, 42, 24, 35, 20, 40, 30])
    b = a + np.array([1.0, -1, 1, -1, 1, -1, 1, -1, 10, -20])
    assert I.bone_distance(a, b, trim=2) == 1.0
    assert I.bone_distance(a, a) == 0.0
    c = np.full(10, np.nan)
    c[:3] = a[:3]
    assert np.isnan(I.bone_distance(a, c))          # 3 in both: too few
    c[3] = a[3]
    assert I.bone_distance(a, c) == 0.0


def _lines(rng, shape=(128, 128)):
    """An NIR-like frame: a bright palm with thin dark random lines."""
    import cv2
    g = np.full(shape, 180, np.uint8)
    for _ in range(25):
        p = rng.integers(10, 118, 4)
        cv2.line(g, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), 120, 1)
    return g


def _palm_landmarks(shift=(0.0, 0.0)):
    lm = np.zeros((21, 2))
    lm[:] = (64, 64)
    lm[0], lm[1] = (64, 110), (30, 90)
    lm[5], lm[9], lm[13], lm[17] = (40, 25), (58, 20), (76, 22), (94, 30)
    return lm + np.asarray(shift)


def test_palm_frame_points_from_the_wrist_to_the_middle_knuckle():
    o, up = I.palm_frame(_palm_landmarks())
    np.testing.assert_allclose(np.linalg.norm(up), 1.0)
    assert up[1] < -0.9                              # toward the fingers: up in the frame
    assert I.palm_frame(np.full((21, 2), np.nan)) is None


def test_patch_agreement_same_palm_shifted_high_other_palm_low():
    rng = np.random.default_rng(3)
    g = _lines(rng)
    a = I.palm_patch(g, _palm_landmarks(), 1.0, veins_out=False)
    # the same frame with the landmarks 2 px off (the views' error): found by the shifts
    b = I.palm_patch(g, _palm_landmarks((2.0, -1.0)), 1.0, veins_out=False)
    other = I.palm_patch(_lines(np.random.default_rng(4)), _palm_landmarks(), 1.0,
                         veins_out=False)
    same = I.patch_agreement(a, b, shift_mm=4.0)
    diff = I.patch_agreement(a, other, shift_mm=4.0)
    assert same > 0.9
    assert diff < 0.5
    assert np.isnan(I.patch_agreement(a, None))
    assert np.isnan(I.patch_agreement(a, b, min_area=1e9))
