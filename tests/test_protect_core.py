"""Seed 002's unit-level acceptance checks 1-8 and 13 on device.protect.core."""
import numpy as np
import pytest

from device.protect.core import (ProtectConfig, ProtectedTemplate, drop_counts, enrol,
                                 enrol_many, inverse_slerp, keygen, key_strip, match_score,
                                 orthographic_eps, protect_with, random_mask, rotation_weight,
                                 secure_rng, slerp, weighted_score)
from device.protect.defaults import DEFAULT_CONFIG

G, D = 49, 16


def unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def angle(a, b):
    return np.arccos(np.clip(np.sum(a * b, -1), -1, 1))


@pytest.fixture
def rng():
    return np.random.default_rng(7)


# --------------------------------------------------------------------------- check 1
def test_keygen_shape_norm_and_modes():
    k = keygen(G, D)
    assert k.shape == (G, D)
    assert np.allclose(np.linalg.norm(k, axis=1), 1, atol=1e-6)
    assert len({r.tobytes() for r in k}) == G                 # per sub-feature: all differ
    s = keygen(G, D, shared=True)
    assert s.shape == (1, D)                                  # shared: one row for every cell
    t = enrol(unit(np.ones((G, D))), ProtectConfig(key_mode="shared"))
    assert np.array_equal(np.broadcast_to(t.key, (G, D))[0], t.keys()[-1])


def test_keygen_is_uniform_on_the_sphere():
    k = keygen(100_000, D).astype(np.float64)                 # 1e5 draws
    assert np.abs(k.mean(0)).max() < 0.01
    assert np.abs(np.cov(k.T) - np.eye(D) / D).max() < 0.01


def test_keys_come_from_the_os_entropy_source():
    a, b = secure_rng().standard_normal(4), secure_rng().standard_normal(4)
    assert not np.allclose(a, b)


# --------------------------------------------------------------------------- check 2
def test_slerp_geometry(rng):
    x, k = unit(rng.standard_normal((200, D))), unit(rng.standard_normal((200, D)))
    th = angle(x, k)
    for t in (0.0, 0.2, 0.5, 0.9, 1.0):
        r = slerp(x, k, t)
        assert np.allclose(np.linalg.norm(r, axis=1), 1, atol=1e-12)
        assert np.allclose(angle(x, r), t * th, atol=1e-6)
        assert np.allclose(angle(r, k), (1 - t) * th, atol=1e-6)
        # r lies in span{x, k}
        B = np.stack([x, k], -1)                               # (n, d, 2)
        coef = np.linalg.lstsq(B[0], r[0], rcond=None)[0]
        assert np.linalg.norm(B[0] @ coef - r[0]) < 1e-9
        if 0 < t < 1:
            az = lambda v: unit(v - np.sum(v * k, -1, keepdims=True) * k)
            assert np.allclose(az(r), az(x), atol=1e-9)       # azimuth about k preserved
    assert np.allclose(slerp(x, k, 0.0), x) and np.allclose(slerp(x, k, 1.0), k)


def test_slerp_is_not_an_orthogonal_rotation(rng):
    k = unit(rng.standard_normal(D))
    x1, x2 = unit(rng.standard_normal((2, 50, D)))
    for t in (0.3, 0.7):
        before = angle(x1, x2)
        after = angle(slerp(x1, k, t), slerp(x2, k, t))
        assert np.abs(after - before).max() > 1e-2            # pairwise angles change


def test_equal_angle_variant_turns_every_sub_feature_by_the_same_angle(rng):
    x, k = unit(rng.standard_normal((500, D))), unit(rng.standard_normal((500, D)))
    t = 0.5
    r = slerp(x, k, t, "equal_angle")
    th = angle(x, k)
    far = th >= t * np.pi / 2
    assert np.allclose(angle(x, r)[far], t * np.pi / 2, atol=1e-6)   # same turn for all
    assert np.allclose(angle(r, k)[far], th[far] - t * np.pi / 2, atol=1e-6)
    assert np.allclose(r[~far], k[~far], atol=1e-6)           # closer than phi: lands on k
    assert np.allclose(np.linalg.norm(r, axis=1), 1)


