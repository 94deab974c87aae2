"""The same hand in both: the transmission-sensor frame bound to the visible views.

The liveness model judges the sensor frame alone and the matcher the views alone, so a live hand
under the sensor with a replica before the cameras (or the reverse) would be judged on each half
by itself. Here the views' hand is placed in 3-D and carried into the sensor frame, and the
sensor frame's hand is looked at where the views' hand says it must be:

- **the views' hand in 3-D** (:mod:`device.gate.binding_geometry`): the 21 hand landmarks the
  front end found in two or more views (no model runs here), each view's landmarks mapped onto
  the working plane by the unit's registration (sensor pixels <-> view pixels for points on the
  plane, ``palmgate-calibrate registration``), triangulated from the views' parallax (the
  camera centres come from the registration and the views' camera matrices), so the hand's
  depth and tilt are measured, not searched (X-ray: a view that disagrees with both others
  is left out, :data:`ODD_VIEW_MM`); then projected into the sensor frame from the
  sensor's own centre of projection (NIR camera below, X-ray source above);
- **the sensor's hand** (:func:`sensor_hand`): inside the exposed field (a collimator's bright
  rim cut off), the blurred frame (NIR: raised to :data:`GAMMA`) cut ``LEVEL`` of the way from
  the background level (X-ray: a plane through the background, :data:`BACKGROUND_RAMP`) to
  the hand level, the largest component with its holes filled (X-ray: not those open to the
  field's edge, :data:`~device.gate.binding_background.RIM_BAND_PX`), and its signed distance
  to the outline (:func:`signed_distance`);
- **the probes** (:func:`measure`): the signed distance (mm) at points tied to the landmarks
  (the landmarks, the bones' middles, points beyond the fingertips and the palm's sides, points
  between fingers; :func:`device.gate.binding_geometry.probe_points`), and the hand's height;
- **the binding score** (:func:`binding_score`): how far the probes lie outside the range live
  hands give (``probe_ranges``, fitted on bona fide synthetic presentations), summed without
  the worst finger (X-ray: each finger's part capped, ``probe_ranges["finger_cap"]``), plus how
  much better the views' hand fits at another size, and for X-ray
  the bones' term (:mod:`device.gate.binding_joints`: the views' joints on the frame's joint
  spaces, the frame's hand not stretched; its numbers are ``probe_ranges["joints"]``) and the
  hand's size and fingers' directions (:mod:`device.gate.binding_size`) and the bones'
  marrow (:mod:`device.gate.binding_marrow`: a phantom's dried bones are shells); over the
  sensor's signed threshold (``max_score``; ``[liveness] binding_max_distance`` may only lower
  it) the presentation is denied with ``sensor_mismatch``, and so is one with fewer than two
  views with landmarks. Both numbers come from the signed ``models/binding_<sensor>.json``
  (:mod:`device.gate.binding_numbers`); without a good file the stage denies every
  presentation (``liveness_unavailable``).
- **the palm lines** (NIR, where the signed ``models/binding_nir.json`` carries
  ``palm_lines``; :func:`palm_lines`, :mod:`device.gate.binding_texture`): the views' palm
  lines carried into the sensor frame must agree with its own; below the signed least
  agreement (``[liveness] binding_min_palm_lines`` may only raise it) the presentation is
  denied with ``sensor_mismatch`` too, and the outline's threshold is the one chosen with it.

Pure functions of arrays, and :class:`BindingStage`, which the pipeline calls after liveness.
The registration comes from the unit's calibration; a synthetic source, or a unit running
without a calibration (``[calibration] allow_uncalibrated``, or a replay without a file; with a
warning), uses the nominal registration of the synthetic rig (:mod:`device.synth.bound`).
Measured numbers: docs/sensor-branch.md ("Binding").
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from device.gate import binding_geometry as G
from device.gate.binding_background import (RIM_BAND_PX, largest_component, largest_inside,
                                           ramp_cut)
from device.gate.binding_release import mismatch
from device.gate.binding_registration import (  # noqa: F401 - HomographyRegistration: callers
    CorrectionRegistration, HomographyRegistration, nominal_registration)
from device.gate.decision import Deny

log = logging.getLogger("palmgate.gate")

LEVEL = {"xray": 0.2, "nir": 0.3}
"""The hand/background cut, as a fraction of the way from the background level (5th percentile
of the open field) to the hand level (median above the field's Otsu threshold); X-ray chosen on
30 bona fide validation scenes (seed 11) among 0.1-0.5; NIR (after :data:`GAMMA`) on the
binding of the probe-fitting seed 5 among 0.3 and 0.4."""

GAMMA = {"xray": 1.0, "nir": 0.25}
"""The frame is raised to this power before the cut: the NIR light falls off toward the
fingers, which end up a few grey levels over the background (0.25 brings them back; the X-ray
frame's soft tissue stands out as it is)."""

WIDEST_FIELD = {"xray": True, "nir": False}
"""X-ray: the exposed field is the wider of the two rim rules of :func:`open_field` (a bright
hand across the lower field kept the row medians up there, and the field, cut to the rows
above it, held a fingertip: 4 of the 18 placed live hands main's numbers denied on the
validation seeds 11 + 8117 + 9241; chosen there, docs/results.md "X-ray: the bones")."""

BACKGROUND_RAMP = {"xray": True, "nir": False}
"""X-ray: the cut is made from a plane fitted to the background
(:func:`device.gate.binding_background.background_ramp`), not from the field's 5th
percentile: the heel ramp lifts one side of the background as high as a global cut, and the
silhouette took it in (docs/results.md, "The X-ray live-hand tail")."""

ODD_VIEW_MM = {"xray": 3.0, "nir": None}
"""X-ray: a view whose landmarks disagree with both others by more than this (mm on the
plane; :func:`device.gate.binding_geometry.without_odd_view`) is left out of the hand's
placement while the other two agree (live pairs of views: at most 2.2 mm, 99.9th percentile,
on the validation seeds; one view's landmarks folded into the palm: 3.5-20 mm). NIR: None,
every view kept."""


# ------------------------------------------------------------------------------ the two hands
def open_field(g: np.ndarray, widest: bool = False) -> tuple[slice, slice]:
    """(rows, cols) of the exposed field of a sensor frame: a rim brighter than the frame's
    median (a collimator's unexposed border) is cut off where the row/column medians drop
    below halfway between the rim and the field -- or, when a bright hand across the field
    keeps most medians up, where fewer than nine tenths of a row's (column's) pixels are
    within a tenth of the rim's level. ``widest``: both rules, each side of the field where
    the second reaches 5 or more pixels farther than the first (less 2 pixels)."""
    h, w = g.shape
    edge = float(np.median(np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])))
    mid = float(np.median(g))
    if edge < mid + 20:
        return slice(0, h), slice(0, w)
    p5 = float(np.percentile(g, 5))
    cut = (edge + p5) / 2
    rows = np.flatnonzero(np.median(g, axis=1) < cut)
    cols = np.flatnonzero(np.median(g, axis=0) < cut)
    near = g >= edge - 0.1 * (edge - p5)
    if len(rows) < h // 4 or len(cols) < w // 4:
        rows = np.flatnonzero(near.mean(axis=1) < 0.9)
        cols = np.flatnonzero(near.mean(axis=0) < 0.9)
    elif widest:
        r2 = np.flatnonzero(near.mean(axis=1) < 0.9)
        c2 = np.flatnonzero(near.mean(axis=0) < 0.9)
        if len(r2) >= h // 4 and len(c2) >= w // 4:     # a side reaches 5+ px farther
            rows = _wider(rows, r2)
            cols = _wider(cols, c2)
            return _inset(rows, cols)
    if len(rows) < h // 4 or len(cols) < w // 4:
        return slice(0, h), slice(0, w)
    return _inset(rows, cols)


