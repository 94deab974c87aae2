"""device.eval.xray_material: the soft-tissue cues on drawn frames, and the threshold counts."""
import cv2
import numpy as np

from device.eval import xray_material as X


def _hand_mask() -> np.ndarray:
    m = np.zeros((128, 128), np.uint8)
    m[64:112, 24:104] = 1                      # palm
    for c in (26, 57, 88):                     # three fingers, 14 px wide, 17 px apart
        m[14:64, c:c + 14] = 1
    return m


def _frame(profile, finger_gain: float = 1.0, noise: np.ndarray | None = None) -> np.ndarray:
    """Background 20, the hand 20 + 160 x profile(distance to the outline in px)."""
    m = _hand_mask()
    d = cv2.distanceTransform(m, cv2.DIST_L2, 5)
    v = profile(d)
    if noise is not None:
        v = v * (1 + noise)
    fingers = np.zeros_like(m, bool)
    fingers[14:64] = True
    v = np.where(fingers, v * finger_gain, v)
    return np.clip(20 + 160 * v * (m > 0), 0, 255).astype(np.uint8)


def _rounded(d):
    return np.sqrt(np.clip(d / 8.0, 0, 1))


def _flat(d):
    """The moulded resin's profile as the phantom's painter blends it (flat = 0.5)."""
    return 0.5 * _rounded(d) + 0.5 * np.minimum(3 * _rounded(d), 1)


def test_deny_threshold_and_refused_at():
    b = np.array([1.0, 2, 3, 4, 5, np.nan])
    assert X.deny_threshold(b, "high", 1) == 4.0
    assert X.deny_threshold(b, "low", 1) == 2.0
    assert X.refused_at(b, 4.0, "high") == 1
    assert X.refused_at(np.array([1.0, np.nan, 0.5]), 2.0, "low") == 2


def test_edge_rise_flat_profile_rises_faster():
    cues = {n: X.frame_cues(_frame(p)) for n, p in (("round", _rounded), ("flat", _flat))}
    assert cues["flat"]["edge_rise"] > cues["round"]["edge_rise"]


def test_palm_residual_sees_inhomogeneity():
    rng = np.random.default_rng(0)
    blobs = cv2.resize(rng.standard_normal((6, 6)).astype(np.float32), (128, 128),
                       interpolation=cv2.INTER_CUBIC)
    flat = X.frame_cues(_frame(_rounded))["palm_residual"]
    lumpy = X.frame_cues(_frame(_rounded, noise=0.1 * blobs / blobs.std()))["palm_residual"]
    assert lumpy > flat


def test_wire_peak_sees_a_bright_spot():
    f = _frame(_rounded)
    g = f.copy()
    g[80, 56:66] = 255                         # a wire 10 px long
    assert X.frame_cues(g)["wire_peak"] > X.frame_cues(f)["wire_peak"]


def test_finger_palm_thicker_fingers_higher():
    thin = X.frame_cues(_frame(_rounded, finger_gain=0.6))["finger_palm"]
    thick = X.frame_cues(_frame(_rounded, finger_gain=0.9))["finger_palm"]
    assert thick > thin


def test_no_hand_gives_nan():
    cues = X.frame_cues(np.full((128, 128), 30, np.uint8))
    assert set(cues) == set(X.CUES) and all(np.isnan(v) for v in cues.values())


def test_summarise_counts_and_fixed_thresholds():
    rows = ([{"class": "bona_fide", **{k: float(i) for k in X.CUES}} for i in range(10)]
            + [{"class": "skeleton_phantom", **{k: v for k in X.CUES}} for v in (8.5, 20.0)])
    s = X.summarise(rows, {"two": [10, 11]})
    c = s["edge_rise"]
    assert c["deny1"] == 8.0 and c["classes"]["bona_fide"]["refused_deny1"] == 1
    assert c["classes"]["skeleton_phantom"]["refused_deny1"] == 2
    assert s["palm_residual"]["deny1"] == 1.0           # "low": denies below
    fixed = {k: {"deny1": 15.0, "deny5": 15.0} for k in X.CUES}
    f = X.summarise(rows, {}, fixed)["edge_rise"]["classes"]
    assert f["skeleton_phantom"]["refused_deny1"] == 1 and f["bona_fide"]["refused_deny1"] == 0
