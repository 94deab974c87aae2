"""Quadratic Bezier geometry of the candidate palm prints (pure numpy, no randomness).

Evaluation and polyline samples of a curve, its arc length, the chord frame of P0P2 and the
third region around its midpoint (where the adjustment point P1 lies), the sagitta, the
start/end quarter discs of a left hand, the unit square and whether a curve enters a box.
Coordinates as in :mod:`device.synth.bezier`: y-up, in the unit square; section numbers refer
to the synthetic-palm spec (seed 004) and bracketed paragraphs to US 2025/0259424 A1.
"""

from __future__ import annotations

import types
from typing import Mapping, Tuple

import numpy as np

#: FIG. 7 worked examples ([0159], spec 3.7): line id -> (P0, P1, P2).
#: The figure uses image-style (y-down) axes, see spec section 4 item 2.
FIG7_LINES: Mapping[int, Tuple[Tuple[float, float], ...]] = types.MappingProxyType(
    {
        710: ((0.0, 0.4), (0.5, 0.6), (0.6, 1.0)),
        720: ((0.0, 0.0), (0.5, 0.3), (1.0, 1.0)),
        730: ((0.3, 0.0), (0.6, 0.3), (1.0, 0.3)),
    }
)

# 16-point Gauss-Legendre rule on [0, 1] for Bezier arc lengths.
_GL_X, _GL_W = np.polynomial.legendre.leggauss(16)
_GL_T = tuple(float(v) for v in 0.5 * (_GL_X + 1.0))
_GL_WT = tuple(float(v) for v in 0.5 * _GL_W)
del _GL_X, _GL_W

_EPS = 1e-12


# --------------------------------------------------------------------------
# Bezier primitives (spec 3.6, [0060]-[0063], [0254])
# --------------------------------------------------------------------------


def quad_bezier(p0, p1, p2, t) -> np.ndarray:
    """Evaluate B(t) = (1-t)^2 P0 + 2t(1-t) P1 + t^2 P2 (spec 3.6, [0161]).

    ``p0, p1, p2`` are arrays of shape (..., 2); ``t`` is a scalar or a 1-D
    array of length T.  Returns shape (..., 2) for scalar t, else (..., T, 2).
    """
    p0, p1, p2 = (np.asarray(p, dtype=np.float64) for p in (p0, p1, p2))
    t_arr = np.asarray(t, dtype=np.float64)
    if t_arr.ndim == 0:
        a, b, c = (1 - t_arr) ** 2, 2 * t_arr * (1 - t_arr), t_arr**2
        return a * p0 + b * p1 + c * p2
    t_col = t_arr[:, None]
    a, b, c = (1 - t_col) ** 2, 2 * t_col * (1 - t_col), t_col**2
    return (
        a * p0[..., None, :] + b * p1[..., None, :] + c * p2[..., None, :]
    )


def sample_curves(ctrl: np.ndarray, n_points: int = 48) -> np.ndarray:
    """Polyline samples of quadratic Beziers ``ctrl`` (..., 3, 2) -> (..., n_points, 2)."""
    ctrl = np.asarray(ctrl, dtype=np.float64)
    t = np.linspace(0.0, 1.0, n_points)
    return quad_bezier(ctrl[..., 0, :], ctrl[..., 1, :], ctrl[..., 2, :], t)


def bezier_arc_length(ctrl: np.ndarray) -> np.ndarray:
    """Arc length of quadratic Beziers ``ctrl`` (..., 3, 2) -> (...,).

    Integrates |B'(t)| with 16-point Gauss-Legendre; this is the "length" of a
    palm line used by the minor-line length pattern ([0073], spec 3.9).
    """
    ctrl = np.asarray(ctrl, dtype=np.float64)
    d0 = (ctrl[..., 1, :] - ctrl[..., 0, :])[..., None, :]
    d1 = (ctrl[..., 2, :] - ctrl[..., 1, :])[..., None, :]
    t = np.asarray(_GL_T)[:, None]
    deriv = 2.0 * ((1.0 - t) * d0 + t * d1)
    speed = np.sqrt(deriv[..., 0] ** 2 + deriv[..., 1] ** 2)
    return speed @ np.asarray(_GL_WT)


