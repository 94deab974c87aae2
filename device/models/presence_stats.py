"""The classical half of the presence check: is there a hand in the transmission sensor's frame?

Pure functions of one capture (float32 (128, 128) in [0, 1], what
:func:`device.models.sensor_branch.to_capture` gives).  A hand seen by the X-ray or NIR sensor
-- live or a replica -- is a large, smooth, bounded object with sharp-enough outlines on a
background: its frame has a real dynamic range, little pixel noise for that range, strong
spatial correlation, structure that no smooth gradient explains, and a silhouette (the Otsu
foreground of the smoothed frame) that covers a fair part of the frame in few pieces.  Noise,
flat, black and saturated frames, gradients, shuffled pixels and heavily blurred frames each
fail at least one of these.

The limits are not constants of this module: they are measured on training frames of each
sensor by ``python -m tools.train presence`` and live in the signed manifest entry of the
presence model (``presence_limits``), so they are covered by the release signature like every
other security threshold.
"""
from __future__ import annotations

import cv2
import numpy as np

STATS = ("range", "noise", "autocorr", "structure", "edge", "silhouette", "pieces")
"""The frame statistics, in the order :func:`frame_stats` returns them."""

LOWER = ("range", "autocorr", "structure", "edge", "silhouette")
"""Statistics a hand frame has at least (a lower limit); the others have an upper limit."""
UPPER = ("noise", "pieces")

_LAPLACE = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def _quadratic_residual(a: np.ndarray) -> float:
    """Std of what a quadratic surface in (x, y) leaves of ``a`` (on an 8x subsampled grid)."""
    s = a[::4, ::4]
    h, w = s.shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    y, x = y / h - 0.5, x / w - 0.5
    A = np.stack([np.ones_like(x), x, y, x * x, y * y, x * y], -1).reshape(-1, 6)
    coef, *_ = np.linalg.lstsq(A, s.ravel(), rcond=None)
    return float(np.std(s.ravel() - A @ coef))


def frame_stats(capture: np.ndarray) -> np.ndarray:
    """The :data:`STATS` of one capture (float (H, W) in [0, 1]) as a float64 vector.

    * range: 99th minus 1st percentile of the grey levels;
    * noise: pixel noise (Immerkaer's Laplacian estimate) over the range;
    * autocorr: correlation of the frame with itself shifted by 2 px (mean of x and y);
    * structure: what a quadratic surface leaves unexplained (std) over the range;
    * edge: 99th percentile of the gradient magnitude (per px, on a sigma-1 smoothed frame)
      over the range;
    * silhouette: area share of the largest piece of the Otsu foreground of the smoothed frame;
    * pieces: pieces of that foreground larger than 0.2 % of the frame."""
    a = np.asarray(capture, np.float32)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"expected a 2-D capture, got shape {np.shape(capture)}")
    if not np.all(np.isfinite(a)):
        raise ValueError("capture holds non-finite values")
    lo, hi = np.percentile(a, [1, 99])
    rng = float(hi - lo)
    r = max(rng, 1e-3)
    lap = cv2.filter2D(a, -1, _LAPLACE)[1:-1, 1:-1]
    noise = float(np.sqrt(np.pi / 2) * np.mean(np.abs(lap)) / 6.0) / r
    d = a - a.mean()
    den = float(np.sum(d * d))
    if den <= 1e-12:
        ac = 0.0
    else:
        ac = 0.5 * (float(np.sum(d[:, 2:] * d[:, :-2])) + float(np.sum(d[2:] * d[:-2]))) / den
    structure = _quadratic_residual(a) / r
    sm = cv2.GaussianBlur(a, (0, 0), 1.0)
    gx = cv2.Sobel(sm, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(sm, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    edge = float(np.percentile(np.hypot(gx, gy), 99)) / r
    u8 = np.clip(cv2.GaussianBlur(a, (0, 0), 2.0) * 255, 0, 255).astype(np.uint8)
    if rng < 1e-3:
        sil, pieces = 0.0, 0
    else:
        _, m = cv2.threshold(u8, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        n, _, st, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
        areas = st[1:, cv2.CC_STAT_AREA] / float(a.size)
        sil = float(areas.max()) if areas.size else 0.0
        pieces = int(np.sum(areas > 0.002))
    return np.array([rng, noise, ac, structure, edge, sil, pieces], np.float64)


def stats_of(captures) -> np.ndarray:
    """(N, len(STATS)) statistics of a stack of captures."""
    return np.stack([frame_stats(c) for c in captures]) if len(captures) else \
        np.zeros((0, len(STATS)))


def limits_from(stats: np.ndarray, margin: float = 0.25) -> dict:
    """Limits that every row of ``stats`` (hand frames: bona fide and attacks) passes, widened
    by ``margin`` of the observed spread beyond the extremes: ``{stat: [low, high]}`` with
    None for the open side."""
    s = np.asarray(stats, np.float64)
    out = {}
    for k, name in enumerate(STATS):
        col = s[:, k]
        spread = float(col.max() - col.min()) or abs(float(col.max())) or 1.0
        if name in LOWER:
            out[name] = [float(col.min() - margin * spread), None]
        else:
            out[name] = [None, float(col.max() + margin * spread)]
    return out


def check_limits(limits: dict) -> dict:
    """``limits`` as read from a manifest, checked: every statistic of :data:`STATS` with a
    numeric bound on its side; a ValueError otherwise (the gate then fails secure)."""
    out = {}
    for name in STATS:
        v = limits.get(name) if isinstance(limits, dict) else None
        if not isinstance(v, (list, tuple)) or len(v) != 2:
            raise ValueError(f"presence limit {name!r} missing or not [low, high]")
        k = 0 if name in LOWER else 1
        b = v[k]
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not np.isfinite(b):
            raise ValueError(f"presence limit {name!r} has no numeric "
                             f"{'low' if k == 0 else 'high'} bound")
        out[name] = (float(b), None) if k == 0 else (None, float(b))
    return out


def failures(stats_row: np.ndarray, limits: dict) -> list[str]:
    """Names of the statistics of one frame outside ``limits`` (checked by
    :func:`check_limits`); empty when the frame may show a hand."""
    bad = []
    for k, name in enumerate(STATS):
        lo, hi = limits[name]
        v = float(stats_row[k])
        if (lo is not None and not v >= lo) or (hi is not None and not v <= hi):
            bad.append(name)
    return bad
