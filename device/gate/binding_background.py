"""The X-ray frame's background ramp, for the binding's hand silhouette.

An X-ray frame's background (direct exposure, dark) is not flat: the heel effect leaves a ramp
across the field that the flat-field correction removes only in part, and after the console's
window and gamma the background climbs from a few grey levels on one side to 40-80 on the
other in some frames. A global cut a fifth of the way from the field's 5th percentile to the
hand level then takes a whole bright side of the field into the hand (the silhouette of
:func:`device.gate.binding_silhouette.sensor_hand`): the largest part of the live-hand tail of the
binding score on the validation seeds (docs/results.md, "The X-ray live-hand tail").

:func:`background_ramp` fits a plane to the background (the field's pixels under the cut the
plane itself gives, refitted a few times from the flat level), and :func:`ramp_cut` cuts each
pixel ``level`` of the way from the plane to the hand level. A plane, not a local level: the
hand's faint soft tissue (the palm's edge, a few grey levels over the background) has no
smooth transition to the background, and a local level taken from around it ate into it.

Pure functions of arrays (numpy), no model, no file.
"""
from __future__ import annotations

import cv2
import numpy as np

RAMP_ITERATIONS = 4
"""Refits of the plane, each on the pixels under the previous plane's cut."""

MIN_PIXELS = 50
"""Fewer background pixels (of every other row and column) than this: the last plane kept."""


def background_ramp(g: np.ndarray, field: np.ndarray, lo: float, hi: float, level: float
                    ) -> np.ndarray:
    """(H, W) float32: the plane ``a + b x + c y`` through the background of a grey frame
    ``g`` inside its exposed ``field`` (bool), fitted (least squares, every other row and
    column) to the field's pixels under the cut it gives, ``level`` of the way from it to the
    hand level ``hi``; started from the flat level ``lo`` and refitted
    :data:`RAMP_ITERATIONS` times."""
    h, w = g.shape
    yy, xx = np.mgrid[0:h:2, 0:w:2]
    f = g[::2, ::2].astype(np.float32).ravel()
    fld = field[::2, ::2].ravel()
    A = np.column_stack([np.ones(xx.size), xx.ravel(), yy.ravel()]).astype(np.float32)
    coef = np.array([lo, 0.0, 0.0], np.float32)
    for _ in range(RAMP_ITERATIONS):
        plane = A @ coef
        sel = fld & (f < plane + level * (hi - plane))
        if sel.sum() < MIN_PIXELS:
            break
        As = A[sel]
        coef = np.linalg.solve(As.T @ As, As.T @ f[sel]).astype(np.float32)
    x = np.arange(w, dtype=np.float32)[None, :]
    y = np.arange(h, dtype=np.float32)[:, None]
    return (coef[0] + coef[1] * x + coef[2] * y).astype(np.float32)


def ramp_cut(g: np.ndarray, field: np.ndarray, lo: float, hi: float, level: float
             ) -> np.ndarray:
    """bool (H, W): inside ``field``, the pixels ``level`` of the way above the background
    ramp (:func:`background_ramp`) toward the hand level ``hi``. A ValueError for a frame
    with a NaN or infinite pixel or a field of another shape (no cut from a broken frame)."""
    g = np.asarray(g)
    if g.ndim != 2 or np.shape(field) != g.shape:
        raise ValueError(f"ramp_cut: frame shape {g.shape} and field shape "
                         f"{np.shape(field)} differ (a grey frame and its field)")
    if g.dtype.kind == "f" and not np.isfinite(g).all():
        raise ValueError("ramp_cut: a pixel of the frame is not finite")
    bg = background_ramp(g, field, lo, hi, level)
    return field & (g.astype(np.float32) > bg + level * (hi - bg))


RIM_BAND_PX = {"xray": 3, "nir": 0}
"""X-ray: a background region that reaches this band (sensor pixels) inside the exposed
field's edge is outside the hand, not a hole in it (:func:`largest_inside`): the collimator's
blurred edge, over the cut, lies in the field's outer pixels. Chosen on the validation
presentations of seeds 9317 and 23 among 3, 6 and 9 (the fewest bona fide binding denials,
then the fewest attacks past the binding, then the narrowest; docs/results.md, "The X-ray
live-hand tail, round 2"). NIR: no collimator, holes filled as before."""


def largest_component(mask: np.ndarray) -> np.ndarray | None:
    """bool: the largest 8-connected component of a 0/1 ``mask`` (None: the mask is empty)."""
    m = (np.asarray(mask) > 0).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if n <= 1:
        return None
    return lab == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def largest_inside(mask: np.ndarray, field: np.ndarray, band: int) -> np.ndarray:
    """bool: the largest 8-connected component of a 0/1 ``mask`` with the holes filled that
    reach neither the outside of ``field`` nor the ``band`` pixels inside its edge. A strip
    of the collimator's blurred edge over the cut joins the fingers that cross the field's
    edge, and the background between them and the strip was a hole filled into the hand."""
    comp = largest_component(mask)
    if comp is None:
        return np.zeros(np.shape(mask), bool)
    f = np.pad(np.asarray(field, np.uint8), 1)           # the frame's edge is outside too
    inner = cv2.erode(f, np.ones((2 * band + 1, 2 * band + 1), np.uint8))[1:-1, 1:-1] > 0
    _, holes = cv2.connectedComponents((~comp).astype(np.uint8), connectivity=4)
    outside = np.unique(holes[~comp & ~inner])
    return comp | (~comp & ~np.isin(holes, outside))
