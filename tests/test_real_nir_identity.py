"""The NIR sensor identity check on real pegged NIR frames (device/eval/real_nir_identity.py) and
the palm patch's ``area`` (device/gate/sensor_identity.py): a tiny fixture the test draws."""
import numpy as np

from device.gate import sensor_identity as S
from tests.test_sensor_identity import _lines




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


# ------------------------------------------------------------------------------ the measurement
def test_split_palms_is_the_sensor_branch_split():
    from device.eval.real_nir_identity import split_palms
    from tools.train.realdata import split_subjects
    names = [f"{i:04d}" for i in range(1, 251)]
    sp = split_palms(names)
    rest, val = split_subjects(250, 0.2, 0)
    rtr, rte = split_subjects(len(rest), 0.25, 1)
    assert sp["val"] == [names[i] for i in val]
    assert sp["test"] == [names[i] for i in rest[rte]]
    assert sp["train"] == [names[i] for i in rest[rtr]]
    assert (len(sp["train"]), len(sp["val"]), len(sp["test"])) == (150, 50, 50)
    assert sorted(sp["dev"]) == sorted(sp["train"] + sp["val"])


def test_landmarks_from_valleys_follow_the_valleys():
    from device.eval.real_nir_identity import VALLEY_LANDMARKS, landmarks_from_valleys
    # fingers to the left (as on a pegged frame), valley span 100 px, the palm to the right
    v = np.array([[50.0, 50.0], [45.0, 100.0], [50.0, 150.0], [np.nan, np.nan]])
    lm = landmarks_from_valleys(v, palm_centre=(200.0, 100.0))
    o, x, y = np.array([50.0, 100.0]), np.array([0.0, -1.0]), np.array([1.0, 0.0])
    for k, (tx, ty) in VALLEY_LANDMARKS.items():
        np.testing.assert_allclose(lm[k], o + 100 * (tx * x + ty * y))
    assert lm[0][0] > 200                            # the wrist on the palm's side
    # the index and little sides named the other way round (no thumb valley to tell them
    # apart): the same landmarks, the frame's handedness fixed by the palm's side alone
    np.testing.assert_allclose(landmarks_from_valleys(v[[2, 1, 0, 3]], (200.0, 100.0)), lm)
    assert np.isnan(lm[4]).all()
    assert landmarks_from_valleys(np.full((4, 2), np.nan), (0, 0)) is None


def test_sensor_view_scales_the_frame_and_its_landmarks():
    from device.eval.real_nir_identity import gate_px_mm, sensor_view
    g = np.zeros((288, 352), np.uint8)
    lm = np.full((21, 2), np.nan)
    lm[0] = (175.5, 143.5)                           # the frame's centre
    m = np.ones_like(g)
    img, l2, px, hand = sensor_view(g, lm, m, "gate", 3.8)
    assert abs(px - gate_px_mm()) < 1e-9 and hand.shape == img.shape
    np.testing.assert_allclose(l2[0], (np.array(img.shape[::-1]) - 1) / 2, atol=0.6)
    img, l2, px, _ = sensor_view(g, lm, m, "capture", 3.8)
    assert img.shape == (128, 128) and abs(px - 3.8 * 128 / 288) < 1e-9
    np.testing.assert_allclose(l2[0], (63.5, 63.5), atol=1e-6)


def _fixture(tmp_path, palms=3):
    """A tiny pegged-frame set: each palm its own random lines, every frame that drawing moved
    by a pixel or two, with noise; sessions 1 and 2, 3 frames each."""
    import cv2
    for p in range(palms):
        base = np.full((288, 352), 170, np.uint8)
        rng = np.random.default_rng(100 + p)
        for _ in range(60):
            q = rng.integers(40, 300, 4)
            cv2.line(base, (int(q[0]), int(q[1]) % 288), (int(q[2]), int(q[3]) % 288), 110, 2)
        d = tmp_path / f"{p + 1:04d}"
        d.mkdir()
        for s in (1, 2):
            for k in range(1, 4):
                r = np.random.default_rng([p, s, k])
                M = np.float32([[1, 0, r.uniform(-2, 2)], [0, 1, r.uniform(-2, 2)]])
                f = cv2.warpAffine(base, M, (352, 288), borderMode=cv2.BORDER_REPLICATE)
                f = np.clip(f + r.normal(0, 3, f.shape), 0, 255).astype(np.uint8)
                cv2.imwrite(str(d / f"{s}_{k:02d}.png"), f)
    return tmp_path


def test_measure_genuine_above_impostor_on_a_drawn_fixture(tmp_path, monkeypatch):
    from device.eval import real_nir_identity as R
    data = _fixture(tmp_path)
    mask = np.zeros((288, 352), np.uint8)
    mask[10:278, 60:340] = 1
    valleys = np.array([[60.0, 60.0], [55.0, 140.0], [60.0, 220.0], [np.nan, np.nan]])
    # the classical valley path is the gate's own and tested elsewhere; drawn lines have no
    # hand: every frame gets the same valleys and hand region
    monkeypatch.setattr(R, "frame_geometry", lambda f: ((valleys, (200.0, 140.0), mask), None))
    monkeypatch.setattr(R, "stage_verdicts",
                        lambda files, prec, models_dir=None: {f: None for f in files})
    sc = {}
    rep = R.measure(data, ["0001", "0002", "0003"], "gate", enrol=2, threshold=0.3,
                    precisions=("fp32",), at=(-1.0,), scores=sc)
    assert rep["at"]["-1"]["impostor_accepted"]["k"] == 18
    assert sc["cross"].shape == (9,) and sc["impostor"].shape == (18,)
    assert rep["palms"] == 3 and not rep["patch_failures"]
    assert rep["genuine_cross_session"]["n"] == 9 and rep["genuine_same_session"]["n"] == 3
    assert rep["impostor"]["n"] == 18
    assert rep["genuine_cross_session"]["q0"] > rep["impostor"]["q100"]
    assert rep["genuine_cross_session_denied"]["k"] == 0
    assert rep["impostor_accepted"]["k"] == 0
    st = rep["stage"]["fp32"]
    assert st["bona_fide_denied_with_identity"]["k"] == 0 and st["reasons"] == {"passed": 9}


def test_wilson_interval():
    from device.eval.real_nir_identity import wilson
    lo, hi = wilson(0, 600)
    assert lo == 0 and 0.5 < hi < 0.7
    lo, hi = wilson(5, 100)
    assert lo < 5 < hi
