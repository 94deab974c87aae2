"""Crease intensity maps extracted from real palm ROIs: the training-time stand-in for a
candidate image (spec seed-004 §4 item 11: a Bezier candidate has no real counterpart, so the
generator learns the candidate -> palm mapping from the creases of real palms, then renders
Bezier candidates at synthesis time). Same convention as the candidate renderer: float32 in
[0, 1], 0 = no crease, 1 = darkest crease."""
from __future__ import annotations

import cv2
import numpy as np

from device.vision.gabor import gabor_bank


def crease_map(roi: np.ndarray, sigma: float = 2.5, n_orient: int = 12, floor_pct: float = 85.0,
               top_pct: float = 99.5, min_area: int = 12) -> np.ndarray:
    """Dark line structures of a grey palm ROI (uint8 or float), as a crease intensity map.

    Dark-line strength is the strongest negative response of a bank of ``n_orient`` real Gabor
    filters (Competitive Code form, scale ``sigma`` px), so elongated creases win over pores; responses
    below the ``floor_pct`` percentile (skin texture) are cut, the rest scaled so that the
    ``top_pct`` percentile is 1; specks smaller than ``min_area`` pixels are removed.
    """
    im = roi.astype(np.float32)
    if roi.dtype == np.uint8:
        im /= 255.0
    im = (im - im.mean()) / (im.std() + 1e-6)
    bank = gabor_bank(n_orient, sigma, int(6 * sigma) | 1)
    resp = np.stack([cv2.filter2D(im, cv2.CV_32F, g, borderType=cv2.BORDER_REFLECT) for g in bank])
    bh = np.maximum(-resp.min(axis=0), 0)
    lo, hi = np.percentile(bh, [floor_pct, top_pct])
    m = np.clip((bh - lo) / max(hi - lo, 1e-6), 0, 1)
    n, lab, stats, _ = cv2.connectedComponentsWithStats((m > 0.05).astype(np.uint8), 8)
    small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < min_area)
    m[np.isin(lab, small[small > 0])] = 0
    return m.astype(np.float32)
