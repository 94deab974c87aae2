"""Geometric "candidate palm print" generator (seed 004, US 2025/0259424 A1).

Pure numpy geometry for the stage-1 candidate image of the patent: 2-5 *major*
palm lines, each a quadratic Bezier curve (first positioning point P0, major
line adjustment point P1, second positioning point P2), plus 5-15 thinner,
shorter, shallower *minor* lines inside the palm-print distribution region.

Conventions (spec seed-004 sections 3.3-3.9):

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
"""

from __future__ import annotations

import dataclasses
import math
import types
from dataclasses import dataclass
from typing import Literal, Mapping, Optional, Tuple

import numpy as np

Hand = Literal["left", "right"]
RuleMode = Literal["shortest_major", "threshold", "both"]
DensityMode = Literal["grid", "region"]

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
# Configuration and candidate container
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class CandidateConfig:
    """Preset distribution patterns of the candidate generator.

    Counts: majors 2..5 ([0051]), minors 5..15 ([0186]).  ``radius`` is the
    first/second preset length of the quarter discs ([0262]); ``third_side``
    the side of the third region ([0281]).  Minor length rule ([0073]) and
    thickness rule ([0074]) each take 'shortest_major', 'threshold' or 'both'
    (spec 3.9) with thresholds 0.6 (3 cm) and 0.02 (1 mm) of the ROI side.
    ``density`` ([0075]) is None (off), 'grid' (every ``density_cell`` cell is
    crossed by >= ``density_cell_min`` minor lines; may add lines beyond
    ``minor_count[1]``) or 'region' (>= ``density_region_min`` minor lines
    cross ``density_region`` = (x0, y0, x1, y1); replaces lines, count kept).
    Widths are pixels at ``render_size`` (stored divided by it, so they scale
    with any output size); darkness is the crease intensity in [0, 1]
    (spec 3.10: majors bold and deep, minors thin and shallow).
    """

    major_count: Tuple[int, int] = (2, 5)
    minor_count: Tuple[int, int] = (5, 15)
    radius: float = 0.5
    third_side: float = 2.0 / 3.0
    control_in_square: bool = True
    minor_length_rule: RuleMode = "both"
    minor_length_threshold: float = 0.6
    minor_length_min: float = 0.1
    minor_bend: float = 0.25
    minor_thickness_rule: RuleMode = "both"
    minor_thickness_threshold: float = 0.02
    density: Optional[DensityMode] = None
    density_cell: float = 0.2
    density_cell_min: int = 2
    density_region: Tuple[float, float, float, float] = (0.3, 0.3, 0.7, 0.7)
    density_region_min: int = 3
    render_size: int = 128
    major_width_px: Tuple[float, float] = (2.0, 3.5)
    minor_width_px: Tuple[float, float] = (0.8, 1.6)
    major_darkness: Tuple[float, float] = (0.75, 1.0)
    minor_darkness: Tuple[float, float] = (0.35, 0.7)

    def __post_init__(self) -> None:
        lo, hi = self.major_count
        if not 1 <= lo <= hi:
            raise ValueError(f"bad major_count {self.major_count}")
        lo, hi = self.minor_count
        if not 0 <= lo <= hi:
            raise ValueError(f"bad minor_count {self.minor_count}")
        for name in ("minor_length_rule", "minor_thickness_rule"):
            if getattr(self, name) not in ("shortest_major", "threshold", "both"):
                raise ValueError(f"bad {name} {getattr(self, name)!r}")
        if self.density not in (None, "grid", "region"):
            raise ValueError(f"bad density {self.density!r}")
        if not self.minor_width_px[1] < self.major_width_px[0]:
            raise ValueError("minor width range must lie strictly below the major range")
        if not self.minor_darkness[1] <= self.major_darkness[0]:
            raise ValueError("minor darkness range must not exceed the major range")
        if not 0.0 < self.radius <= 1.0:
            raise ValueError("radius must be in (0, 1]")

    @property
    def third_half_side(self) -> float:
        """Half side of the third region (1/3 by default)."""
        return 0.5 * self.third_side