def _in_span_with_weight_in_0_1(x, k, r, rotation, t):
    """r is the claim-5 slerp of x toward k with the per-sub-feature weight t_i in [0, 1]."""
    c = np.sum(x * k, -1, keepdims=True)
    ti = rotation_weight(c, t, rotation)
    assert ti.min() >= 0 and ti.max() <= 1
    th = angle(x, k)[:, None]
    want = (np.sin((1 - ti) * th) * x + np.sin(ti * th) * k) / np.sin(th)
    assert np.abs(r - want).max() < 1e-9


def test_equal_distance_variant_lands_every_sub_feature_at_the_same_angle(rng):
    x, k = unit(rng.standard_normal((500, D))), unit(rng.standard_normal((500, D)))
    for t in (0.5, 0.9, 0.95):
        r = slerp(x, k, t, "equal_distance")
        alpha = (1 - t) * np.pi / 2
        assert np.allclose(np.linalg.norm(r, axis=1), 1, atol=1e-12)
        assert np.allclose(angle(r, k), alpha, atol=1e-6)     # same distance to the key
        az = lambda v: unit(v - np.sum(v * k, -1, keepdims=True) * k)
        assert np.allclose(az(r), az(x), atol=1e-9)           # azimuth about k preserved
        _in_span_with_weight_in_0_1(x, k, r, "equal_distance", t)
    # with one key, the cosine of two landed vectors is affine in their azimuth cosine
    k1 = unit(rng.standard_normal(D))
    x1, x2 = unit(rng.standard_normal((2, 200, D)))
    t, alpha = 0.9, 0.1 * np.pi / 2
    az = lambda v: unit(v - np.sum(v * k1, -1, keepdims=True) * k1)
    cos = np.sum(slerp(x1, k1, t, "equal_distance") * slerp(x2, k1, t, "equal_distance"), -1)
    want = np.cos(alpha) ** 2 + np.sin(alpha) ** 2 * np.sum(az(x1) * az(x2), -1)
    assert np.allclose(cos, want, atol=1e-12)
    # a feature already closer to its key than alpha stays put (weight 0)
    near = unit(k1 + 0.01 * unit(rng.standard_normal(D)))
    assert np.allclose(slerp(near, k1, 0.5, "equal_distance"), near)


def test_orthographic_variant_offsets_by_a_fixed_share_of_the_feature(rng):
    x, k = unit(rng.standard_normal((500, D))), unit(rng.standard_normal((500, D)))
    t = 0.9
    r = slerp(x, k, t, "orthographic")
    c = np.sum(x * k, -1, keepdims=True)
    eps = orthographic_eps(t)
    rc = np.sum(r * k, -1, keepdims=True)
    assert np.allclose(r - rc * k, eps * (x - c * k), atol=1e-12)   # offset = eps * P(x)
    assert np.allclose(np.linalg.norm(r, axis=1), 1, atol=1e-12)
    _in_span_with_weight_in_0_1(x, k, r, "orthographic", t)


# --------------------------------------------------------------------------- check 3
@pytest.mark.parametrize("fill", ["zero", "random", "key"])
def test_mode_a_drops_exactly_n_with_the_fill_value(rng, fill):
    x = unit(rng.standard_normal((G, D)))
    cfg = ProtectConfig(n_drop=5, fill=fill)
    t = enrol(x, cfg, rng=rng)
    assert np.all((~t.mask).sum(1) == 5)
    # before renormalisation the dropped entries were the fill: they are fill / norm now
    raw = protect_with(x, t.key, t.mask, t.fill, cfg)
    if fill == "zero":
        assert t.fill is None and np.all(t.data[~t.mask] == 0)
    else:
        if fill == "key":                                     # the key's own entries
            assert np.array_equal(t.fill[~t.mask], t.keys()[~t.mask])
        ratio = t.data[~t.mask] / t.fill[~t.mask]
        per_cell = np.repeat(np.arange(G), 5)
        for g in range(G):                                    # one scale per sub-feature
            assert np.allclose(ratio[per_cell == g], ratio[per_cell == g][0], rtol=1e-5)
    assert np.allclose(raw, t.data, atol=1e-6)


