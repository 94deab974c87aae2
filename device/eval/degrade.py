"""Realistic per-view degradations of a palm ROI (pure functions, seeded by the caller's rng).

What a gate's burst really contains besides clean views: a view blurred by motion or defocus, a
finger or sleeve across part of the palm, a specular glare spot, an under- or over-exposed view,
a view misaligned by a few pixels / degrees. Used to build degraded multi-view training sets
for the fusion (tools/train/recognition_fusion*) and by ``palmgate evaluate --degrade``.

``degrade(roi, kind, rng)``: uint8 greyscale ROI (H, W) in, the same shape and dtype out; the
same rng state gives the same output. ``KINDS`` names the kinds.
"""
from __future__ import annotations

import cv2
import numpy as np

KINDS = ("blur", "occlusion", "glare", "exposure", "misalignment")


def _check(roi: np.ndarray) -> np.ndarray:
    roi = np.asarray(roi)
    if roi.ndim != 2 or roi.dtype != np.uint8:
        raise ValueError("degrade: expects a uint8 greyscale (H, W) ROI")
    return roi


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def blur(roi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Motion blur (a line kernel, 7-15 px at a random angle) or defocus (a disc, radius
    2.5-4.5 px), chosen at random; the scale is relative to a 128-px ROI."""
    h, w = roi.shape
    f = max(h, w) / 128.0
    x = roi.astype(np.float32)
    if rng.random() < 0.5:
        n = int(round(rng.uniform(7, 15) * f)) | 1
        k = np.zeros((n, n), np.float32)
        k[n // 2, :] = 1.0
        rot = cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), float(rng.uniform(0, 180)), 1)
        k = cv2.warpAffine(k, rot, (n, n))
    else:
        r = rng.uniform(2.5, 4.5) * f
        n = int(np.ceil(r)) * 2 + 1
        yy, xx = np.mgrid[:n, :n] - n // 2
        k = (xx * xx + yy * yy <= r * r).astype(np.float32)
    k /= k.sum()
    return _to_u8(cv2.filter2D(x, -1, k, borderType=cv2.BORDER_REFLECT))


def occlusion(roi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A finger or sleeve edge across the palm: a band entering from one side, covering 15-35 %
    of the ROI, with a soft edge, smooth shading and no palm lines."""
    h, w = roi.shape
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    d = (xx - w / 2) * np.cos(ang) + (yy - h / 2) * np.sin(ang)      # signed distance along ang
    lo, hi = np.quantile(d, [0.0, 1.0])
    cut = hi - rng.uniform(0.15, 0.35) * (hi - lo)
    if rng.random() < 0.5:                                          # a finger: a finite band
        width = rng.uniform(0.18, 0.30) * max(h, w)
        centre = lo + rng.uniform(0.25, 0.75) * (hi - lo)
        m = np.clip((width / 2 - np.abs(d - centre)) / 3.0, 0, 1)
    else:                                                           # a sleeve from one side
        m = np.clip((d - cut) / 3.0, 0, 1)
    level = float(np.mean(roi)) * rng.uniform(0.6, 1.3)
    shade = level + rng.uniform(-25, 25) * (d - d.mean()) / (np.ptp(d) + 1e-6)
    return _to_u8(roi * (1 - m) + shade * m)


def glare(roi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A specular highlight: one or two bright Gaussian spots (sigma 8-20 % of the ROI) that
    saturate at their centres."""
    h, w = roi.shape
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    x = roi.astype(np.float32)
    for _ in range(int(rng.integers(1, 3))):
        cx, cy = rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h
        s = rng.uniform(0.08, 0.20) * max(h, w)
        g = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))
        x = x + g * rng.uniform(150, 260)
    return _to_u8(x)


def exposure(roi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Under-exposure (gain 0.2-0.45, then sensor noise and re-quantisation: the lines' contrast
    falls to a few grey levels) or over-exposure (gain 1.8-3, clipping at 255)."""
    x = roi.astype(np.float32)
    if rng.random() < 0.5:
        x = x * rng.uniform(0.2, 0.45) + rng.normal(0, 2.0, x.shape)
    else:
        x = (x - x.mean()) * rng.uniform(1.0, 1.4) + x.mean() * rng.uniform(1.8, 3.0)
    return _to_u8(x)


def misalignment(roi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A view the ROI step placed slightly wrong: shift 3-8 % of the ROI (4-10 px at 128),
    rotation 3-8 degrees, scale 0.93-1.07, each in a random direction; borders reflected."""
    h, w = roi.shape
    ang = rng.uniform(3, 8) * rng.choice([-1, 1])
    sc = rng.uniform(0.93, 1.07)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), float(ang), float(sc))
    t = rng.uniform(0.03, 0.08) * max(h, w)
    phi = rng.uniform(0, 2 * np.pi)
    m[:, 2] += (t * np.cos(phi), t * np.sin(phi))
    return cv2.warpAffine(roi, m, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


_FUNCS = {"blur": blur, "occlusion": occlusion, "glare": glare, "exposure": exposure,
          "misalignment": misalignment}


def degrade(roi: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """``roi`` degraded by ``kind`` (one of KINDS), randomness from ``rng`` only."""
    roi = _check(roi)
    if kind not in _FUNCS:
        raise ValueError(f"degrade: kind must be one of {KINDS}, not {kind!r}")
    out = _FUNCS[kind](roi, rng)
    assert out.shape == roi.shape and out.dtype == np.uint8
    return out


def degrade_random(roi: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """One kind drawn uniformly from KINDS, applied: (degraded ROI, kind)."""
    kind = KINDS[int(rng.integers(len(KINDS)))]
    return degrade(roi, kind, rng), kind
