"""The learned phantom detector's measurement: its rule's arithmetic (device.eval.
phantom_detector) and the training crops (tools.train.phantom_net), on made-up numbers."""
import numpy as np

from device.eval.phantom_detector import groups, summarise, useful


def _rows():
    rows = [{"class": "bona_fide", "p": v} for v in np.linspace(0.0, 0.5, 1000)]
    rows[-1]["p"] = 0.99                     # the one live hand the threshold may deny
    for k, v in enumerate(np.linspace(0.4, 1.0, 20)):
        rows.append({"class": "skeleton_phantom", "p": float(v), "pass_all": k == 19,
                     "pass_but_identity": k >= 15, "decision": "open" if k == 19 else "deny"})
    return rows


def test_groups_name_the_phantoms_that_matter():
    g = groups(_rows())
    assert len(g["bona_fide"]) == 1000 and len(g["skeleton_phantom"]) == 20
    assert g["skeleton_phantom_pass_but_identity"] == list(range(1015, 1020))
    assert g["skeleton_phantom_pass_all"] == [1019] == g["skeleton_phantom_opened"]


def test_summary_threshold_denies_at_most_one_live_hand():
    s = summarise(_rows(), "p")
    second = np.linspace(0.0, 0.5, 1000)[-2]
    assert s["deny1"] == second               # the second highest live value
    assert s["groups"]["bona_fide"]["beyond_deny1"] == 1
    ph = s["groups"]["skeleton_phantom"]
    assert ph["beyond_deny1"] == int(np.sum(np.linspace(0.4, 1.0, 20) > second))
    assert s["groups"]["skeleton_phantom_pass_but_identity"]["beyond_deny1"] == 5
    assert not useful(s)                      # 16 of 20 < 90 %


def test_a_fixed_threshold_is_carried_over():
    s = summarise(_rows(), "p", threshold=0.3)
    assert s["deny1"] == 0.3
    assert useful(s)                          # 20 of 20 beyond 0.3
    assert s["groups"]["bona_fide"]["beyond_deny1"] == int(np.sum(
        np.linspace(0.0, 0.5, 1000)[:-1] > 0.3)) + 1


def test_crop_flip_shifts_and_mirrors_without_resampling():
    from tools.train.phantom_net import crop_flip
    img = np.arange(64, dtype=np.float32).reshape(1, 8, 8)
    out = crop_flip(np.repeat(img, 50, 0), 6, np.random.default_rng(0))
    assert out.shape == (50, 6, 6)
    for c in out:                             # every crop is a window of the image or its mirror
        rows = {tuple(r) for r in c}
        assert all(set(r) <= set(img.ravel()) for r in rows)
        assert np.all(np.abs(np.diff(c, axis=1)) == 1)
        assert np.all(np.abs(np.diff(c, axis=0)) == 8)
    assert any(c[0, 1] < c[0, 0] for c in out) and any(c[0, 1] > c[0, 0] for c in out)


def _drawn_hand(rng, homogeneous: bool) -> np.ndarray:
    """A bright ellipse 'hand' with a brighter bar 'bone' on a dark field, tissue blobs unless
    ``homogeneous``, and pixel noise (uint8 128x128)."""
    yy, xx = np.mgrid[:128, :128]
    hand = ((xx - 64) / 40.0) ** 2 + ((yy - 64) / 52.0) ** 2 < 1
    f = np.full((128, 128), 40.0)
    f[hand] = 150.0
    f[(np.abs(xx - 64) < 3) & (np.abs(yy - 64) < 35)] += 40
    if not homogeneous:
        import cv2
        blobs = cv2.GaussianBlur(rng.normal(0, 1, (128, 128)), (0, 0), 4)
        f += hand * 60 * blobs / blobs.std()
    f += rng.normal(0, 2, f.shape)
    return np.clip(f, 0, 255).astype(np.uint8)


def test_texture_features_see_the_tissue_blobs():
    from device.eval.phantom_texture import feature_names, texture_features
    rng = np.random.default_rng(1)
    a, b = texture_features(_drawn_hand(rng, False)), texture_features(_drawn_hand(rng, True))
    names = feature_names()
    assert a.shape == b.shape == (len(names),)
    k = names.index("dog2.5_deep_std")
    assert np.isfinite(a[k]) and a[k] > 1.5 * b[k]
    assert abs(a[-1] - b[-1]) < 0.02 and 0.3 < a[-1] < 0.5      # the hand's share


def test_logistic_score_fills_missing_features_with_the_mean():
    from device.eval.phantom_texture import logistic_score
    w = {"mean": [1.0, 2.0], "scale": [1.0, 2.0], "w": [1.0, -1.0], "b": 0.0}
    p = logistic_score(np.array([[1.0, np.nan], [2.0, 2.0], [1.0, 6.0]]), w)
    assert p[0] == 0.5 and p[1] > 0.5 and p[2] < 0.5


def test_pass_flags_reads_the_row_or_its_margins_row():
    from device.eval.phantom_detector import pass_flags
    th = {"thr": 0.5, "max_score": 30.0, "min_agreement": 0.86, "max_off": 0.055}
    m = {"class": "skeleton_phantom", "folder": "f", "presence": None, "p_live": 0.9,
         "binding": 1.0, "agreement": 0.8, "size_off": 0.0, "decision": "deny"}
    assert pass_flags({"folder": "f"}, {"f": m}, th) == {
        "pass_all": False, "pass_but_identity": True, "decision": "deny"}
    assert pass_flags(m, {}, th)["pass_but_identity"]            # a check_margins row itself
    assert pass_flags({"folder": "g"}, {}, None) == {}            # nothing known
