"""The same hand in both: the transmission-sensor frame bound to the visible views.

The liveness model judges the sensor frame alone and the matcher the views alone, so a live hand
under the sensor with a replica before the cameras (or the reverse) would be judged on each half
by itself. Here each view's hand is carried into the sensor frame through the unit's
registration (sensor pixels <-> view pixels for points on the working plane, the factory's
``palmgate-calibrate registration``) and compared with the hand the sensor frame shows:

- **the views' hand**: each view's hand silhouette from the hand segmentation network (the
  front end's own model, ``models/hand_seg*.onnx``), its outline mapped point by point into the
  sensor frame and filled (:func:`mask_in_sensor`);
- **the sensor's hand** (:func:`sensor_silhouette`): inside the exposed field (a collimator's
  bright rim cut off), the blurred frame cut ``LEVEL`` of the way from the background level to
  the hand level (a dark background and a brighter hand, both sensors), the largest component
  with its holes filled;
- **the binding distance** (:func:`binding_score`): the mean over views of the symmetric mean
  distance between the two silhouettes' outlines in the sensor frame (the exposed field's edge
  left out), in units of the frame's short side, at the best of a few scales of the views'
  hands (:data:`DEPTH_SCALE`: the hand's depth off the working plane changes its size between
  the views and the sensor); over ``[liveness] binding_max_distance`` (default
  :data:`MAX_DISTANCE`) the presentation is denied with ``sensor_mismatch``.

Pure functions of arrays, and :class:`BindingStage`, which the pipeline calls after liveness.
The registration comes from the unit's calibration; a synthetic source, or a unit running
without a calibration (``[calibration] allow_uncalibrated``, or a replay without a file; with a
warning), uses the nominal registration of the synthetic rig (:mod:`device.synth.bound`). With
the segmentation network missing or refused the check cannot run and the gate denies
(``binding_unavailable``). Measured numbers: docs/sensor-branch.md ("Binding").
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from device.gate.decision import Deny

log = logging.getLogger("palmgate.gate")

LEVEL = {"xray": 0.2, "nir": 0.3}
"""The hand/background cut, as a fraction of the way from the background level (5th percentile
of the open field) to the hand level (median above the field's Otsu threshold); chosen on 30
bona fide validation scenes per sensor (seed 11) among 0.1-0.5 (NIR: dim fingers far from the
light are lost below 0.3 ... and the hand's rim above)."""

MIN_AREA = 0.002
"""Outline pieces of a view mask smaller than this fraction of the view are dropped."""


# ------------------------------------------------------------------------------ the two hands
def open_field(g: np.ndarray) -> tuple[slice, slice]:
    """(rows, cols) of the exposed field of a sensor frame: a rim brighter than the frame's
    median (a collimator's unexposed border) is cut off where the row/column medians drop
    below halfway between the rim and the field."""
    h, w = g.shape
    edge = float(np.median(np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])))
    mid = float(np.median(g))
    if edge < mid + 20:
        return slice(0, h), slice(0, w)
    cut = (edge + float(np.percentile(g, 5))) / 2
    rows = np.flatnonzero(np.median(g, axis=1) < cut)
    cols = np.flatnonzero(np.median(g, axis=0) < cut)
    if len(rows) < h // 4 or len(cols) < w // 4:
        return slice(0, h), slice(0, w)
    m = 2                                        # the rim's blurred edge
    return (slice(rows[0] + m, rows[-1] + 1 - m), slice(cols[0] + m, cols[-1] + 1 - m))


def sensor_silhouette(frame: np.ndarray, sensor: str = "nir", blur: float = 1.0
                      ) -> np.ndarray:
    return sensor_hand(frame, LEVEL[sensor], blur)[0]


