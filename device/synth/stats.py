"""Pixel and frequency statistics of image sets, to compare synthetic palms with real ones."""
from __future__ import annotations

import numpy as np


def radial_power(images: np.ndarray, n_bands: int = 8) -> np.ndarray:
    """Mean share of spectral power in ``n_bands`` radial frequency bands (DC removed,
    Hann-windowed), averaged over images (N,H,W); bands run from low to Nyquist."""
    x = images.astype(np.float64)
    x = x - x.mean(axis=(1, 2), keepdims=True)
    h, w = x.shape[1:]
    win = np.outer(np.hanning(h), np.hanning(w))
    p = np.abs(np.fft.fftshift(np.fft.fft2(x * win), axes=(1, 2))) ** 2
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot((yy - h / 2) / (h / 2), (xx - w / 2) / (w / 2))
    edges = np.linspace(0, 1, n_bands + 1)
    bands = np.stack([p[:, (r > lo) & (r <= hi)].sum(axis=1) for lo, hi in
                      zip(edges[:-1], edges[1:])], axis=1)
    return (bands / bands.sum(axis=1, keepdims=True)).mean(axis=0)


def spectral_slope(images: np.ndarray) -> float:
    """Slope of log radial power vs log frequency (natural images are near -2)."""
    x = images.astype(np.float64)
    x = x - x.mean(axis=(1, 2), keepdims=True)
    h, w = x.shape[1:]
    p = (np.abs(np.fft.fftshift(np.fft.fft2(x * np.outer(np.hanning(h), np.hanning(w))),
                                axes=(1, 2))) ** 2).mean(axis=0)
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(yy - h / 2, xx - w / 2).astype(int)
    f = np.arange(2, min(h, w) // 2)
    prof = np.array([p[r == k].mean() for k in f])
    return float(np.polyfit(np.log(f), np.log(prof), 1)[0])


def image_stats(images: np.ndarray) -> dict:
    """Summary of uint8 grey images (N,H,W): pixel mean/std (global and within-image),
    32-bin histogram, gradient energy, radial power bands and spectral slope."""
    x = images.astype(np.float64) / 255.0
    gy, gx = np.gradient(x, axis=(1, 2))
    hist = np.histogram(images, bins=32, range=(0, 256))[0].astype(np.float64)
    return {"n": int(len(images)), "mean": float(x.mean()), "std": float(x.std()),
            "within_image_std": float(x.std(axis=(1, 2)).mean()),
            "gradient_mean": float(np.hypot(gx, gy).mean()),
            "histogram32": (hist / hist.sum()).round(5).tolist(),
            "radial_power_bands": radial_power(images).round(6).tolist(),
            "spectral_slope": spectral_slope(images)}


def compare_stats(a: dict, b: dict) -> dict:
    """Histogram intersection (1 = identical) and band-power ratios of two ``image_stats``."""
    ha, hb = np.asarray(a["histogram32"]), np.asarray(b["histogram32"])
    pa, pb = np.asarray(a["radial_power_bands"]), np.asarray(b["radial_power_bands"])
    return {"histogram_intersection": float(np.minimum(ha, hb).sum()),
            "band_power_ratio": (pa / np.maximum(pb, 1e-12)).round(3).tolist(),
            "spectral_slope": [a["spectral_slope"], b["spectral_slope"]]}