def _ro(a: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    out = np.array(a, dtype=np.float64).reshape(shape)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class Candidate:
    """One candidate palm print: line geometry plus stroke attributes (claim 1 (d)).

    ``majors`` (n, 3, 2) and ``minors`` (m, 3, 2) hold (P0, P1, P2) per line
    in y-up unit-square coordinates; widths are in unit-square units and
    darkness in [0, 1].  Arrays are copied and made read-only.
    """

    hand: Hand
    majors: np.ndarray
    major_widths: np.ndarray
    major_darkness: np.ndarray
    minors: np.ndarray
    minor_widths: np.ndarray
    minor_darkness: np.ndarray

    def __post_init__(self) -> None:
        if self.hand not in ("left", "right"):
            raise ValueError(f"bad hand {self.hand!r}")
        n = np.asarray(self.majors).size // 6
        m = np.asarray(self.minors).size // 6
        set_ = object.__setattr__
        set_(self, "majors", _ro(self.majors, (n, 3, 2)))
        set_(self, "minors", _ro(self.minors, (m, 3, 2)))
        set_(self, "major_widths", _ro(self.major_widths, (n,)))
        set_(self, "major_darkness", _ro(self.major_darkness, (n,)))
        set_(self, "minor_widths", _ro(self.minor_widths, (m,)))
        set_(self, "minor_darkness", _ro(self.minor_darkness, (m,)))

    @property
    def n_major(self) -> int:
        return int(self.majors.shape[0])

    @property
    def n_minor(self) -> int:
        return int(self.minors.shape[0])

    def params(self) -> np.ndarray:
        """Flat parameter vector (spec 3.11 recommendation).

        Layout: [hand (0 left, 1 right), n, m, majors (6n), major widths (n),
        major darkness (n), minors (6m), minor widths (m), minor darkness (m)].
        """
        head = np.array([0.0 if self.hand == "left" else 1.0, self.n_major, self.n_minor])
        return np.concatenate(
            [
                head,
                self.majors.ravel(), self.major_widths, self.major_darkness,
                self.minors.ravel(), self.minor_widths, self.minor_darkness,
            ]
        )

    @classmethod
    def from_params(cls, vec) -> "Candidate":
        """Inverse of :meth:`params`."""
        vec = np.asarray(vec, dtype=np.float64)
        hand: Hand = "left" if vec[0] < 0.5 else "right"
        n, m = int(round(vec[1])), int(round(vec[2]))
        sizes = (6 * n, n, n, 6 * m, m, m)
        parts = np.split(vec[3:], np.cumsum(sizes)[:-1])
        return cls(hand, parts[0], parts[1], parts[2], parts[3], parts[4], parts[5])

    def mirrored(self) -> "Candidate":
        """x -> 1 - x mirror with the hand swapped (right hand, spec 3.3)."""
        def flip(a: np.ndarray) -> np.ndarray:
            b = np.array(a)
            b[..., 0] = 1.0 - b[..., 0]
            return b

        return dataclasses.replace(
            self,
            hand="right" if self.hand == "left" else "left",
            majors=flip(self.majors),
            minors=flip(self.minors),
        )

    def all_lines(self) -> np.ndarray:
        """Majors then minors stacked, shape (n + m, 3, 2)."""
        return np.concatenate([self.majors, self.minors], axis=0)


# --------------------------------------------------------------------------
# Rules used by the sampler and by jitter
# --------------------------------------------------------------------------


def minor_length_cap(major_ctrl: np.ndarray, config: CandidateConfig) -> float:
    """Upper bound on minor line length from the length pattern ([0073], spec 3.9)."""
    caps = []
    if config.minor_length_rule in ("shortest_major", "both") and len(major_ctrl):
        caps.append(float(np.min(bezier_arc_length(major_ctrl))))
    if config.minor_length_rule in ("threshold", "both"):
        caps.append(config.minor_length_threshold)
    return min(caps) if caps else math.inf


def minor_width_cap(major_widths: np.ndarray, config: CandidateConfig) -> float:
    """Upper bound on minor stroke width from the thickness pattern ([0074])."""
    caps = []
    if config.minor_thickness_rule in ("shortest_major", "both") and len(major_widths):
        caps.append(float(np.min(major_widths)))
    if config.minor_thickness_rule in ("threshold", "both"):
        caps.append(config.minor_thickness_threshold)
    return min(caps) if caps else math.inf


def lines_crossing_box(ctrl: np.ndarray, box: Tuple[float, float, float, float],
                       n_points: int = 33) -> np.ndarray:
    """True per line (..., 3, 2) where the sampled curve enters box (x0, y0, x1, y1)."""
    pts = sample_curves(ctrl, n_points)
    x0, y0, x1, y1 = box
    inside = (
        (pts[..., 0] >= x0) & (pts[..., 0] <= x1) & (pts[..., 1] >= y0) & (pts[..., 1] <= y1)
    )
    return inside.any(axis=-1)


def density_deficits(minors: np.ndarray, config: CandidateConfig) -> list:
    """Boxes whose minor-line count is below the density pattern ([0075]).

    Returns a list of (box, missing) pairs; empty when satisfied or when the
    density pattern is off.
    """
    if config.density is None:
        return []
    if config.density == "region":
        have = int(lines_crossing_box(minors, config.density_region).sum()) if len(minors) else 0
        miss = config.density_region_min - have
        return [(config.density_region, miss)] if miss > 0 else []
    out = []
    k = int(round(1.0 / config.density_cell))
    cell = 1.0 / k
    for i in range(k):
        for j in range(k):
            box = (i * cell, j * cell, (i + 1) * cell, (j + 1) * cell)
            have = int(lines_crossing_box(minors, box).sum()) if len(minors) else 0
            if have < config.density_cell_min:
                out.append((box, config.density_cell_min - have))
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