def sensor_hand(frame: np.ndarray, level: float, blur: float = 1.0
                ) -> tuple[np.ndarray, np.ndarray]:
    """(hand, exposed field), bool (H, W) each, of a sensor frame (grey or BGR, any dtype):
    inside the exposed field, the blurred frame cut ``level`` of the way from the background to
    the hand level, the largest component, holes filled. The hand is empty when nothing stands
    out."""
    g = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if g.dtype != np.uint8:
        g = cv2.normalize(g.astype(np.float32), None, 0, 255, cv2.NORM_MINMAX, cv2.CV_8U)
    g = cv2.GaussianBlur(g, (0, 0), blur)
    rs, cs = open_field(g)
    inner = np.ascontiguousarray(g[rs, cs])
    field = np.zeros(g.shape, bool)
    field[rs, cs] = True
    if inner.size == 0 or int(inner.max()) - int(inner.min()) < 8:
        return np.zeros(g.shape, bool), field
    t, _ = cv2.threshold(inner, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    lo = float(np.percentile(inner, 5))
    hi = float(np.median(inner[inner > t])) if np.any(inner > t) else float(inner.max())
    m = np.zeros(g.shape, np.uint8)
    m[rs, cs] = inner > lo + level * (hi - lo)
    return largest_filled(m), field


def largest_filled(mask: np.ndarray) -> np.ndarray:
    """bool: the largest 8-connected component of a 0/1 mask with its holes filled."""
    m = (np.asarray(mask) > 0).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if n <= 1:
        return np.zeros(m.shape, bool)
    big = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    comp = (lab == big).astype(np.uint8)
    contours, _ = cv2.findContours(comp, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.zeros_like(comp)
    cv2.drawContours(out, contours, -1, 1, cv2.FILLED)
    return out > 0


def _fix(p: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(p, np.float64) * 16).astype(np.int32)


def mask_in_sensor(mask: np.ndarray, to_sensor, shape: tuple[int, int],
                   min_area: float = MIN_AREA) -> np.ndarray | None:
    """bool ``shape``: a view's 0/1 hand mask in the sensor frame -- its outer outlines
    mapped point by point by ``to_sensor(points) -> points`` and filled. None when the mask is
    empty or a point does not map."""
    m = (np.asarray(mask) > 0).astype(np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    keep = [c for c in contours if cv2.contourArea(c) >= min_area * m.size]
    if not keep:
        return None
    out = np.zeros(shape, np.uint8)
    for c in keep:
        poly = to_sensor(c.reshape(-1, 2).astype(np.float64))
        if not np.all(np.isfinite(poly)):
            return None
        cv2.fillPoly(out, [_fix(poly)], 1, cv2.LINE_8, 4)
    return out > 0


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two bool masks; 0 when both are empty."""
    union = int(np.count_nonzero(a | b))
    return float(np.count_nonzero(a & b)) / union if union else 0.0


def _outline(m: np.ndarray, field: np.ndarray) -> np.ndarray:
    """bool: the boundary pixels of ``m`` inside ``field`` (not on its edge)."""
    u = m.astype(np.uint8)
    edge = (u - cv2.erode(u, np.ones((3, 3), np.uint8))) > 0
    inner = cv2.erode(field.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    return edge & inner


class OutlineTarget:
    """The outline of one bool mask inside ``field`` and the distance to it from every pixel,
    computed once for the many masks compared with it (:func:`outline_distance`)."""

    def __init__(self, b: np.ndarray, field: np.ndarray):
        self.field = field
        self.edge = _outline(b, field)
        self.dist = cv2.distanceTransform((~self.edge).astype(np.uint8), cv2.DIST_L2, 3) \
            if self.edge.any() else None

    def distance(self, a: np.ndarray) -> float:
        """Symmetric mean distance (pixels) between the outline of ``a`` and this outline;
        inf when one has no outline inside the field."""
        ea = _outline(a, self.field)
        if self.dist is None or not ea.any():
            return float("inf")
        da = cv2.distanceTransform((~ea).astype(np.uint8), cv2.DIST_L2, 3)
        return 0.5 * (float(self.dist[ea].mean()) + float(da[self.edge].mean()))


def outline_distance(a: np.ndarray, b: np.ndarray, field: np.ndarray) -> float:
    """Symmetric mean distance (pixels) between the outlines of two bool masks inside
    ``field`` (the edges of the field, where both are cut, do not count); inf when one has no
    outline there."""
    return OutlineTarget(b, field).distance(a)


# ------------------------------------------------------------------------------ one presentation
@dataclass
class Binding:
    """The binding of one presentation: ``score`` (mean over views of the outline distance
    in units of the sensor frame's short side; inf when no view could be compared), the
    silhouettes' mean IoU, each view's distance, and the scale of the views' hands at the best
    match."""

    score: float
    iou: float
    per_view: dict
    scale: float = 1.0


MAX_DISTANCE = {"xray": 0.037, "nir": 0.056}
"""The default ``[liveness] binding_max_distance`` per sensor (fraction of the sensor frame's
short side): the 99.5th percentile of the binding distance of 300 bona fide validation
presentations (seed 11), rounded up -- a false denial rate of 0.5 % on validation
(docs/sensor-branch.md, "Binding")."""

DEPTH_SCALE = {"nir": 0.12, "xray": 0.05}
"""How much the hand's depth (+-15 mm off the working plane) can change its size between the
views (cameras above, 240-290 mm away) and the sensor (the NIR camera 250 mm below the plane,
the X-ray source 870 mm above it), as a fraction: the registration is exact on the plane only,
so the views' hands are compared at every scale within this (one scale for all views: one
depth)."""

SCALE_STEP = 0.02


def scales(tolerance: float, step: float = SCALE_STEP) -> np.ndarray:
    n = int(np.floor(tolerance / step + 1e-9))
    return 1.0 + step * np.arange(-n, n + 1)


def _scaled(m: np.ndarray, s: float) -> np.ndarray:
    if s == 1.0:
        return m
    ys, xs = np.nonzero(m)
    if len(xs) == 0:
        return m
    M = cv2.getRotationMatrix2D((float(xs.mean()), float(ys.mean())), 0.0, float(s))
    return cv2.warpAffine(m.astype(np.uint8), M, (m.shape[1], m.shape[0]),
                          flags=cv2.INTER_NEAREST) > 0


def binding_score(frame: np.ndarray, masks: dict, to_sensor, sensor: str = "nir",
                  scale_tolerance: float | None = None) -> Binding:
    """How far the views' hand and the sensor frame's hand are apart (see the module doc).
    ``masks``: view index -> (hand mask, view size (W, H)); ``to_sensor(points, k,
    view_size)`` maps view ``k`` pixels to pixels of ``frame``; the views' hands are scaled
    about their centres by every factor within ``scale_tolerance`` (default the sensor's
    :data:`DEPTH_SCALE`; one factor for all views) and the best is kept."""
    shape = frame.shape[:2]
    sil, field = sensor_hand(frame, LEVEL[sensor])
    if scale_tolerance is None:
        scale_tolerance = DEPTH_SCALE[sensor]
    side = float(min(shape))
    mapped = {}
    for k, (mask, size) in masks.items():
        mapped[k] = mask_in_sensor(mask, lambda p, k=k, size=size: to_sensor(p, k, size), shape)
    if not mapped:
        return Binding(float("inf"), 0.0, {}, 1.0)
    target = OutlineTarget(sil, field)     # the sensor frame's hand: the same at every scale
    best = None
    for s in scales(scale_tolerance):
        per, ious = {}, []
        for k, m in mapped.items():
            if m is None:
                per[k] = float("inf")
                ious.append(0.0)
                continue
            ms = _scaled(m, s) & field
            per[k] = target.distance(ms) / side
            ious.append(iou(ms, sil))
        score = float(np.mean(list(per.values())))
        if best is None or score < best.score:
            best = Binding(score, float(np.mean(ious)), per, float(s))
    return best


# ------------------------------------------------------------------------------ registrations
class HomographyRegistration:
    """Sensor pixel -> view pixel homographies (one per view, for views of ``view_size`` (W, H)
    and a sensor frame of ``sensor_size`` (W, H)); views or frames of other sizes are scaled."""

    def __init__(self, H: list, view_size: tuple[int, int], sensor_size: tuple[int, int]):
        self.Hinv = [np.linalg.inv(np.asarray(h, np.float64)) for h in H]
        self.view_size, self.sensor_size = tuple(view_size), tuple(sensor_size)

    def to_sensor(self, points, k: int, view_size, sensor_size) -> np.ndarray:
        if not 0 <= k < len(self.Hinv):
            return np.full((len(points), 2), np.nan)
        p = np.asarray(points, np.float64).reshape(-1, 2)
        p = p * (np.array(self.view_size, float) / np.array(view_size, float))
        q = np.column_stack([p, np.ones(len(p))]) @ self.Hinv[k].T
        q = q[:, :2] / q[:, 2:3]
        return q * (np.array(sensor_size, float) / np.array(self.sensor_size, float))


class CorrectionRegistration:
    """The unit's factory registration (:class:`device.vision.view_correction.UnitCorrection`)."""

    def __init__(self, correction):
        self.correction = correction

    def to_sensor(self, points, k: int, view_size, sensor_size) -> np.ndarray:
        return self.correction.view_to_sensor(points, k, view_size, sensor_size)


def nominal_registration(cfg) -> HomographyRegistration:
    """The synthetic rig's registration (``[source] synthetic_seed``, ``[gate] views``,
    ``[liveness] sensor``): exact for the synthetic source, a stand-in anywhere else."""
    from device.synth.bound import sensor_size, synthetic_registration
    H, view_hw = synthetic_registration(cfg.source.synthetic_seed, cfg.gate.views,
                                        cfg.liveness.sensor)
    sh = sensor_size(cfg.liveness.sensor)
    return HomographyRegistration(H, (view_hw[1], view_hw[0]), (sh[1], sh[0]))


# ------------------------------------------------------------------------------ the stage
class BindingStage:
    """Called by the pipeline after liveness with the (calibrated) burst; raises :class:`Deny`
    ``sensor_mismatch`` when the sensor frame's hand is not the views' hand, and
    ``binding_unavailable`` when the views' hands cannot be segmented. ``segmenter``: a
    zero-argument callable that returns the hand segmentation network or None."""

    def __init__(self, cfg, calibration, segmenter, map_fn=map):
        self.map = map_fn
        d = cfg.liveness.binding_max_distance
        self.max_distance = float(MAX_DISTANCE[cfg.liveness.sensor] if d is None else d)
        self.sensor = cfg.liveness.sensor
        self.segmenter = segmenter
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

    def score(self, views, frame: np.ndarray, idx=None) -> Binding:
        seg = self.segmenter()
        if seg is None:
            raise Deny("binding_unavailable", "",
                       "the hand segmentation network is unavailable")
        idx = [k for k in (range(len(views)) if idx is None else idx)
               if views[k] is not None and views[k].ndim == 3]
        masks = {k: (m, (views[k].shape[1], views[k].shape[0]))
                 for k, m in zip(idx, self.map(seg, [views[k] for k in idx]))}
        sh = frame.shape[:2]

        def to_sensor(points, k, view_size):
            return self.registration.to_sensor(points, k, view_size, (sh[1], sh[0]))
        return binding_score(frame, masks, to_sensor, self.sensor)

    def __call__(self, burst, out=None, idx=None) -> Binding:
        b = self.score(burst.views, burst.sensor, idx)
        if out is not None:
            out.binding = b.score
        if not b.score <= self.max_distance:
            raise Deny("sensor_mismatch", "please present your palm again",
                       "the sensor frame's hand is not the views' hand")
        return b


def binding_stage(cfg, calibration, segmenter_stage, map_fn=map) -> BindingStage | None:
    """The pipeline's binding stage: None unless ``[liveness] enabled`` and ``binding``. The
    views' hands come from the segmentation network stage (``[gate] segmenter = "net"``),
    segmented through ``map_fn`` (the pipeline's region threads); without the network the
    check cannot run and every presentation is denied (``binding_unavailable``)."""
    if not (cfg.liveness.enabled and cfg.liveness.binding):
        return None
    get = segmenter_stage.get if segmenter_stage is not None else (lambda: None)
    return BindingStage(cfg, calibration, get, map_fn)
