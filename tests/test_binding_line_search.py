"""The palm lines' sizes searched lazily (device/gate/binding_line_search.py): the same number as
every view compared at every size (binding_texture.sized_agreement), to the last bit, from
fewer comparisons."""
from __future__ import annotations

import numpy as np

from device.gate import binding_line_search as L
from device.gate import binding_texture as T

SIZES = np.array(T.COMPARED_SIZES)


def _lazy(curves):
    """least_gap_agreement over ``curves`` (one a view, over COMPARED_SIZES) and the sizes it
    compared."""
    asked = []

    def agreement(v, z):
        asked.append((v, z))
        return float(curves[v][T.COMPARED_SIZES.index(z)])
    got = L.least_gap_agreement(agreement, len(curves), T.LIVE_SIZES, T.OTHER_SIZES,
                                T.SIZE_GAIN)
    return got, asked


def _same(a, b):
    return (np.isnan(a) and np.isnan(b)) or a == b


def test_the_search_order_holds_every_size_once():
    for n in (0, 1, 2, 3, 29, 30):
        assert sorted(L.search_order(n)) == list(range(n))


def test_the_lazy_search_gives_the_number_of_every_size_to_the_last_bit():
    rng = np.random.default_rng(7)
    for i in range(600):
        n = int(rng.integers(0, 5))
        curves = [rng.uniform(-0.2, 0.7, len(SIZES)) for _ in range(n)]
        for c in curves:                       # some sizes not compared (too little area)
            c[rng.uniform(size=len(c)) < rng.uniform(0, 0.3)] = np.nan
            if rng.uniform() < 0.1:
                c[[z in T.LIVE_SIZES for z in T.COMPARED_SIZES]] = np.nan
            if rng.uniform() < 0.3:            # live-like: fits best at a live size
                c[:] = np.minimum(c, 0.2)
                c[T.COMPARED_SIZES.index(1.0)] = 0.5
        got, _ = _lazy(curves)
        want = T.sized_agreement(curves, T.COMPARED_SIZES)
        assert _same(got, want), (i, got, want)


def test_a_live_hand_compares_its_first_view_alone_at_the_other_sizes():
    live = np.full(len(SIZES), 0.1)
    live[T.COMPARED_SIZES.index(1.0)] = 0.5          # every view fits best at a live size
    got, asked = _lazy([live, live.copy(), live.copy()])
    assert got == T.sized_agreement([live] * 3, T.COMPARED_SIZES) == 0.5
    n_live, n_other = len(T.LIVE_SIZES), len(T.OTHER_SIZES)
    assert len(asked) == 3 * n_live + n_other < 3 * len(SIZES)
    assert {v for v, z in asked if z in T.OTHER_SIZES} == {0}


def test_a_view_that_cannot_lower_the_least_gap_is_left_early():
    # view 0 fits elsewhere by 0.1 (gap 0.1); views 1 and 2 fit elsewhere by 0.4 at the
    # coarse sweep's first size: once view 0's gap is known, they are left after a few sizes
    base = np.full(len(SIZES), 0.1)
    base[T.COMPARED_SIZES.index(1.0)] = 0.4
    a = base.copy()
    a[T.COMPARED_SIZES.index(T.OTHER_SIZES[0])] = 0.5
    far = base.copy()
    first = T.OTHER_SIZES[L.search_order(len(T.OTHER_SIZES))[0]]
    far[T.COMPARED_SIZES.index(first)] = 0.8
    got, asked = _lazy([a, far, far.copy()])
    assert got == T.sized_agreement([a, far, far], T.COMPARED_SIZES)
    assert abs(got - (0.4 - T.SIZE_GAIN * 0.1)) < 1e-12
    assert sum(1 for v, z in asked if v > 0 and z in T.OTHER_SIZES) <= 2