def chord_frame(p0, p2, p) -> Tuple[np.ndarray, np.ndarray]:
    """Chord-frame coordinates (u, v) of ``p`` about the midpoint of P0P2.

    u runs along d = (P2-P0)/|P2-P0|, v along n = d rotated +90 degrees
    (spec 3.5 item 4).  Broadcasts over leading axes of (..., 2) inputs.
    """
    p0, p2, p = (np.asarray(a, dtype=np.float64) for a in (p0, p2, p))
    d = p2 - p0
    length = np.hypot(d[..., 0], d[..., 1])
    dx, dy = d[..., 0] / length, d[..., 1] / length
    rel = p - 0.5 * (p0 + p2)
    u = rel[..., 0] * dx + rel[..., 1] * dy
    v = -rel[..., 0] * dy + rel[..., 1] * dx
    return u, v


def from_chord_frame(p0, p2, u, v) -> np.ndarray:
    """Inverse of :func:`chord_frame`: M + u*d + v*n (spec 3.5 item 4)."""
    p0, p2 = np.asarray(p0, dtype=np.float64), np.asarray(p2, dtype=np.float64)
    d = p2 - p0
    length = np.hypot(d[..., 0], d[..., 1])[..., None]
    dhat = d / length
    nhat = np.stack([-dhat[..., 1], dhat[..., 0]], axis=-1)
    u = np.asarray(u, dtype=np.float64)[..., None]
    v = np.asarray(v, dtype=np.float64)[..., None]
    return 0.5 * (p0 + p2) + u * dhat + v * nhat


def third_region_contains(p0, p2, p1, half_side: float = 1.0 / 3.0) -> np.ndarray:
    """True where adjustment point ``p1`` lies in the third region of P0P2.

    The third region is the square of side 2/3 centred on the chord midpoint
    and aligned with the chord ([0281]-[0291]); tested in the robust chord
    frame as |u| <= 1/3 and |v| <= 1/3 (spec 3.5 item 4, check 9).
    """
    u, v = chord_frame(p0, p2, p1)
    tol = half_side + 1e-12
    return (np.abs(u) <= tol) & (np.abs(v) <= tol)


def third_region_contains_slope_form(
    p0, p2, p1, half_side: float = 1.0 / 3.0
) -> np.ndarray:
    """Four-line slope-form test of the third region ([0282]-[0291], check 10).

    With line A: y = k1 x + b1 through P0, P2 and B: y = k2 x + b2 through the
    midpoint (k1 k2 = -1), P1 = (x, y) must satisfy
    k1 x + b3 <= y <= k1 x + b4 and k2 x + b5 <= y <= k2 x + b6 where
    b3,4 = b1 -/+ s*sqrt(1+k1^2) and b5,6 = b2 -/+ s*sqrt(1+k2^2), s = 1/3.
    Raises ValueError for axis-parallel chords, where the slope form is
    undefined (spec section 4 item 4).
    """
    p0, p2, p1 = (np.asarray(a, dtype=np.float64) for a in (p0, p2, p1))
    dx = p2[..., 0] - p0[..., 0]
    dy = p2[..., 1] - p0[..., 1]
    if np.any(np.abs(dx) < 1e-12) or np.any(np.abs(dy) < 1e-12):
        raise ValueError("slope form undefined for axis-parallel chords")
    k1 = dy / dx
    b1 = p0[..., 1] - k1 * p0[..., 0]
    k2 = -1.0 / k1
    xc = 0.5 * (p0[..., 0] + p2[..., 0])
    yc = 0.5 * (p0[..., 1] + p2[..., 1])
    b2 = yc - k2 * xc
    b3 = b1 - half_side * np.sqrt(1.0 + k1**2)
    b4 = b1 + half_side * np.sqrt(1.0 + k1**2)
    b5 = b2 - half_side * np.sqrt(1.0 + k2**2)
    b6 = b2 + half_side * np.sqrt(1.0 + k2**2)
    x, y = p1[..., 0], p1[..., 1]
    tol = 1e-12 * (1.0 + np.abs(k1) + np.abs(k2))
    in_a = (k1 * x + b3 - tol <= y) & (y <= k1 * x + b4 + tol)
    in_b = (k2 * x + b5 - tol <= y) & (y <= k2 * x + b6 + tol)
    return in_a & in_b


