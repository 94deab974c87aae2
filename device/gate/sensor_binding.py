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
  depth and tilt are measured, not searched (a view that disagrees with both others is
  left out, :data:`ODD_VIEW_MM`, and of one disagreeing pair whose views both agree with
  the third, the one farther from it); then projected into the sensor frame from the
  sensor's own centre of projection (NIR camera below, X-ray source above);
- **the sensor's hand** (:mod:`device.gate.binding_silhouette`): inside the exposed field (a collimator's bright
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
from device.gate.binding_background import (  # noqa: F401 - callers read them here
    RIM_BAND_PX, largest_inside)
from device.gate.binding_release import mismatch
from device.gate.binding_silhouette import (  # noqa: F401 - callers read them here
    BACKGROUND_RAMP, GAMMA, LEVEL, WIDEST_FIELD, _grey, frame_problem, open_field,
    sensor_hand, sensor_hand_and_field, sensor_silhouette, signed_distance)
from device.gate.binding_registration import (  # noqa: F401 - HomographyRegistration: callers
    CorrectionRegistration, HomographyRegistration, nominal_registration)
from device.gate.decision import Deny

log = logging.getLogger("palmgate.gate")

ODD_VIEW_MM = {"xray": 3.0, "nir": 3.0}
"""A view whose landmarks disagree with both others by more than this (mm on the plane;
:func:`device.gate.binding_geometry.without_odd_view`) is left out of the hand's placement
while the other two agree. X-ray: live pairs of views at most 2.2 mm, 99.9th percentile, on
the validation seeds; one view's landmarks folded into the palm: 3.5-20 mm. NIR (branch
nbind): X-ray's number; one view's int8 landmarks folded pulled the palm together so the palm
lines were not compared (development 8837); on validation 9317 it moved one live hand's palm
lines by 0.0002 and no binding verdict (docs/results.md "NIR live hands the binding did not
place"). Of three views where only one pair disagrees by more than this and each of it
agrees with the third, the one farther from the third is left out (branch oddview: on
validation it decided no presentation differently; development 8843 00198 / 00249 and 8839
fp32 00347 open, docs/results.md "The odd-view rule's verdict")."""


# ------------------------------------------------------------------------------ the two hands
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
        self.max_identified = None    # the wider limit once both identity checks pass
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
            self.max_identified = f.max_score_identified
            self.numbers, self.error = n, None
            if f.from_config:
                log.warning("binding thresholds from the configuration: outline %.4g, palm "
                            "lines %s (the signed file's: %.4g, %s)", f.max_score,
                            f.min_agreement, n.max_score,
                            n.palm_lines and n.palm_lines["min_agreement"])
        except Exception as e:     # noqa: BLE001 - ModelError, OSError, ValueError
            self.numbers, self.max_score, self.min_texture = None, None, None
            self.max_identified = None
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
            raise mismatch(b, self.numbers.stats, self.max_score, self.min_texture,
                           self.max_identified)
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
