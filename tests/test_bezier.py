"""Acceptance checks 1-14 of spec seed-004 section 6 for device/synth/bezier.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from device.synth.bezier import (
    FIG7_LINES,
    Candidate,
    CandidateConfig,
    bezier_arc_length,
    chord_frame,
    fig7_lines,
    in_end_region,
    in_start_region,
    jitter_candidate,
    quad_bezier,
    sagitta_ratio,
    sample_candidate,
    sample_curves,
    sample_end_point,
    sample_start_point,
    signed_sagitta,
    third_region_contains,
    third_region_contains_slope_form,
)

N_DRAWS = 10_000


@pytest.fixture(scope="module")
def draws():
    """10,000 left-hand candidates from one seeded generator."""
    rng = np.random.default_rng(20240419)
    return [sample_candidate(rng) for _ in range(N_DRAWS)]


@pytest.fixture(scope="module")
def majors(draws):
    return np.concatenate([c.majors for c in draws])


@pytest.fixture(scope="module")
def minors(draws):
    return np.concatenate([c.minors for c in draws])


# ---------------------------------------------------------------- checks 1-2


def test_major_counts_cover_2_to_5(draws):
    counts = np.array([c.n_major for c in draws])
    assert counts.min() >= 2 and counts.max() <= 5
    hist = np.bincount(counts, minlength=6)[2:]
    assert np.all(hist > 0), hist
    # roughly uniform over the 4 cases ([0051])
    assert np.all(np.abs(hist / N_DRAWS - 0.25) < 0.03), hist


def test_minor_counts_cover_5_to_15(draws):
    counts = np.array([c.n_minor for c in draws])
    assert counts.min() >= 5 and counts.max() <= 15
    hist = np.bincount(counts, minlength=16)[5:]
    assert len(hist) == 11 and np.all(hist > 0), hist
    assert np.all(np.abs(hist / N_DRAWS - 1 / 11) < 0.02), hist


# ---------------------------------------------------------------- checks 3-4


def test_bezier_identities(majors):
    p0, p1, p2 = majors[:, 0], majors[:, 1], majors[:, 2]
    assert np.allclose(quad_bezier(p0, p1, p2, 0.0), p0, rtol=0, atol=1e-9)
    assert np.allclose(quad_bezier(p0, p1, p2, 1.0), p2, rtol=0, atol=1e-9)
    mid = (p0 + 2 * p1 + p2) / 4
    assert np.allclose(quad_bezier(p0, p1, p2, 0.5), mid, rtol=0, atol=1e-9)
    # vector-t evaluation agrees with scalar evaluation
    pts = sample_curves(majors[:50], 9)
    for k, t in enumerate(np.linspace(0, 1, 9)):
        assert np.allclose(pts[:, k], quad_bezier(p0[:50], p1[:50], p2[:50], t), atol=1e-12)


def test_bezier_not_through_control_point():
    p0, p1, p2 = np.array([0.0, 0.0]), np.array([0.5, 1.0]), np.array([1.0, 0.0])
    curve = sample_curves(np.stack([p0, p1, p2])[None], 1001)[0]
    assert np.min(np.linalg.norm(curve - p1, axis=1)) > 0.4


def test_curve_inside_convex_hull(majors):
    pts = sample_curves(majors, 33)  # (n, T, 2)
    a, b, c = majors[:, 0, None], majors[:, 1, None], majors[:, 2, None]

    def cross(u, v):
        return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]

    area = cross(b - a, c - a)
    ok = np.abs(area[:, 0]) > 1e-6
    w1 = cross(b - pts, c - pts) / area
    w2 = cross(c - pts, a - pts) / area
    w3 = 1.0 - w1 - w2
    tol = -1e-9
    assert ok.mean() > 0.99
    assert np.all((w1[ok] >= tol) & (w2[ok] >= tol) & (w3[ok] >= tol))


# ---------------------------------------------------------------- checks 5-8


def test_start_and_end_regions(majors):
    p0, p2 = majors[:, 0], majors[:, 2]
    x, y = p0[:, 0], p0[:, 1]
    assert np.all(x**2 + (y - 1) ** 2 <= 0.25 + 1e-12)
    assert np.all((x >= 0) & (x <= 0.5) & (y >= 0.5) & (y <= 1))
    x, y = p2[:, 0], p2[:, 1]
    assert np.all((x - 1) ** 2 + y**2 <= 0.25 + 1e-12)
    assert np.all((x >= 0.5) & (x <= 1) & (y >= 0) & (y <= 0.5))


def test_right_hand_is_x_mirror():
    for seed in range(200):
        left = sample_candidate(np.random.default_rng(seed), "left")
        right = sample_candidate(np.random.default_rng(seed), "right")
        assert right.hand == "right"
        np.testing.assert_array_equal(right.params(), left.mirrored().params())
        mirrored = right.majors.copy()
        mirrored[..., 0] = 1 - mirrored[..., 0]
        assert np.all(in_start_region(mirrored[:, 0])) and np.all(in_end_region(mirrored[:, 2]))
        # right-hand starts are at the upper-right corner (1, 1)
        s = right.majors[:, 0]
        assert np.all((s[:, 0] - 1) ** 2 + (s[:, 1] - 1) ** 2 <= 0.25 + 1e-12)
    assert np.allclose(left.mirrored().mirrored().params(), left.params())


def _quarter_disc_area_left_of(a: float, r: float = 0.5) -> float:
    """Area of {0 <= s <= a, 0 <= t <= sqrt(r^2 - s^2)} as a fraction of the quarter disc."""
    part = 0.5 * (a * math.sqrt(r * r - a * a) + r * r * math.asin(a / r))
    return part / (math.pi * r * r / 4)


@pytest.mark.parametrize("which", ["start", "end"])
def test_quarter_disc_area_coverage(which):
    rng = np.random.default_rng(7)
    if which == "start":
        p = sample_start_point(rng, N_DRAWS)
        q = np.stack([p[:, 0], 1 - p[:, 1]], axis=1)  # offsets from corner (0, 1)
    else:
        p = sample_end_point(rng, N_DRAWS)
        q = np.stack([1 - p[:, 0], p[:, 1]], axis=1)  # offsets from corner (1, 0)
    r = np.hypot(q[:, 0], q[:, 1])
    ang = np.arctan2(q[:, 1], q[:, 0])
    fracs = {
        "inner_half_radius": ((r < 0.5 / math.sqrt(2)).mean(), 0.5),
        "angular_half": ((ang < math.pi / 4).mean(), 0.5),
        "s<0.25": ((q[:, 0] < 0.25).mean(), _quarter_disc_area_left_of(0.25)),
        "t<0.25": ((q[:, 1] < 0.25).mean(), _quarter_disc_area_left_of(0.25)),
    }
    for name, (got, want) in fracs.items():
        for g, w in ((got, want), (1 - got, 1 - want)):
            assert abs(g - w) <= 0.05 * w, (name, g, w)


# ---------------------------------------------------------------- checks 9-11


def test_third_region_chord_frame(majors):
    p0, p1, p2 = majors[:, 0], majors[:, 1], majors[:, 2]
    u, v = chord_frame(p0, p2, p1)
    assert np.all(np.abs(u) <= 1 / 3 + 1e-12) and np.all(np.abs(v) <= 1 / 3 + 1e-12)
    assert np.all(third_region_contains(p0, p2, p1))
    # the draws fill the square (not degenerate to the chord)
    assert np.abs(u).max() > 0.3 and np.abs(v).max() > 0.3
    # control points are also in the unit square (distribution region)
    assert np.all((p1 >= 0) & (p1 <= 1))


def test_third_region_slope_form_agrees(majors):
    p0, p1, p2 = majors[:, 0], majors[:, 1], majors[:, 2]
    assert np.all(third_region_contains_slope_form(p0, p2, p1))
    rng = np.random.default_rng(3)
    n = 20_000
    a = rng.uniform(0, 1, (n, 2))
    b = rng.uniform(0, 1, (n, 2))
    c = 0.5 * (a + b) + rng.uniform(-0.6, 0.6, (n, 2))
    chord_ok = (np.abs(b - a) > 1e-3).all(axis=1)
    a, b, c = a[chord_ok], b[chord_ok], c[chord_ok]
    frame = third_region_contains(a, b, c)
    slope = third_region_contains_slope_form(a, b, c)
    assert 0.2 < frame.mean() < 0.8
    np.testing.assert_array_equal(frame, slope)
    with pytest.raises(ValueError):
        third_region_contains_slope_form([0, 0], [1, 0], [0.5, 0.1])


def test_fig7_fixture():
    lines = fig7_lines()
    ratios = sagitta_ratio(lines[:, 0], lines[:, 1], lines[:, 2])
    np.testing.assert_allclose(ratios, [0.125, 0.050, 0.103], atol=6e-4)
    # numeric: max distance of the sampled curve from its chord
    pts = sample_curves(lines, 2001)
    for k in range(3):
        p0, p2 = lines[k, 0], lines[k, 2]
        d = (p2 - p0) / np.linalg.norm(p2 - p0)
        dist = np.abs((pts[k] - p0) @ np.array([-d[1], d[0]]))
        assert abs(dist.max() / np.linalg.norm(p2 - p0) - ratios[k]) < 1e-6
    side = np.sign(signed_sagitta(lines[:, 0], lines[:, 1], lines[:, 2]))
    assert side[0] == side[1] and side[2] == -side[0]
    assert np.all(third_region_contains(lines[:, 0], lines[:, 2], lines[:, 1]))
    assert sorted(FIG7_LINES) == [710, 720, 730]
    with pytest.raises(TypeError):
        FIG7_LINES[740] = FIG7_LINES[710]  # immutable constant


# ---------------------------------------------------------------- checks 12-14


def test_minor_lines_shorter_thinner_inside(draws, minors):
    assert np.all((minors >= 0) & (minors <= 1))
    for c in draws:
        maj_len = bezier_arc_length(c.majors)
        min_len = bezier_arc_length(c.minors)
        assert min_len.max() < min(maj_len.min(), 0.6)
        assert c.minor_widths.max() < min(c.major_widths.min(), 0.02)
        assert c.minor_darkness.max() <= c.major_darkness.min()
    lengths = bezier_arc_length(minors)
    assert lengths.min() >= 0.05 and lengths.max() > 0.5


@pytest.mark.parametrize("rule", ["shortest_major", "threshold"])
def test_minor_rule_modes(rule):
    cfg = CandidateConfig(minor_length_rule=rule, minor_thickness_rule=rule,
                          minor_length_threshold=0.3)
    rng = np.random.default_rng(11)
    longest = 0.0
    for _ in range(300):
        c = sample_candidate(rng, config=cfg)
        ml = bezier_arc_length(c.minors)
        longest = max(longest, ml.max())
        if rule == "shortest_major":
            assert ml.max() < bezier_arc_length(c.majors).min()
            assert c.minor_widths.max() < c.major_widths.min()
        else:
            assert ml.max() < 0.3
            assert c.minor_widths.max() < 0.02
    if rule == "shortest_major":
        assert longest > 0.3  # not bounded by the (unused) threshold


def _cell_counts(minors: np.ndarray, cell: float) -> np.ndarray:
    k = int(round(1 / cell))
    pts = sample_curves(minors, 400)
    idx = np.clip((pts / cell).astype(int), 0, k - 1)
    flat = idx[..., 0] * k + idx[..., 1]
    counts = np.zeros(k * k, int)
    for line in flat:
        counts[np.unique(line)] += 1
    return counts


def test_density_patterns():
    rng = np.random.default_rng(5)
    grid = CandidateConfig(density="grid")
    n_minor = []
    for _ in range(20):
        c = sample_candidate(rng, config=grid)
        assert _cell_counts(c.minors, 0.2).min() >= 2
        n_minor.append(c.n_minor)
    assert min(n_minor) >= 5
    region = CandidateConfig(density="region", density_region=(0.6, 0.0, 0.8, 0.2))
    for _ in range(100):
        c = sample_candidate(rng, config=region)
        assert 5 <= c.n_minor <= 15
        pts = sample_curves(c.minors, 400)
        inside = ((pts[..., 0] >= 0.6) & (pts[..., 0] <= 0.8)
                  & (pts[..., 1] >= 0.0) & (pts[..., 1] <= 0.2)).any(axis=1)
        assert inside.sum() >= 3
    # off by default: some draws leave grid cells empty
    plain = [sample_candidate(rng) for _ in range(20)]
    assert any(_cell_counts(c.minors, 0.2).min() < 2 for c in plain)


def _segments_cross(a: np.ndarray, b: np.ndarray) -> bool:
    """Any proper intersection between polylines a (n, T, 2) and b (m, T, 2)."""
    s1 = np.stack([a[:, :-1], a[:, 1:]], axis=2).reshape(-1, 2, 2)
    s2 = np.stack([b[:, :-1], b[:, 1:]], axis=2).reshape(-1, 2, 2)
    p, r = s1[:, None, 0], s1[:, None, 1] - s1[:, None, 0]
    q, s = s2[None, :, 0], s2[None, :, 1] - s2[None, :, 0]

    def cross(u, v):
        return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]

    den = cross(r, s)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = cross(q - p, s) / den
        u = cross(q - p, r) / den
    return bool(np.any((den != 0) & (t >= 0) & (t <= 1) & (u >= 0) & (u <= 1)))


def test_major_minor_crossings_occur(draws):
    crossed = [_segments_cross(sample_curves(c.majors, 17), sample_curves(c.minors, 17))
               for c in draws[:300]]
    assert 0.2 < np.mean(crossed) <= 1.0


# ---------------------------------------------------------------- determinism, config


def test_sampling_is_deterministic():
    a = sample_candidate(np.random.default_rng(99))
    b = sample_candidate(np.random.default_rng(99))
    np.testing.assert_array_equal(a.params(), b.params())
    c = sample_candidate(np.random.default_rng(100))
    assert a.params().shape != c.params().shape or not np.array_equal(a.params(), c.params())


def test_candidate_container_roundtrip(draws):
    c = draws[0]
    back = Candidate.from_params(c.params())
    np.testing.assert_array_equal(back.params(), c.params())
    assert c.majors.shape == (c.n_major, 3, 2) and c.minors.shape == (c.n_minor, 3, 2)
    with pytest.raises(ValueError):
        c.majors[0, 0, 0] = 0.5  # read-only arrays


def test_config_validation():
    with pytest.raises(ValueError):
        CandidateConfig(minor_width_px=(1.0, 2.5), major_width_px=(2.0, 3.5))
    with pytest.raises(ValueError):
        CandidateConfig(minor_darkness=(0.5, 0.9), major_darkness=(0.75, 1.0))
    with pytest.raises(ValueError):
        CandidateConfig(minor_length_rule="never")
    cfg = CandidateConfig(render_size=256)
    c = sample_candidate(np.random.default_rng(0), config=cfg)
    assert np.all((c.major_widths * 256 >= 2.0) & (c.major_widths * 256 <= 3.5))


def test_counts_configurable():
    cfg = CandidateConfig(major_count=(3, 3), minor_count=(22, 22))  # [0167] example
    c = sample_candidate(np.random.default_rng(1), config=cfg)
    assert (c.n_major, c.n_minor) == (3, 22)


# ---------------------------------------------------------------- jitter


@pytest.mark.parametrize("hand", ["left", "right"])
def test_jitter_stays_in_range_and_keeps_rules(draws, hand):
    rng = np.random.default_rng(42)
    r_major, r_minor = 0.02, 0.01
    moved = []
    for base in draws[:1000]:
        base = base if hand == "left" else base.mirrored()
        j = jitter_candidate(base, rng, r_major, r_minor)
        assert j.hand == base.hand
        dmaj = np.abs(j.majors - base.majors).max()
        dmin = np.abs(j.minors - base.minors).max()
        assert dmaj <= r_major + 1e-12 and dmin <= r_minor + 1e-12
        np.testing.assert_array_equal(j.major_widths, base.major_widths)
        left = j if hand == "left" else j.mirrored()
        p0, p1, p2 = left.majors[:, 0], left.majors[:, 1], left.majors[:, 2]
        assert np.all(in_start_region(p0)) and np.all(in_end_region(p2))
        assert np.all(third_region_contains(p0, p2, p1))
        assert np.all((left.all_lines() >= 0) & (left.all_lines() <= 1))
        assert bezier_arc_length(left.minors).max() < min(bezier_arc_length(left.majors).min(), 0.6)
        moved.append(dmaj)
    assert np.mean(moved) > 0.5 * r_major  # real perturbations, not fallbacks