def test_mode_a_positions_are_uniform_chi_square(rng):
    m = random_mask(20000, D, 4, rng)
    counts = (~m).sum(0)
    expected = 20000 * 4 / D
    chi2 = np.sum((counts - expected) ** 2 / expected)
    assert chi2 < 37.7                                        # chi^2_15, p = 0.001


# --------------------------------------------------------------------------- check 4
def test_mode_b_counts_follow_importance(rng):
    for _ in range(200):
        imp = rng.random(G) + 0.05
        total = int(rng.integers(0, G * (D - 1) + 1))
        n = drop_counts(imp, total, D)
        o = np.argsort(imp)
        assert n.sum() == total and n.min() >= 0 and n.max() <= D - 1
        assert np.all(np.diff(n[o]) <= 0)                     # more important, fewer drops
    imp = rng.random(G) + 0.05
    a = enrol(unit(rng.standard_normal((G, D))), ProtectConfig(n_drop=4), rng=rng)
    b = enrol(unit(rng.standard_normal((G, D))), ProtectConfig(n_drop=4,
                                                               drop_mode="importance"),
              importance=imp, rng=rng)
    assert (~a.mask).sum() == (~b.mask).sum() == 4 * G       # same budget, same total
    assert (~b.mask).sum(1)[np.argmax(imp)] <= (~b.mask).sum(1)[np.argmin(imp)]


# --------------------------------------------------------------------------- checks 5-8
CONFIGS = [ProtectConfig(), ProtectConfig(fill="random"), ProtectConfig(key_mode="shared"),
           ProtectConfig(t=0.6, rotation="equal_angle", drop_mode="importance"),
           DEFAULT_CONFIG,
           ProtectConfig(t=0.9, rotation="orthographic", fill="key", key_mode="shared")]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_unit_norm_record_reproducibility_and_self_match(rng, cfg):
    x = unit(rng.standard_normal((G, D)))
    imp = rng.random(G) + 0.1
    t = enrol(x, cfg, importance=imp, rng=rng)
    assert np.allclose(np.linalg.norm(t.data, axis=1), 1, atol=1e-6)          # check 5
    # check 6: the record holds e, key(s), mask (+ fill), never x
    blob = t.to_bytes()
    back = ProtectedTemplate.from_bytes(blob)
    assert np.array_equal(back.data, t.data) and np.array_equal(back.key, t.key)
    assert np.array_equal(back.mask, t.mask) and back.config == t.config
    assert (back.fill is None) == (cfg.fill == "zero")
    assert back.key.shape == ((1, D) if cfg.key_mode == "shared" else (G, D))
    assert x.astype("<f4").tobytes()[:64] not in blob
    assert np.abs(np.sum(t.data * x, 1)).mean() < 0.99                         # not x
    # check 7: re-encrypting with the stored key/mask/fill reproduces e; self-match = 1
    again = protect_with(x, t.key, t.mask, t.fill, cfg)
    assert np.abs(again - t.data).max() < 1e-6
    w = imp / imp.sum()
    assert match_score(x, t, w) == pytest.approx(1.0, abs=1e-6)
    # check 8: fresh keys, different templates
    t2 = enrol(x, cfg, importance=imp, rng=rng)
    cos = np.sum(unit(t.data.ravel()) * unit(t2.data.ravel()))
    assert cos < 1 - 1e-3


def test_enrol_many_matches_enrol(rng):
    X = unit(rng.standard_normal((5, G, D)))
    for cfg in CONFIGS:
        data, keys, masks, fills = enrol_many(X, cfg, importance=rng.random(G) + 0.1, rng=rng)
        for i in range(5):
            again = protect_with(X[i], keys[i], masks[i], None if fills is None else fills[i],
                                 cfg)
            assert np.abs(again - data[i]).max() < 1e-5
        assert np.allclose(np.linalg.norm(data, axis=-1), 1, atol=1e-5)