def test_no_view_with_a_live_size_gives_nan_and_no_other_sizes_no_penalty():
    nan = np.full(len(SIZES), np.nan)
    assert np.isnan(_lazy([nan, nan])[0]) and np.isnan(_lazy([])[0])

    def agreement(v, z):
        return 0.3 + 0.1 * v
    assert L.least_gap_agreement(agreement, 2, T.LIVE_SIZES, (), 3.0) == 0.4


def test_texture_agreement_equals_every_size_compared():
    import cv2
    rng = np.random.default_rng(11)
    size = 128
    img = np.full((size, size), 160.0, np.float32)
    for _ in range(70):
        p = rng.uniform(0, size, (2, 2)).astype(np.int32)
        cv2.line(img, tuple(map(int, p[0])), tuple(map(int, p[1])), 90.0, 1, cv2.LINE_AA)
    lm = np.zeros((21, 2))
    lm[list(T.PALM_LANDMARKS)] = [[64, 110], [30, 85], [40, 25], [58, 20], [76, 22], [94, 30]]
    px = 0.8
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    views, maps = [], {}
    for k, (s, dx) in enumerate(((1.0, 0.0), (1.06, 1.5), (0.9, -1.0))):
        c = np.array([64.0, 60.0])
        maps[k] = ((c[0] + (xx - c[0]) / s + dx).astype(np.float32),
                   (c[1] + (yy - c[1]) / s).astype(np.float32))
        views.append(cv2.remap(img, *maps[k], cv2.INTER_LINEAR))
    got = T.texture_agreement(img, views, maps, lm, px)
    # every size of every view, then sized_agreement (the comparison before the lazy search)
    s_pts = lm[list(T.PALM_LANDMARKS)]
    palm = T.palm_mask(s_pts, img.shape, px)
    sl = np.clip(T._standardised(T.line_map(img, px), palm), -T.CLIP, T.CLIP)
    w = T.compared_area(img, palm, px)
    shift = max(1, int(round(T.SHIFT_MM * px)))
    curves = [T.size_curve(sl, T._standardised(T._view_lines(v, maps[k], px), palm), w,
                           s_pts.mean(axis=0), shift, T.COMPARED_SIZES)
              for k, v in enumerate(views)]
    want = T.sized_agreement(curves, T.COMPARED_SIZES)
    assert np.isfinite(want) and got == want


def _brute_line_agreement(sensor, view, weights, s):
    """line_agreement by its definition, a shift at a time in float64 (the view's map
    reflected past the frame's edge, as cv2.BORDER_REFLECT)."""
    w = weights.astype(np.float64)
    n = w.sum()
    t = sensor.astype(np.float64)
    mt = (t * w).sum() / n
    st = np.sqrt(((t - mt) ** 2 * w).sum() / n)
    pad = np.pad(view.astype(np.float64), s, mode="symmetric")
    h, wd = view.shape
    best = -np.inf
    for dy in range(-s, s + 1):
        for dx in range(-s, s + 1):
            v = pad[s + dy:s + dy + h, s + dx:s + dx + wd]
            var = max((v * v * w).sum() / n - ((v * w).sum() / n) ** 2, 1e-12)
            best = max(best, ((t - mt) * w * v).sum() / (n * st * np.sqrt(var) + 1e-12))
    return best


def test_line_agreement_is_the_correlation_at_every_shift():
    rng = np.random.default_rng(5)
    for i in range(12):
        sensor = rng.normal(size=(48, 40)).astype(np.float32)
        view = (0.6 * np.roll(sensor, (1, -2), (0, 1))
                + rng.normal(size=sensor.shape)).astype(np.float32)
        w = np.zeros(sensor.shape, np.float32)
        y0, x0 = (0, 0) if i % 3 == 0 else (int(rng.integers(1, 12)), int(rng.integers(1, 10)))
        w[y0:y0 + 30, x0:x0 + 25] = rng.uniform(size=(30, 25)) < 0.8   # at the edge: reflected
        s = int(rng.integers(1, 4))
        got = T.line_agreement(sensor, view, w, s)
        assert abs(got - _brute_line_agreement(sensor, view, w, s)) < 1e-5, i
