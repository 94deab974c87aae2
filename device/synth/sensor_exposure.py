"""The sensor response shared by every class (bona fide and attacks alike): per-image exposure
settings drawn from one distribution (:func:`sample_exposure`), the physical map -> displayed
image step (:func:`sensor_response`: quantum noise, heel/illumination gradient, scatter,
auto-window, auto-brightness, gain and offset) and the capture's degradation of an ideal image
(:func:`degrade`). See :mod:`device.synth.sensor` for the whole pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from device.synth.sensor_geometry import SR_SCALE

@dataclass(frozen=True)
class Exposure:
    """Per-image sensor settings, drawn by :func:`sample_exposure` from one distribution for
    every class (bona fide and attacks alike)."""

    photons: float          # quanta per x2-grid pixel behind no absorber (X-ray) / full well
    gradient: float         # heel effect / illumination gradient amplitude
    gradient_angle: float
    scatter: float          # fraction of scattered / stray signal
    q_lo: float             # auto-window low percentile
    q_hi: float             # auto-window high percentile
    headroom: float         # window top above that percentile (x range)
    black: float            # black point above the low percentile (x range)
    collimation: tuple[float, float, float, float]   # X-ray field margins (top, bottom, l, r)
    target_mean: float      # auto-brightness target of the tone curve
    gain: float
    offset: float


def sample_exposure(rng: np.random.Generator, sensor: str) -> Exposure:
    """Draw the sensor settings of one image (same distribution for every class)."""
    xr = sensor == "xray"
    return Exposure(
        photons=float(np.exp(rng.uniform(np.log(600), np.log(8000)))),
        gradient=float(rng.uniform(0.0, 0.25)),
        gradient_angle=float(rng.uniform(0, 2 * np.pi)),
        scatter=float(rng.uniform(0.0, 0.25)),
        q_lo=float(rng.uniform(0.5, 15.0) if xr else rng.uniform(0.5, 10.0)),
        q_hi=float(rng.uniform(96.5, 99.9)),
        headroom=float(rng.uniform(1.0, 1.5)),
        black=float(rng.uniform(0.0, 0.1) if xr else rng.uniform(0.0, 0.05)),
        collimation=tuple(float(v) for v in (rng.uniform(0, 0.12, 4) * (rng.random() < 0.6)
                                              if xr else np.zeros(4))),
        target_mean=float(rng.uniform(0.15, 0.35) if xr else rng.uniform(0.3, 0.52)),
        gain=float(rng.uniform(0.8, 1.0)),
        offset=float(rng.uniform(0.0, 0.1)),
    )


_GAMMAS = np.exp(np.linspace(np.log(0.33), np.log(3.0), 97))
_CENTRES = (np.arange(256) + 0.5) / 256
_POWERS = _CENTRES[None, :] ** _GAMMAS[:, None]
for _a in (_GAMMAS, _CENTRES, _POWERS):
    _a.flags.writeable = False                     # read-only lookup tables
del _a


def auto_gamma(x: np.ndarray, target: float) -> float:
    """Gamma of the tone curve ``x ** gamma`` that brings the mean of ``x`` (in [0, 1]) to
    ``target`` -- the sensor's auto-brightness (clamped to [0.33, 3])."""
    v = x.ravel()
    n = max(v.size, 1)
    ones = float(np.count_nonzero(v >= 1.0))
    inner = v[(v > 0.0) & (v < 1.0)]
    p = np.bincount(np.minimum((inner * 256).astype(np.int32), 255), minlength=256)
    means = (_POWERS @ p + ones) / n
    return float(_GAMMAS[int(np.argmin(np.abs(means - target)))])


def ramp(shape: tuple[int, int], angle: float) -> np.ndarray:
    """Linear ramp in [-1, 1] (about the image centre) along direction ``angle``."""
    h, w = shape
    x = (np.arange(w, dtype=np.float32) - w / 2) / (w / 2)
    y = (np.arange(h, dtype=np.float32) - h / 2) / (h / 2)
    return np.cos(angle) * x[None, :] + np.sin(angle) * y[:, None]