def signed_sagitta(p0, p1, p2) -> np.ndarray:
    """Signed sagitta of a quadratic Bezier: v(P1)/2 (spec 3.7).

    The normal offset of B(t) from the chord is 2t(1-t) v, maximal (v/2) at
    t = 1/2.  Positive means the curve bends to the +90-degree side of P0->P2.
    """
    _, v = chord_frame(p0, p2, p1)
    return 0.5 * v


def sagitta_ratio(p0, p1, p2) -> np.ndarray:
    """|sagitta| / chord length (FIG. 7: 0.125, 0.050, 0.103; spec 3.7)."""
    p0, p2 = np.asarray(p0, dtype=np.float64), np.asarray(p2, dtype=np.float64)
    d = p2 - p0
    return np.abs(signed_sagitta(p0, p1, p2)) / np.hypot(d[..., 0], d[..., 1])


def fig7_lines() -> np.ndarray:
    """FIG. 7 lines 710, 720, 730 as a fresh (3, 3, 2) array (spec 3.7)."""
    return np.array([FIG7_LINES[k] for k in (710, 720, 730)], dtype=np.float64)


# --------------------------------------------------------------------------
# Regions (spec 3.4, [0258]-[0269])
# --------------------------------------------------------------------------


def in_start_region(p, radius: float = 0.5) -> np.ndarray:
    """x^2 + (y-1)^2 <= r^2, 0 <= x <= r, 1-r <= y <= 1 (left hand, check 5)."""
    p = np.asarray(p, dtype=np.float64)
    x, y = p[..., 0], p[..., 1]
    e = 1e-12
    return (
        (x**2 + (y - 1.0) ** 2 <= radius**2 + e)
        & (x >= -e) & (x <= radius + e) & (y >= 1.0 - radius - e) & (y <= 1.0 + e)
    )


def in_end_region(p, radius: float = 0.5) -> np.ndarray:
    """(x-1)^2 + y^2 <= r^2, 1-r <= x <= 1, 0 <= y <= r (left hand, check 6)."""
    p = np.asarray(p, dtype=np.float64)
    x, y = p[..., 0], p[..., 1]
    e = 1e-12
    return (
        ((x - 1.0) ** 2 + y**2 <= radius**2 + e)
        & (x >= 1.0 - radius - e) & (x <= 1.0 + e) & (y >= -e) & (y <= radius + e)
    )


def in_unit_square(p) -> np.ndarray:
    """True where points (..., 2) lie in [0, 1]^2 (distribution region, spec 3.8 (b))."""
    p = np.asarray(p, dtype=np.float64)
    return np.all((p >= -1e-12) & (p <= 1.0 + 1e-12), axis=-1)


def lines_crossing_box(ctrl: np.ndarray, box: Tuple[float, float, float, float],
                       n_points: int = 33) -> np.ndarray:
    """True per line (..., 3, 2) where the sampled curve enters box (x0, y0, x1, y1)."""
    pts = sample_curves(ctrl, n_points)
    x0, y0, x1, y1 = box
    inside = (
        (pts[..., 0] >= x0) & (pts[..., 0] <= x1) & (pts[..., 1] >= y0) & (pts[..., 1] <= y1)
    )
    return inside.any(axis=-1)
