"""The sensor frame's hand: its silhouette and exposed field, as the binding and the X-ray
bone patch cut it.

Inside the exposed field (a collimator's bright rim cut off, :func:`open_field`), the blurred
frame (NIR: raised to :data:`GAMMA`) is cut :data:`LEVEL` of the way from the background level
(X-ray: a plane through the background, :data:`BACKGROUND_RAMP`) to the hand level; the largest
component with its holes filled (X-ray: not those open to the field's edge,
:data:`~device.gate.binding_background.RIM_BAND_PX`) is the hand (:func:`sensor_hand`), and
:func:`signed_distance` its signed distance to the outline, which the binding
(:mod:`device.gate.sensor_binding`) probes at the views' hand. Pure functions of arrays.
"""
from __future__ import annotations

import cv2
import numpy as np

from device.gate.binding_background import (RIM_BAND_PX, largest_component, largest_inside,
                                           ramp_cut)

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