def sensor_response(phys: np.ndarray, exp: Exposure, rng: np.random.Generator, sensor: str,
                    base_px: int) -> np.ndarray:
    """Physical map -> displayed image in [0, 1] with exposure, noise and auto-window.

    X-ray: ``phys`` is log-attenuation; transmitted quanta ``N = photons * gradient *
    exp(-phys)`` (+ scatter), Poisson-like noise, flat-field, log, window.  NIR: ``phys`` is
    radiance in [0, 1]; signal-dependent noise, then window.  ``base_px`` is the side of the x2
    grid, used to keep the noise per physical area the same at any render scale.
    """
    shape = phys.shape
    area = (base_px / shape[0]) ** 2               # render pixels are smaller at larger scales
    grad = ramp(shape, exp.gradient_angle)
    heel = 1 + exp.gradient * grad
    if sensor == "xray":
        I = np.exp(-phys) * heel
        small = cv2.resize(I, (max(shape[1] // 8, 1), max(shape[0] // 8, 1)),
                           interpolation=cv2.INTER_AREA)
        I = (1 - exp.scatter) * I + exp.scatter * cv2.resize(
            cv2.GaussianBlur(small, (0, 0), 2.0), (shape[1], shape[0]),
            interpolation=cv2.INTER_LINEAR)
        n = exp.photons * area
        I = I + rng.standard_normal(shape, dtype=np.float32) * np.sqrt(np.maximum(I, 1e-6) / n)
        flat = 1 + exp.gradient * 0.85 * grad         # imperfect flat-field correction
        sig = -np.log(np.maximum(I / flat, 1e-3))
    else:
        I = phys * heel * (1 - exp.scatter) + exp.scatter * 0.2
        n = exp.photons * area
        sig = I + rng.standard_normal(shape, dtype=np.float32) * np.sqrt(np.maximum(I, 1e-6) / n)
    # the window is set on a noise-free preview of the exposed field (the console's
    # auto-window), with headroom above and a black point above the direct-exposure level
    h, w = shape
    t, b, l, r = (int(round(c * n)) for c, n in zip(exp.collimation, (h, h, w, w)))
    field = sig[t:h - b, l:w - r]
    prev = cv2.resize(field, (max(field.shape[1] // 4, 1), max(field.shape[0] // 4, 1)),
                      interpolation=cv2.INTER_AREA)
    lo, hi = np.percentile(prev, [exp.q_lo, exp.q_hi])
    hi = lo + (hi - lo) * exp.headroom
    lo = lo + (hi - lo) * exp.black
    x = np.clip((sig - lo) / max(hi - lo, 1e-4), 0, 1)
    gamma = auto_gamma(x[t:h - b:2, l:w - r:2], exp.target_mean)
    if t or b or l or r:                            # collimated (unexposed) border shows white
        x[:t] = 1.0
        x[h - b:] = 1.0
        x[:, :l] = 1.0
        x[:, w - r:] = 1.0
    y = exp.offset + exp.gain * np.power(x, gamma)
    return np.clip(y, 0, 1).astype(np.float32)


def degrade(hr: np.ndarray, rng: np.random.Generator, factor: int = SR_SCALE) -> np.ndarray:
    """Capture-resolution version of an ideal image: area downsample by ``factor``, sensor PSF
    (Gaussian, sigma 0.3-0.7 capture px) and read noise (sigma 0.3-1.2 % of full scale)."""
    h, w = hr.shape[:2]
    lr = cv2.resize(hr, (w // factor, h // factor), interpolation=cv2.INTER_AREA)
    lr = cv2.GaussianBlur(lr, (0, 0), rng.uniform(0.3, 0.7))
    sigma = rng.uniform(0.003, 0.012)
    lr = lr + rng.standard_normal(lr.shape, dtype=np.float32) * sigma
    return np.clip(lr, 0, 1).astype(np.float32)