def _wider(a: np.ndarray, b: np.ndarray, by: int = 5, extra: int = 2) -> np.ndarray:
    """[first, last] of ``a``, each end moved to ``b``'s where that lies ``by`` or more pixels
    farther out, and then ``extra`` pixels back in (the near-rim rule keeps more of the rim's
    blurred edge)."""
    lo = int(b[0]) + extra if b[0] <= a[0] - by else int(a[0])
    hi = int(b[-1]) - extra if b[-1] >= a[-1] + by else int(a[-1])
    return np.array([lo, hi])


def _inset(rows: np.ndarray, cols: np.ndarray, m: int = 2) -> tuple[slice, slice]:
    """The field from its first to its last row and column, ``m`` pixels in (the rim's
    blurred edge)."""
    return (slice(int(rows[0]) + m, int(rows[-1]) + 1 - m),
            slice(int(cols[0]) + m, int(cols[-1]) + 1 - m))


def sensor_hand_and_field(frame: np.ndarray, sensor: str = "nir", blur: float = 1.0
                          ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`sensor_hand` with ``sensor``'s settings: the silhouette and the exposed field
    the binding uses (and the X-ray bone patch, which must cut the hand the same way)."""
    return sensor_hand(frame, LEVEL[sensor], blur, GAMMA[sensor], WIDEST_FIELD[sensor],
                       BACKGROUND_RAMP[sensor], RIM_BAND_PX[sensor])


def sensor_silhouette(frame: np.ndarray, sensor: str = "nir", blur: float = 1.0
                      ) -> np.ndarray:
    return sensor_hand_and_field(frame, sensor, blur)[0]


def _gamma_lut(gamma: float) -> np.ndarray:
    return np.round(255.0 * (np.arange(256) / 255.0) ** gamma).astype(np.uint8)


MIN_FRAME_SIDE = 16
"""A sensor frame with a side shorter than this (pixels) is not bound (denied)."""


def frame_problem(frame) -> str | None:
    """Why ``frame`` is no sensor frame the binding can look at (None: it is one): not a
    numeric array, neither grey (H, W) nor BGR(A) (H, W, 3|4), a side under
    :data:`MIN_FRAME_SIDE`, or a pixel that is NaN or infinite."""
    if not isinstance(frame, np.ndarray):
        return f"not an array but {type(frame).__name__}"
    if frame.dtype == bool or frame.dtype.kind not in "uif":
        return f"pixel type {frame.dtype}"
    if not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] in (3, 4))):
        return f"shape {frame.shape}: neither grey (H, W) nor BGR (H, W, 3|4)"
    if min(frame.shape[:2]) < MIN_FRAME_SIDE:
        return f"shape {frame.shape}: a side under {MIN_FRAME_SIDE} pixels"
    if frame.dtype.kind == "f" and not np.isfinite(frame).all():
        return "a pixel is NaN or infinite"
    return None


def _usable_view(v) -> bool:
    """A view the binding can take landmarks from: a non-empty 2-D or 3-D array."""
    return isinstance(v, np.ndarray) and v.ndim in (2, 3) and min(v.shape[:2]) > 0


def _hand_landmarks(lm) -> np.ndarray | None:
    """A view's hand landmarks as (21, 2) float64 view pixels; None when they are not 21 rows
    of two or more numbers."""
    try:
        a = np.asarray(lm, np.float64)
    except (TypeError, ValueError):
        return None
    return a[:, :2] if a.ndim == 2 and a.shape[0] == 21 and a.shape[1] >= 2 else None


def _grey(frame: np.ndarray) -> np.ndarray:
    """A sensor frame (grey or BGR, any dtype) as grey uint8; a ValueError for a frame
    :func:`frame_problem` refuses."""
    bad = frame_problem(frame)
    if bad:
        raise ValueError(f"sensor frame: {bad} (the binding needs a finite image)")
    g = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if g.dtype != np.uint8:
        g = cv2.normalize(g.astype(np.float32), None, 0, 255, cv2.NORM_MINMAX, cv2.CV_8U)
    return g


def sensor_hand(frame: np.ndarray, level: float, blur: float = 1.0, gamma: float = 1.0,
                widest: bool = False, ramp: bool = False, rim: int = 0
                ) -> tuple[np.ndarray, np.ndarray]:
    """(hand, exposed field), bool (H, W) each, of a sensor frame (grey or BGR, any dtype):
    inside the exposed field, the blurred frame (raised to ``gamma``) cut ``level`` of the way
    from the background to the hand level, the largest component, holes filled. The hand is
    empty when nothing stands out. ``widest``: :func:`open_field`'s. ``ramp``: the cut from a
    plane through the background (:mod:`device.gate.binding_background`). ``rim``: holes
    that reach this band inside the field's edge are not filled
    (:func:`device.gate.binding_background.largest_inside`)."""
    g = cv2.GaussianBlur(_grey(frame), (0, 0), blur)
    if gamma != 1.0:
        g = cv2.LUT(g, _gamma_lut(gamma))
    rs, cs = open_field(g, widest)
    inner = np.ascontiguousarray(g[rs, cs])
    field = np.zeros(g.shape, bool)
    field[rs, cs] = True
    if inner.size == 0 or int(inner.max()) - int(inner.min()) < 8:
        return np.zeros(g.shape, bool), field
    t, _ = cv2.threshold(inner, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    lo = float(np.percentile(inner, 5))
    hi = float(np.median(inner[inner > t])) if np.any(inner > t) else float(inner.max())
    m = np.zeros(g.shape, np.uint8)
    if ramp:
        m[ramp_cut(g, field, lo, hi, level)] = 1
    else:
        m[rs, cs] = inner > lo + level * (hi - lo)
    if rim:
        return largest_inside(m, field, rim), field
    return largest_filled(m), field


def largest_filled(mask: np.ndarray) -> np.ndarray:
    """bool: the largest 8-connected component of a 0/1 mask with its holes filled."""
    big = largest_component(mask)
    if big is None:
        return np.zeros(np.shape(mask), bool)
    comp = big.astype(np.uint8)
    contours, _ = cv2.findContours(comp, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.zeros_like(comp)
    cv2.drawContours(out, contours, -1, 1, cv2.FILLED)
    return out > 0


def _outline(m: np.ndarray, field: np.ndarray) -> np.ndarray:
    """bool: the boundary pixels of ``m`` inside ``field`` (not on its edge)."""
    u = m.astype(np.uint8)
    edge = (u - cv2.erode(u, np.ones((3, 3), np.uint8))) > 0
    inner = cv2.erode(field.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    return edge & inner


def signed_distance(sil: np.ndarray, field: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray] | None:
    """(signed distance (px, float32: positive inside the hand, negative outside) to the
    hand's outline inside the exposed field, the field's inner part where it is defined);
    None when the hand has no outline there (no hand, or one that fills the field)."""
    edge = _outline(sil, field)
    if not edge.any():
        return None
    d = cv2.distanceTransform((~edge).astype(np.uint8), cv2.DIST_L2, 3)
    valid = cv2.erode(field.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    return np.where(sil, d, -d).astype(np.float32), valid


def probe_values(sdf: np.ndarray, valid: np.ndarray, points: np.ndarray, px_per_mm: float
                 ) -> np.ndarray:
    """(P,) the signed distance (mm) at each point (nearest pixel); NaN for a point that is
    NaN or outside the field's inner part."""
    p = np.asarray(points, np.float64)
    out = np.full(len(p), np.nan)
    ok = np.all(np.isfinite(p), axis=1)
    c = np.round(p[ok]).astype(np.int64)
    h, w = sdf.shape
    inside = (c[:, 0] >= 0) & (c[:, 0] < w) & (c[:, 1] >= 0) & (c[:, 1] < h)
    idx = np.flatnonzero(ok)[inside]
    c = c[inside]
    v = valid[c[:, 1], c[:, 0]]
    out[idx[v]] = sdf[c[v, 1], c[v, 0]] / px_per_mm
    return out


@dataclass
class HandProbes:
    """The sensor frame seen at the views' hand: ``values`` (P + 1,) the signed distance (mm,
    positive inside the sensor frame's hand) at each probe of
    :func:`device.gate.binding_geometry.probe_points` (NaN outside the frame's field), then
    the hand's height (mm) over the working plane (a replica shown larger or smaller before
    the cameras is triangulated as a hand of its size held nearer or farther),
    ``landmarks`` (21, 2) where the sensor sees the views' landmarks, the number of views
    triangulated, the height again, and the sensor frame's signed distance (for
    :meth:`at_scale`)."""

    values: np.ndarray
    landmarks: np.ndarray
    views: int
    height_mm: float
    sdf: tuple | None = None
    px_mm: float = 1.0
    bones: np.ndarray | None = None
    """X-ray: the frame (float32, NaN outside the exposed field) for the bone term
    (:mod:`device.gate.binding_joints`); None for NIR."""
    points: np.ndarray | None = None
    """(21, 3) the landmarks in 3-D (the sensor-pixel world), for the palm lines."""

    def at_scale(self, s: float) -> np.ndarray:
        """:attr:`values` with the views' hand scaled ``s`` times about its palm (the
        height kept): where a hand of another size would have put the probes."""
        if self.sdf is None:
            return self.values
        c = self.landmarks[[0, 5, 9, 13, 17]].mean(0)
        pts = G.probe_points(c + s * (self.landmarks - c), self.px_mm)
        return np.append(probe_values(*self.sdf, pts, self.px_mm), self.height_mm)


def measure(frame: np.ndarray, plane_points: dict, centres: dict, sensor: str
            ) -> HandProbes | None:
    """The probes of one presentation: ``plane_points`` view -> its (21, 2) landmarks mapped
    onto the working plane (sensor pixels of ``frame``), ``centres`` view -> camera centre.
    None with fewer than two views; the values are all NaN when the frame shows no hand
    outline."""
    from device.synth.bound import sensor_optics
    px_mm, E = sensor_optics(sensor, frame.shape[:2])
    if ODD_VIEW_MM.get(sensor):
        plane_points = G.without_odd_view(plane_points, centres, ODD_VIEW_MM[sensor] * px_mm)
    hs = G.hand_in_sensor(plane_points, centres, E)
    if hs is None:
        return None
    lm, P = hs
    pts = G.probe_points(lm, px_mm)
    sil, field = sensor_hand_and_field(frame, sensor)
    sd = signed_distance(sil, field)
    vals = np.full(len(pts), np.nan) if sd is None else probe_values(*sd, pts, px_mm)
    h = float(np.nanmedian(P[:, 2])) / px_mm if np.isfinite(P[:, 2]).any() else float("nan")
    bones = None
    if sensor == "xray":
        bones = np.where(field, _grey(frame).astype(np.float32), np.float32(np.nan))
    return HandProbes(np.append(vals, h), lm, len([k for k in plane_points if k in centres]),
                      h, sd, px_mm, bones, P)


def probe_excess(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, clip: float
                 ) -> np.ndarray:
    """(P + 1,) how far (mm) each probe's signed distance (clipped to +-``clip``), and the
    hand's height over the plane (the last value), lie outside the live hands' range ``[lo,
    hi]``; NaN where the probe or its range is missing."""
    v = np.asarray(values, np.float64).copy()
    v[:-1] = np.clip(v[:-1], -clip, clip)          # the last value is the height: not clipped
    return np.maximum(0.0, np.maximum(v - hi, lo - v))


SIZE_SEARCH = tuple(float(x) for x in np.exp(np.linspace(np.log(0.8), np.log(1.25), 19)))
"""Sizes of the views' hand (0.8-1.25 times) at which the sensor frame is also compared: a
replica of another size fits the sensor frame better at its own size than at the views'."""

SIZE_GAIN = 1.0
"""Weight of how much better another size fits: 1, on validation seed 11 (X-ray mixed denied
78.0 %, against 75.2 % at 0 and 78.5 % at 2; the simpler of the two near the top)."""

def trimmed_excess(e: np.ndarray, groups: np.ndarray, finger_cap: float | None = None
                   ) -> float:
    """The sum of the probes' excess (mm), less the finger whose probes add up to the most:
    one finger a landmark network got wrong, or a finger lost in the sensor frame, does not
    deny a live hand; a replica elsewhere, turned or of another size is off at every finger.
    With ``finger_cap`` (X-ray: ``probe_ranges["finger_cap"]``) each finger adds at most that
    much: a second finger gone wrong on a live hand does not deny it alone, while a replica
    off at every finger still adds up."""
    e = np.nan_to_num(np.asarray(e, np.float64))
    per_finger = np.array([float(e[groups == f].sum()) for f in range(1, 6)])
    total = float(e.sum())
    if finger_cap is not None:
        capped = np.minimum(per_finger, float(finger_cap))
        total -= float((per_finger - capped).sum())
        per_finger = capped
    return total - float(per_finger.max())


def binding_score(m: HandProbes | None, sensor: str, stats: dict | None = None) -> float:
    """The binding score of one presentation (lower is better bound): the probes' excess
    over the range live hands give (:func:`probe_excess`; ``stats``: the probe ranges, default
    the signed file's, :func:`device.gate.binding_numbers.shipped_stats`),
    summed without its worst finger (:func:`trimmed_excess`), plus :data:`SIZE_GAIN` times how
    much less it is at the best size of :data:`SIZE_SEARCH`; for X-ray (statistics with
    ``joints``) plus the bones' term (:func:`device.gate.binding_joints.bone_term`: the
    views' joints on the frame's joint spaces, and the frame's hand not stretched), the
    size and finger directions' term (:func:`device.gate.binding_size.size_term`) and the
    marrow term (:func:`device.gate.binding_marrow.marrow_term`). inf when
    the hand could not be placed, the frame shows no hand outline at any probe, or there are
    no statistics for the sensor."""
    if m is None or m.sdf is None:
        return float("inf")
    if stats is None:
        from device.gate.binding_numbers import shipped_stats
        stats = shipped_stats(sensor)
    if not stats:
        return float("inf")
    lo = np.array([np.nan if x is None else x for x in stats["lo"]], float)
    hi = np.array([np.nan if x is None else x for x in stats["hi"]], float)
    clip = float(stats["clip"])
    groups = G.probe_groups()
    if len(lo) != len(groups) or len(hi) != len(groups):   # ranges of other probes: fail secure
        return float("inf")
    cap = stats.get("finger_cap")
    if cap is not None and not (isinstance(cap, (int, float)) and cap > 0):
        return float("inf")                                  # a malformed cap: fail secure
    e = probe_excess(m.values, lo, hi, clip)
    if not np.isfinite(e).any():
        return float("inf")
    at_one = trimmed_excess(e, groups, cap)
    best = min(trimmed_excess(probe_excess(m.at_scale(x), lo, hi, clip), groups, cap)
               for x in SIZE_SEARCH)
    score = at_one + SIZE_GAIN * max(0.0, at_one - best)
    if stats.get("joints") and m.bones is not None:      # X-ray: the bones too
        from device.gate.binding_joints import bone_term
        from device.gate.binding_marrow import marrow_term
        from device.gate.binding_size import size_term
        score += bone_term(m.bones, m.landmarks, m.px_mm, stats["joints"])
        score += size_term(m.bones, m.landmarks, m.px_mm, stats["joints"])
        score += marrow_term(m.bones, m.landmarks, m.px_mm, stats["joints"])
    return score


def fit_stats(values: np.ndarray, q: float = 0.005, clip: float = 15.0, min_count: int = 30
              ) -> dict:
    """Live hands' range at each probe from bona fide ``values`` (N, P + 1) of
    :class:`HandProbes`: the ``q`` and ``1 - q`` quantiles (the signed distances clipped to
    +-``clip``); None for a probe seen fewer than ``min_count`` times."""
    v = np.asarray(values, np.float64).copy()
    v[:, :-1] = np.clip(v[:, :-1], -clip, clip)
    n = np.isfinite(v).sum(0)
    lo = np.full(v.shape[1], np.nan)
    hi = np.full(v.shape[1], np.nan)
    ok = n >= min_count
    lo[ok] = np.nanquantile(v[:, ok], q, axis=0)
    hi[ok] = np.nanquantile(v[:, ok], 1 - q, axis=0)

    def r(a):
        return [None if not np.isfinite(x) else round(float(x), 2) for x in a]
    return {"lo": r(lo), "hi": r(hi), "clip": clip, "q": q, "n": int(len(v))}


# ------------------------------------------------------------------------------ the stage
@dataclass
class Binding:
    """The binding of one presentation: ``score`` (:func:`binding_score`; inf when the hand
    could not be placed), and the probes it came from (None then)."""

    score: float
    probes: HandProbes | None = None
    texture: float | None = None
    """NIR: how well the views' palm lines agree with the frame's
    (:func:`device.gate.binding_texture.texture_agreement`); None where not compared."""


def palm_lines(frame: np.ndarray, views, view_landmarks: dict, m: HandProbes | None,
               sensor: str, plane_points: dict, centres: dict) -> float | None:
    """The palm lines' agreement of the views with the sensor frame
    (:mod:`device.gate.binding_texture`) for a sensor whose frame shows them (NIR,
    :data:`~device.gate.binding_numbers.PALM_LINE_SENSORS`); None for the others, NaN when the
    hand could not be placed or compared. ``view_landmarks``: view -> its (21, 2) landmarks in
    view pixels; ``plane_points`` and ``centres`` as for :func:`measure`."""
    from device.gate import binding_texture as T
    from device.gate.binding_numbers import PALM_LINE_SENSORS
    from device.synth.bound import sensor_optics
    if sensor not in PALM_LINE_SENSORS:
        return None
    if m is None or m.points is None:
        return float("nan")
    g = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    plane = T.palm_plane(m.points[list(T.PALM_LANDMARKS)])
    if plane is None:
        return float("nan")
    _, E = sensor_optics(sensor, g.shape[:2])
    maps = {}
    for k, lm in view_landmarks.items():
        if k not in plane_points or k not in centres:
            continue
        H = T.plane_to_view(plane_points[k], lm)
        if H is not None:
            maps[k] = T.view_maps(g.shape[:2], plane, E, centres[k], H)
    return T.texture_agreement(g, views, maps, m.landmarks, m.px_mm)


class BindingStage:
    """Called by the pipeline after liveness with the (calibrated) burst and the decision the
    front end filled (``out.landmarks``: view -> its (21, 2) hand landmarks); raises
    :class:`Deny` ``sensor_mismatch`` when the sensor frame's hand is not the views' hand, or
    when fewer than two views gave landmarks (the hand cannot be placed in 3-D: fail
    secure)."""

    needs_regions = True
    """The pipeline runs the binding once the regions are found and hands it their landmarks."""

    def __init__(self, cfg, calibration):
        self.cfg = cfg
        self.sensor = cfg.liveness.sensor
        self.numbers, self.max_score, self.min_texture, self.error = None, None, None, None
        self.load()
        state = getattr(calibration, "state", "exempt")
        corr = getattr(calibration, "correction", None)
        if corr is not None:
            self.registration, self.source = CorrectionRegistration(corr), "calibration"
        else:
            self.registration, self.source = nominal_registration(cfg), "nominal"
            if state != "exempt":
                log.warning("sensor binding: no factory registration (calibration %s); the "
                            "check uses the NOMINAL registration of the synthetic rig, which "
                            "a real unit does not have -- expect sensor_mismatch denials "
                            "until the unit is calibrated", state,
                            extra={"event": "binding_nominal"})

    def score(self, views, frame: np.ndarray, landmarks: dict) -> Binding:
        """The binding of ``frame`` to the views' hand, ``landmarks`` view -> (21, 2) view
        pixels."""
        fs = (frame.shape[1], frame.shape[0])
        plane, centres, seen = {}, {}, {}
        for k, lm in (landmarks or {}).items():
            lm = _hand_landmarks(lm)
            if lm is None or not isinstance(k, (int, np.integer)) or not 0 <= k < len(views) \
                    or not _usable_view(views[k]):
                continue                       # malformed: as a view without landmarks
            vs = (views[k].shape[1], views[k].shape[0])
            c = self.registration.centre(k, vs, fs)
            q = self.registration.to_sensor(lm, k, vs, fs)
            if c is not None and np.all(np.isfinite(c)):
                plane[k], centres[k] = q, c
                seen[k] = lm
        m = measure(frame, plane, centres, self.sensor)
        texture = (palm_lines(frame, views, seen, m, self.sensor, plane, centres)
                   if self.min_texture is not None else None)
        return Binding(binding_score(m, self.sensor,
                                     self.numbers.stats if self.numbers else {}), m, texture)

    def load(self):
        """The signed numbers (:mod:`device.gate.binding_numbers`), re-tried after a failure:
        a missing, tampered or unsigned file, or a configured threshold looser than the signed
        one, leaves the stage unavailable (every presentation denied) until a good one is in
        place."""
        from device.gate.binding_numbers import in_force, load_binding_numbers
        c = self.cfg
        try:
            n = load_binding_numbers(self.sensor, c.paths.models or None)
            f = in_force(n, c.liveness.binding_max_distance, c.liveness.binding_min_palm_lines)
            self.max_score, self.min_texture = f.max_score, f.min_agreement
            self.numbers, self.error = n, None
            if f.from_config:
                log.warning("binding thresholds from the configuration: outline %.4g, palm "
                            "lines %s (the signed file's: %.4g, %s)", f.max_score,
                            f.min_agreement, n.max_score,
                            n.palm_lines and n.palm_lines["min_agreement"])
        except Exception as e:     # noqa: BLE001 - ModelError, OSError, ValueError
            self.numbers, self.max_score, self.min_texture = None, None, None
            self.error = f"{type(e).__name__}: {e}"
            log.error("sensor binding unavailable: %s", self.error)
        return self.numbers

    def __call__(self, burst, out=None) -> Binding:
        if self.numbers is None and self.load() is None:
            raise Deny("liveness_unavailable", "", f"sensor binding: {self.error}")
        bad = frame_problem(burst.sensor)
        if bad:                                  # nothing to bind: fail secure
            if out is not None:
                out.binding = float("inf")
            raise Deny("sensor_mismatch", "please present your palm again",
                       f"sensor frame: {bad}")
        b = self.score(burst.views, burst.sensor, getattr(out, "landmarks", None))
        if out is not None:
            out.binding = b.score
            out.palm_lines = b.texture
        if b.probes is None:
            raise Deny("sensor_mismatch", "please present your palm again",
                       "fewer than two views gave hand landmarks: the hand cannot be placed "
                       "over the sensor")
        if not b.score <= self.max_score:
            raise mismatch(b, self.numbers.stats, self.max_score, self.min_texture)
        t = b.texture
        if self.min_texture is not None and not (t is not None and t >= self.min_texture):
            raise Deny("sensor_mismatch", "please present your palm again",
                       "the sensor frame's palm lines are not the views' palm lines")
        return b


def binding_stage(cfg, calibration) -> BindingStage | None:
    """The pipeline's binding stage: None unless ``[liveness] enabled`` and ``binding``."""
    if not (cfg.liveness.enabled and cfg.liveness.binding):
        return None
    return BindingStage(cfg, calibration)
