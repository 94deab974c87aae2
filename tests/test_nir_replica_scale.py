"""device.eval.nir_replica_scale: the pure functions of the larger-replica measurement."""
import numpy as np

from device.eval import nir_replica_scale as R


def test_misfit_mean_abs_over_finite_used_probes():
    use = np.array([True, True, False, True])
    t = np.array([0.0, 1.0, 5.0, np.nan])
    v = np.array([[2.0, -1.0, 100.0, 3.0], [np.nan, 1.5, 0.0, 0.0]])
    np.testing.assert_allclose(R.misfit(v, t, use), [2.0, 0.5])
    assert np.isnan(R.misfit(np.array([np.nan, np.nan, 1.0, 1.0]), t, use))


def test_misfit_is_not_clipped():
    use = np.array([True, False])
    assert R.misfit(np.array([40.0, 0.0]), np.array([0.0, 0.0]), use) == 40.0


def test_best_size_picks_the_least_misfit_size():
    grid = (0.9, 1.0, 1.1, 1.2)
    use = np.array([True, True, False])
    target = np.array([-5.0, -5.0, 0.0])
    by = np.array([[-9, -9, 0], [-7, -7, 0], [-5.2, -4.9, 0], [-3, -3, 0]], float)
    assert R.best_size(by, grid, target, use) == 1.1
    assert np.isnan(R.best_size(np.full((4, 3), np.nan), grid, target, use))


def test_edge_probes_are_the_sides_and_with_tips_the_tips_not_the_height():
    from device.gate.binding_geometry import TIP_REACH_MM, SIDE_REACH_MM, probe_names
    e, et = R.edge_probes(), R.edge_probes(tips=True)
    assert len(e) == len(et) == len(probe_names()) + 1 and not e[-1] and not et[-1]
    assert e.sum() == 2 * len(SIDE_REACH_MM)
    assert et.sum() == 5 * len(TIP_REACH_MM) + 2 * len(SIDE_REACH_MM)


def test_chord_length_of_a_rectangle():
    m = np.zeros((50, 80), bool)
    m[10:30, 20:61] = True                       # 41 px wide, 20 px high
    assert abs(R.chord_length(m, (40, 20), (1, 0)) - 40) <= 1
    assert abs(R.chord_length(m, (40, 20), (0, -3)) - 19) <= 1
    assert R.chord_length(m, (5, 5), (1, 0)) == 0.0
    assert R.chord_length(m, (np.nan, 5), (1, 0)) == 0.0


def test_chord_ratio_scales_with_the_silhouette_not_the_landmarks():
    lm = np.zeros((21, 2))
    lm[5], lm[17], lm[0] = (30, 20), (50, 20), (40, 60)   # span 20, wrist below
    small = np.zeros((100, 100), bool)
    small[10:70, 25:56] = True                             # 31 px wide palm
    big = np.zeros((100, 100), bool)
    big[10:70, 20:61] = True                               # 41 px wide
    r1, r2 = R.chord_ratio(small, lm, 0.3), R.chord_ratio(big, lm, 0.3)
    assert abs(r1 - 1.5) < 0.06 and abs(r2 - 2.0) < 0.06
    lm[17] = lm[5]
    assert np.isnan(R.chord_ratio(big, lm, 0.3))


def test_live_threshold_refuses_at_most_the_allowed_live_values():
    live = np.arange(1000, dtype=float)
    t = R.live_threshold(live, upper=True, allow=1)
    assert (live > t).sum() == 1
    t = R.live_threshold(live, upper=False, allow=1)
    assert (live < t).sum() == 1
    with_nan = np.append(live, np.nan)                     # an unmeasured one counts
    assert (with_nan > R.live_threshold(with_nan, True, 1)).sum() == 0


def test_summarise_counts_refusals_by_variant_and_scale_side():
    rows = {"cls": np.array(["bona_fide"] * 4 + ["mixed_replica_sensor"] * 4),
            "variant": np.array(["", "", "", "", "scale", "scale", "offset", "offset"]),
            "scale": np.array([1, 1, 1, 1, 0.8, 1.2, 1, 1], float)}
    v = np.array([1.0, 1.01, 0.99, 1.3, 0.8, 1.25, 1.0, np.nan])
    s = R.summarise(rows, {"size": (v, True)}, allows=(1, 0))["size"]
    a1, a0 = s["allow_1"], s["allow_0"]
    assert a1["threshold"] == 1.01 and a1["live_refused"] == 1
    assert a1["attacks"]["scale>1"]["refused"] == 1 and a1["attacks"]["scale<1"]["refused"] == 0
    assert a1["attacks"]["offset"] == {"n": 2, "refused": 1}
    assert a0["threshold"] == 1.3 and a0["live_refused"] == 0
    assert a0["attacks"]["scale>1"]["refused"] == 0
    assert s["scale>1"] == [[1.2, 1.25]] and s["live"]["n"] == 4
