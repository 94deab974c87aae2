"""Render a candidate palm print to a crease intensity map (seed 004, spec 3.10).

The patent only says major lines are drawn bold/"deeper" and minor lines thin/
"shallower" (FIG. 3, FIG. 4, [0048]) and that the candidate image may be
post-processed by extending its edges by a preset amplitude and by adding
noise ([0079]).  Our own choices (spec 3.10 recommendation):

* single-channel float32 map, 0 = no line, up to 1 = darkest crease; each line
  is drawn at its own darkness, lines are composited approximately by max
  (drawn from lightest to darkest, so minors go under majors);
* the unit square maps onto the image with (0, 1) at the upper-left
  (row = (1 - y) * size, col = x * size);
* anti-aliasing: each Bezier is sampled at ``n_points`` points and drawn with
  ``cv2.polylines(..., cv2.LINE_AA, shift=6)`` on a ``supersample``-times
  larger uint8 canvas (default ~1024 px, 8x at 128), then area-averaged
  down (sub-pixel positions and widths quantised to 1/512 of the side);
* stroke widths are stored in unit-square units and scale with ``size``;
* ``margin`` pads the unit square by that fraction of its side on each side
  (the output stays ``size`` x ``size``); ``noise_sigma`` adds clipped
  Gaussian noise.  Both are off by default.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from device.synth.bezier import Candidate, sample_curves

_SHIFT = 6  # fixed-point fractional bits for cv2 sub-pixel coordinates


def unit_to_pixel(points: np.ndarray, size: int, margin: float = 0.0) -> np.ndarray:
    """Map y-up unit-square points (..., 2) to continuous (col, row) pixel coordinates.

    Pixel (r, c) covers [c, c+1) x [r, r+1); the unit square (plus ``margin``
    on each side) covers [0, size)^2, with math corner (0, 1) at the top-left.
    """
    p = np.asarray(points, dtype=np.float64)
    span = 1.0 + 2.0 * margin
    col = (p[..., 0] + margin) / span * size
    row = (1.0 - p[..., 1] + margin) / span * size
    return np.stack([col, row], axis=-1)


def auto_supersample(size: int) -> int:
    """Default supersampling: a ~1024-px working canvas (8x at 128, 4x at 256)."""
    return max(1, int(round(1024 / size)))


def cv2_aa_thickness(width_px: float) -> int:
    """cv2 ``thickness`` whose anti-aliased stroke is closest to ``width_px`` wide.

    Measured on OpenCV 5.0 (opencv 4.x behaves the same): a LINE_AA polyline
    of thickness 1 is ~1.3 px wide and of thickness 2k or 2k+1 is ~2k+1.3 px
    wide, i.e. achievable widths are 1.3 + 2k.  With the default ~1024-px
    canvas this gives steps of 1/512 of the side (0.25 px at size 128), well
    below the gap between the minor and major width ranges.
    """
    k = max(0, int(round((width_px - 1.3) / 2.0)))
    return 1 if k == 0 else 2 * k


def _draw_lines(
    canvas: np.ndarray,
    ctrl: np.ndarray,
    widths_px: np.ndarray,
    darkness: np.ndarray,
    scale: float,
    margin: float,
    n_points: int,
) -> None:
    """Draw Beziers ``ctrl`` (k, 3, 2) onto a supersampled uint8 ``canvas`` in place."""
    if len(ctrl) == 0:
        return
    size_ss = canvas.shape[0]
    pts = unit_to_pixel(sample_curves(ctrl, n_points), size_ss, margin)
    # cv2 puts pixel centres at integer coordinates.
    fixed = np.rint((pts - 0.5) * (1 << _SHIFT)).astype(np.int32)
    order = np.argsort(darkness, kind="stable")
    for i in order:
        thickness = cv2_aa_thickness(float(widths_px[i]) * scale)
        value = int(round(float(np.clip(darkness[i], 0.0, 1.0)) * 255.0))
        cv2.polylines(canvas, [fixed[i]], False, value, thickness, cv2.LINE_AA, _SHIFT)


def _render_lines(
    groups: Sequence[Tuple[np.ndarray, np.ndarray, np.ndarray]],
    size: int,
    margin: float,
    supersample: Optional[int],
    n_points: int,
) -> np.ndarray:
    """Render (ctrl, widths, darkness) groups onto one map; later groups on top."""
    supersample = auto_supersample(size) if supersample is None else int(supersample)
    if size <= 0 or supersample <= 0:
        raise ValueError("size and supersample must be positive")
    if margin < 0:
        raise ValueError("margin must be >= 0")
    size_ss = size * supersample
    canvas = np.zeros((size_ss, size_ss), dtype=np.uint8)
    # Width in unit-square units -> supersampled pixels (scales with size).
    px_per_unit = size_ss / (1.0 + 2.0 * margin)
    for ctrl, widths, dark in groups:
        _draw_lines(canvas, np.asarray(ctrl), np.asarray(widths), np.asarray(dark),
                    px_per_unit, margin, n_points)
    if supersample > 1:
        canvas = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    return canvas.astype(np.float32) * np.float32(1.0 / 255.0)


def _add_noise(img: np.ndarray, noise_sigma: float, rng: Optional[np.random.Generator]) -> np.ndarray:
    """Additive clipped Gaussian noise (the optional noise post-process of [0079])."""
    if noise_sigma <= 0:
        return img
    if rng is None:
        raise ValueError("noise_sigma > 0 needs an rng (numpy.random.Generator)")
    noisy = img + rng.normal(0.0, noise_sigma, size=img.shape).astype(np.float32)
    return np.clip(noisy, 0.0, 1.0).astype(np.float32)


def render_candidate(
    cand: Candidate,
    size: int = 128,
    margin: float = 0.0,
    noise_sigma: float = 0.0,
    rng: Optional[np.random.Generator] = None,
    supersample: Optional[int] = None,
    n_points: int = 32,
) -> np.ndarray:
    """Crease intensity map of ``cand``: float32 (size, size) in [0, 1] (spec 3.10).

    0 = background, larger = deeper crease.  Minor lines are drawn first,
    majors on top (majors are bolder and deeper, [0048], FIG. 3/4).
    ``margin`` is the edge extension of [0079] as a fraction of the region
    side; ``noise_sigma`` > 0 adds Gaussian noise drawn from ``rng``.
    """
    img = _render_lines(
        [
            (cand.minors, cand.minor_widths, cand.minor_darkness),
            (cand.majors, cand.major_widths, cand.major_darkness),
        ],
        size, margin, supersample, n_points,
    )
    return _add_noise(img, noise_sigma, rng)


def render_major_minor_masks(
    cand: Candidate,
    size: int = 128,
    margin: float = 0.0,
    supersample: Optional[int] = None,
    n_points: int = 32,
) -> Tuple[np.ndarray, np.ndarray]:
    """Separate (major_map, minor_map) intensity maps, each like :func:`render_candidate`.

    Useful to measure per-class stroke width and darkness (check 15) and
    major-minor overlaps (check 14).  No noise.
    """
    major = _render_lines([(cand.majors, cand.major_widths, cand.major_darkness)],
                          size, margin, supersample, n_points)
    minor = _render_lines([(cand.minors, cand.minor_widths, cand.minor_darkness)],
                          size, margin, supersample, n_points)
    return major, minor


def render_batch(
    cands: Sequence[Candidate],
    size: int = 128,
    margin: float = 0.0,
    noise_sigma: float = 0.0,
    rng: Optional[np.random.Generator] = None,
    supersample: Optional[int] = None,
) -> np.ndarray:
    """Render many candidates into a float32 (N, size, size) array."""
    out = np.empty((len(cands), size, size), dtype=np.float32)
    for i, cand in enumerate(cands):
        out[i] = render_candidate(cand, size, margin, noise_sigma, rng, supersample)
    return out
