"""Geometric "candidate palm print" generator: the random crease geometry of a synthetic
palm (seed 004, US 2025/0259424 A1).

Pure numpy geometry for the stage-1 candidate image of the patent: 2-5 *major*
palm lines, each a quadratic Bezier curve (first positioning point P0, major
line adjustment point P1, second positioning point P2), plus 5-15 thinner,
shorter, shallower *minor* lines inside the palm-print distribution region.

Conventions (the synthetic-palm spec, seed 004, sections 3.3-3.9):

* Coordinates are y-up mathematical coordinates in the unit square (the
  "palm print generation region" of [0261]/[0281]); corner (0, 1) is the
  visual upper-left of a rendered image.
* A left hand's P0 lies in the quarter disc of radius 1/2 at corner (0, 1) and
  its P2 in the quarter disc at corner (1, 0) ([0258]-[0269]); a right hand is
  the x-mirror (x -> 1 - x) of a left-hand draw ([0049], spec 3.3).
* The unit square is read as the 5 cm x 5 cm ROI of [0244] (spec section 4,
  item 6), so 3 cm -> 0.6, 1 cm -> 0.2 and 1 mm -> 0.02 of the side.
* Stroke widths are stored in unit-square units (fraction of the side), so a
  renderer scales them with the output size.

All randomness comes from a ``numpy.random.Generator`` passed in by the caller.

Modules: the curve geometry (no randomness) lives in :mod:`device.synth.bezier_geometry`, the
configuration, the :class:`Candidate` container and the rules' bounds in
:mod:`device.synth.candidate`; this module samples candidates and jitters them, and re-exports
the public names of both.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Tuple

import numpy as np

from device.synth.bezier_geometry import (FIG7_LINES, bezier_arc_length,  # noqa: F401
                                          chord_frame, fig7_lines, from_chord_frame,
                                          in_end_region, in_start_region, in_unit_square,
                                          lines_crossing_box, quad_bezier, sagitta_ratio,
                                          sample_curves, signed_sagitta, third_region_contains,
                                          third_region_contains_slope_form)
from device.synth.candidate import (Candidate, CandidateConfig, DensityMode,  # noqa: F401
                                    Hand, RuleMode, density_deficits, minor_length_cap,
                                    minor_width_cap)


# --------------------------------------------------------------------------
# Positioning and adjustment points (spec 3.4-3.5)
# --------------------------------------------------------------------------


def _quarter_disc(rng: np.random.Generator, n: Optional[int], radius: float) -> np.ndarray:
    """Uniform-by-area points in the quarter disc {x, y >= 0, x^2+y^2 <= r^2}."""
    shape = () if n is None else (n,)
    r = radius * np.sqrt(rng.random(shape))
    phi = 0.5 * math.pi * rng.random(shape)
    return np.stack([r * np.cos(phi), r * np.sin(phi)], axis=-1)


def sample_start_point(
    rng: np.random.Generator, n: Optional[int] = None, radius: float = 0.5
) -> np.ndarray:
    """First positioning point, uniform by area in the quarter disc at (0, 1).

    Polar sampling r = R*sqrt(U) (spec 3.4 recommendation, [0262]/[0269]).
    Returns shape (2,) or (n, 2).
    """
    q = _quarter_disc(rng, n, radius)
    return np.stack([q[..., 0], 1.0 - q[..., 1]], axis=-1)


def sample_end_point(
    rng: np.random.Generator, n: Optional[int] = None, radius: float = 0.5
) -> np.ndarray:
    """Second positioning point, uniform by area in the quarter disc at (1, 0).

    Spec 3.4 / [0265] (the text mislabels it "first").  Shape (2,) or (n, 2).
    """
    q = _quarter_disc(rng, n, radius)
    return np.stack([1.0 - q[..., 0], q[..., 1]], axis=-1)


def sample_control_points(
    rng: np.random.Generator,
    p0: np.ndarray,
    p2: np.ndarray,
    half_side: float = 1.0 / 3.0,
    in_square: bool = True,
    max_tries: int = 1000,
) -> np.ndarray:
    """Major line adjustment points, uniform in the third region ([0289], spec 3.5).

    P1 = M + u*d + v*n with u, v ~ U[-1/3, 1/3].  With ``in_square`` the draw
    is rejection-resampled until P1 is also in the unit square (uniform on the
    intersection; the spec allows clipping, resampling keeps P1 inside the
    chord-aligned square).  ``p0``, ``p2`` have shape (n, 2).
    """
    p0 = np.asarray(p0, dtype=np.float64).reshape(-1, 2)
    p2 = np.asarray(p2, dtype=np.float64).reshape(-1, 2)
    out = np.empty_like(p0)
    todo = np.arange(len(p0))
    for _ in range(max_tries):
        if todo.size == 0:
            break
        uv = rng.uniform(-half_side, half_side, size=(todo.size, 2))
        cand = from_chord_frame(p0[todo], p2[todo], uv[:, 0], uv[:, 1])
        ok = in_unit_square(cand) if in_square else np.ones(todo.size, bool)
        out[todo[ok]] = cand[ok]
        todo = todo[~ok]
    if todo.size:  # the chord midpoint is always valid
        out[todo] = 0.5 * (p0[todo] + p2[todo])
    return out


# --------------------------------------------------------------------------
# Sampling (spec 3.4-3.9)
# --------------------------------------------------------------------------


def sample_majors(rng: np.random.Generator, n: int, config: CandidateConfig) -> np.ndarray:
    """n left-hand major lines (n, 3, 2): quarter-disc ends + third-region P1."""
    p0 = sample_start_point(rng, n, config.radius)
    p2 = sample_end_point(rng, n, config.radius)
    p1 = sample_control_points(
        rng, p0, p2, config.third_half_side, in_square=config.control_in_square
    )
    return np.stack([p0, p1, p2], axis=1)


def _unit_chord_arc(w: np.ndarray) -> np.ndarray:
    """Arc length of the Bezier with chord (0,0)-(1,0) and P1 = (1/2, w)."""
    ctrl = np.zeros(np.shape(w) + (3, 2))
    ctrl[..., 1, 0] = 0.5
    ctrl[..., 1, 1] = w
    ctrl[..., 2, 0] = 1.0
    return bezier_arc_length(ctrl)


def sample_minors(
    rng: np.random.Generator,
    m: int,
    length_cap: float,
    config: CandidateConfig,
    box: Tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0),
    max_tries: int = 10000,
) -> np.ndarray:
    """m minor lines (m, 3, 2) per the spec 3.9 recommendation.

    Arc length L ~ U[l_min, cap) with cap from the length pattern, P0 uniform
    in ``box`` (default the whole unit-square region), direction uniform, P1 =
    chord midpoint + normal offset w*chord with w ~ U[-bend, bend]; the chord
    is scaled so the arc length is exactly L.  (P0, direction) is resampled
    until P1, P2 lie in the unit square (all positioning points in the
    distribution region, [0169]-[0176]).
    """
    if m == 0:
        return np.zeros((0, 3, 2))
    cap = min(length_cap, 10.0) * (1.0 - 1e-9)
    lmin = min(config.minor_length_min, 0.5 * cap)
    length = rng.uniform(lmin, cap, size=m)
    w = rng.uniform(-config.minor_bend, config.minor_bend, size=m)
    chord = length / _unit_chord_arc(w)
    out = np.empty((m, 3, 2))
    todo = np.arange(m)
    x0, y0, x1, y1 = box
    over = 4  # proposals per pending line and round
    for _ in range(max_tries):
        if todo.size == 0:
            break
        k = todo.size * over
        idx = np.repeat(todo, over)
        p0 = np.stack([rng.uniform(x0, x1, k), rng.uniform(y0, y1, k)], axis=-1)
        theta = rng.uniform(0.0, 2.0 * math.pi, k)
        dvec = np.stack([np.cos(theta), np.sin(theta)], axis=-1)
        c = chord[idx][:, None]
        p2 = p0 + c * dvec
        nvec = np.stack([-dvec[:, 1], dvec[:, 0]], axis=-1)
        p1 = 0.5 * (p0 + p2) + (w[idx] * chord[idx])[:, None] * nvec
        ok = (in_unit_square(p1) & in_unit_square(p2)).reshape(todo.size, over)
        hit = ok.any(axis=1)
        first = np.argmax(ok, axis=1)[hit] + over * np.flatnonzero(hit)
        out[todo[hit]] = np.stack([p0[first], p1[first], p2[first]], axis=1)
        todo = todo[~hit]
    if todo.size:
        raise RuntimeError("could not place minor lines inside the region")
    return out


def _enforce_density(
    rng: np.random.Generator, minors: np.ndarray, cap: float, config: CandidateConfig
) -> np.ndarray:
    """Apply the density pattern ([0075], check 13) to a set of minor lines."""
    if config.density is None:
        return minors
    if config.density == "region":
        crossing = lines_crossing_box(minors, config.density_region) if len(minors) else np.zeros(0, bool)
        miss = config.density_region_min - int(crossing.sum())
        if miss <= 0:
            return minors
        new = sample_minors(rng, miss, cap, config, box=config.density_region)
        free = np.flatnonzero(~crossing)
        minors = minors.copy()
        n_replace = min(miss, free.size)
        minors[free[:n_replace]] = new[:n_replace]
        return np.concatenate([minors, new[n_replace:]], axis=0)
    for _ in range(1000):
        deficits = density_deficits(minors, config)
        if not deficits:
            return minors
        box, miss = deficits[0]
        minors = np.concatenate([minors, sample_minors(rng, miss, cap, config, box=box)])
    raise RuntimeError("density pattern could not be satisfied")


def sample_candidate(
    rng: np.random.Generator,
    hand: Hand = "left",
    config: CandidateConfig = CandidateConfig(),
) -> Candidate:
    """Draw one candidate palm print (claim 1 (a)-(d), claims 9-10, spec 3.2-3.9).

    Majors: count ~ U{2..5}; P0 in the quarter disc at (0, 1), P2 in the
    quarter disc at (1, 0), P1 uniform in the 2/3 chord-aligned square.
    Minors: count ~ U{5..15} in the unit-square distribution region (spec 3.8
    (b)), shorter and thinner than the majors per the configured rules.
    A right hand is the x-mirror of the left-hand draw from the same rng state.
    """
    if hand not in ("left", "right"):
        raise ValueError(f"bad hand {hand!r}")
    n = int(rng.integers(config.major_count[0], config.major_count[1] + 1))
    m = int(rng.integers(config.minor_count[0], config.minor_count[1] + 1))
    majors = sample_majors(rng, n, config)
    scale = 1.0 / config.render_size
    major_w = rng.uniform(*config.major_width_px, size=n) * scale
    major_d = rng.uniform(*config.major_darkness, size=n)
    cap = minor_length_cap(majors, config)
    minors = sample_minors(rng, m, cap, config)
    minors = _enforce_density(rng, minors, cap, config)
    m = len(minors)
    w_cap = minor_width_cap(major_w, config)
    w_lo = config.minor_width_px[0] * scale
    w_hi = min(config.minor_width_px[1] * scale, w_cap * (1.0 - 1e-9))
    if w_lo > w_hi:
        raise ValueError("minor width range incompatible with the thickness rule")
    minor_w = rng.uniform(w_lo, w_hi, size=m)
    minor_d = rng.uniform(*config.minor_darkness, size=m)
    cand = Candidate("left", majors, major_w, major_d, minors, minor_w, minor_d)
    return cand.mirrored() if hand == "right" else cand


# --------------------------------------------------------------------------
# Jitter: several samples of one identity (spec 3.11 tolerance rule, 3.13)
# --------------------------------------------------------------------------


def _jitter_lines(
    rng: np.random.Generator,
    lines: np.ndarray,
    max_delta: float,
    valid,
    max_tries: int,
) -> np.ndarray:
    """Rejection-sample per-line deltas in [-max_delta, max_delta]; fallback = unchanged."""
    out = np.array(lines, dtype=np.float64)
    if max_delta <= 0 or len(out) == 0:
        return out
    todo = np.arange(len(out))
    for _ in range(max_tries):
        if todo.size == 0:
            break
        cand = out[todo] + rng.uniform(-max_delta, max_delta, size=(todo.size, 3, 2))
        ok = valid(cand)
        out[todo[ok]] = cand[ok]
        todo = todo[~ok]
    return out


def jitter_candidate(
    cand: Candidate,
    rng: np.random.Generator,
    major_range: float,
    minor_range: float,
    config: CandidateConfig = CandidateConfig(),
    max_tries: int = 200,
) -> Candidate:
    """Perturb every point by at most the change ranges ([0095], spec 3.11/3.13).

    Each coordinate of each major (minor) point moves by at most
    ``major_range`` (``minor_range``).  Deltas are rejection-resampled per
    line so the rules still hold: P0/P2 stay in their quarter discs, P1 in the
    new third region (and the unit square), majors stay longer than every
    minor, minors stay in the unit square and under the length cap.  A line
    with no valid draw in ``max_tries`` is kept unchanged (always valid).
    Widths and darkness are kept.  The density pattern is not re-checked.
    """
    base = cand.mirrored() if cand.hand == "right" else cand
    longest_minor = float(np.max(bezier_arc_length(base.minors))) if base.n_minor else 0.0
    need_long = config.minor_length_rule in ("shortest_major", "both")

    def major_ok(ctrl: np.ndarray) -> np.ndarray:
        p0, p1, p2 = ctrl[:, 0], ctrl[:, 1], ctrl[:, 2]
        ok = in_start_region(p0, config.radius) & in_end_region(p2, config.radius)
        ok &= third_region_contains(p0, p2, p1, config.third_half_side)
        if config.control_in_square:
            ok &= in_unit_square(p1)
        if need_long:
            ok &= bezier_arc_length(ctrl) > longest_minor
        return ok

    majors = _jitter_lines(rng, base.majors, major_range, major_ok, max_tries)
    cap = minor_length_cap(majors, config)

    def minor_ok(ctrl: np.ndarray) -> np.ndarray:
        return in_unit_square(ctrl).all(axis=-1) & (bezier_arc_length(ctrl) < cap)

    minors = _jitter_lines(rng, base.minors, minor_range, minor_ok, max_tries)
    out = dataclasses.replace(base, majors=majors, minors=minors)
    return out.mirrored() if cand.hand == "right" else out