# --------------------------------------------------------------------------- check 13
def test_drop_is_what_makes_it_irreversible(rng):
    x, k = unit(rng.standard_normal((200, D))), unit(rng.standard_normal((200, D)))
    t = 0.7
    r = slerp(x, k, t)
    assert np.abs(inverse_slerp(r, k, t) - x).max() < 1e-9    # no drop: exact inversion
    mask = random_mask(200, D, 4, rng)
    e = protect_with(x, k, mask, None, ProtectConfig(t=t))
    err = np.abs(inverse_slerp(e, k, t) - x).max(1)
    assert err.min() > 1e-2                                   # with a drop: not recovered
    # many-to-one: changing x's dropped coordinates leaves e unchanged? (same e, other x)
    x2 = x.copy()
    x2[~mask] += 0.3 * rng.standard_normal((~mask).sum())
    x2 = unit(x2)
    e2 = protect_with(x2, k, mask, None, ProtectConfig(t=t))
    assert np.abs(inverse_slerp(e2, k, t) - x2).max(1).min() > 1e-2


def test_key_strip_leaks_the_kept_direction_as_the_appendix_says(rng):
    """Check 14 (documented, not a security claim): with the key, the kept coordinates'
    direction comes back for any t."""
    x = unit(rng.standard_normal((G, D)))
    for t in (0.5, 0.95):
        tp = enrol(x, ProtectConfig(t=t, n_drop=4), rng=rng)
        xs = key_strip(tp)
        xm = unit(np.where(tp.mask, x, 0.0))
        assert np.mean(np.sum(xs * xm, 1)) > 0.7


def test_config_is_checked():
    with pytest.raises(ValueError):
        ProtectConfig(t=1.5).check()
    with pytest.raises(ValueError):
        ProtectConfig(n_drop=16).check(16)
    with pytest.raises(ValueError):
        ProtectConfig(rotation="orthogonal").check()
    assert ProtectConfig.from_dict(ProtectConfig(t=0.8).to_dict()) == ProtectConfig(t=0.8)


def test_weighted_score_matches_claim_11(rng):
    a, b = unit(rng.standard_normal((G, D))), unit(rng.standard_normal((G, D)))
    cos = np.sum(a * b, 1)
    assert weighted_score(a, b) == pytest.approx(cos.mean())
    w = np.zeros(G)
    w[3] = 0.25
    w[10] = 0.75
    assert weighted_score(a, b, w) == pytest.approx(0.25 * cos[3] + 0.75 * cos[10])


def test_shipped_default_keeps_the_claims(rng):
    """The shipped default: claim-6 counts (a budget of 25 over 49 cells, the more important
    cells dropping fewer), key fill stored as nothing but the key, equal-distance landing."""
    cfg = DEFAULT_CONFIG
    assert cfg.drop_mode == "importance" and cfg.fill == "key"
    imp = rng.random(G) + 0.05
    x = unit(rng.standard_normal((G, D)))
    t = enrol(x, cfg, importance=imp, rng=rng)
    n = (~t.mask).sum(1)
    assert n.sum() == cfg.budget(G) and 0 < n.sum() < G
    assert np.all(np.diff(n[np.argsort(imp)]) <= 0)
    # the record stores no fill array: it is rebuilt from the key and the mask
    plain = ProtectedTemplate(t.data, t.key, t.mask, None, ProtectConfig(
        **{**cfg.to_dict(), "fill": "zero"})).to_bytes()
    blob = t.to_bytes()
    assert abs(len(blob) - len(plain)) < 16
    back = ProtectedTemplate.from_bytes(blob)
    assert np.array_equal(back.fill, t.fill)
    kept = t.mask
    r = slerp(x, t.keys(), cfg.t, cfg.rotation)
    assert np.allclose(unit(np.where(kept, r, t.keys())), t.data, atol=1e-6)
