"""Resampled copies of sensor captures, every class alike, so a liveness model cannot key on the
capture's pixel grid (profile ``xaug``, tools/train/profiles/sensor_xaug.toml).

The shipped X-ray liveness model refused 512-606 of 1,000 live frames once they were re-centred
by any interpolation (docs/results.md, "Where the live hand lies on the X-ray sensor"): it had
only ever seen frames on the renderer's own grid.  A copy here is the capture warped by a random
similarity (sub-pixel shift, rotation, scale) with a random interpolation, then, sometimes,
blurred and noised a little, the way another sensor's optics and electronics would differ.
Applied to the 128x128 capture before super-resolution, as a real sensor's difference would
be.  Pure numpy/OpenCV functions of (capture, random generator)."""
from __future__ import annotations

import cv2
import numpy as np

# the interpolations a copy draws from ("area": warped at twice the size with linear
# interpolation, then reduced by pixel-area averaging)
INTERPOLATIONS = ("nearest", "linear", "area", "cubic")
_CV = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}

DEFAULTS = {"rot_deg": 12.0,      # rotation within +-rot_deg about the frame centre
            "scale": 0.04,        # scale within 1 +- scale
            "shift_px": 3.0,      # shift within +-shift_px (any sub-pixel fraction)
            "blur_p": 0.3,        # share of copies blurred
            "blur_sigma": (0.3, 0.9),
            "noise_p": 0.3,       # share of copies with added Gaussian noise
            "noise_sd": (0.5, 2.5),  # grey levels of 255
            "renoise_p": 0.0}     # share of copies whose pixel noise, smoothed away by the
                                  # resampling, is put back (a sensor of another sharpness
                                  # still has its own white noise at its own pixels)

def similarity(shape: tuple[int, int], angle_deg: float, scale: float, dx: float,
               dy: float) -> np.ndarray:
    """2x3 matrix: rotate by ``angle_deg`` and scale about the frame centre, then shift."""
    h, w = shape
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle_deg, scale)
    m[0, 2] += dx
    m[1, 2] += dy
    return m


def warp(cap: np.ndarray, m: np.ndarray, interpolation: str) -> np.ndarray:
    """``cap`` (H, W) float32 warped by the 2x3 matrix ``m`` with ``interpolation``, edges
    replicated (the frame's border is background)."""
    h, w = cap.shape
    if interpolation == "area":
        up = np.diag([2.0, 2.0, 1.0])[:2] @ np.vstack([m, [0, 0, 1]])
        up[:, 2] += 0.5          # pixel centres of the doubled grid
        big = cv2.warpAffine(cap, up, (2 * w, 2 * h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
        return cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA)
    return cv2.warpAffine(cap, m, (w, h), flags=_CV[interpolation],
                          borderMode=cv2.BORDER_REPLICATE)


# high-pass of the local noise estimate: the frame less its Gaussian blur (sigma 1 px); white
# noise of sd s leaves sd s * sqrt(_HP_GAIN) in it (1 - 2 g0 + sum g^2 of that Gaussian)
_HP_SIGMA, _HP_GAIN = 1.0, 0.761


def noise_sd_map(x: np.ndarray) -> np.ndarray:
    """Local sd of a float32 frame's pixel noise (grey levels): its high-pass energy averaged
    over ~4 px, over the high-pass gain of white noise."""
    hp = x - cv2.GaussianBlur(x, (0, 0), _HP_SIGMA)
    return np.sqrt(cv2.GaussianBlur(hp * hp, (0, 0), 4.0) / _HP_GAIN)


def restore_noise(orig: np.ndarray, copy: np.ndarray, m: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """``copy`` (float32: ``orig`` warped by ``m``, maybe blurred) plus white noise of the local
    sd that this smoothed away: sqrt(max(sd0^2 - sd1^2, 0)), sd0 the local noise of ``orig``
    carried to the copy's pixels by ``m``, sd1 the copy's own."""
    h, w = orig.shape
    sd0 = cv2.warpAffine(noise_sd_map(orig), m, (w, h), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    lost = np.maximum(sd0 ** 2 - noise_sd_map(copy) ** 2, 0)
    return copy + rng.standard_normal(copy.shape).astype(np.float32) * np.sqrt(lost)


def resample_capture(cap: np.ndarray, rng: np.random.Generator, **settings) -> np.ndarray:
    """One resampled copy of a uint8 capture (H, W): a random similarity (rotation within
    +-``rot_deg``, scale within 1 +- ``scale``, shift within +-``shift_px`` px), a random one of
    INTERPOLATIONS, then with probability ``blur_p`` a Gaussian blur (sigma in ``blur_sigma``),
    with probability ``renoise_p`` the pixel noise the warp and blur smoothed away put back
    (:func:`restore_noise`) and with probability ``noise_p`` Gaussian noise (sd in
    ``noise_sd`` grey levels); uint8."""
    s = {**DEFAULTS, **settings}
    angle = rng.uniform(-1, 1) * s["rot_deg"]
    scale = 1 + rng.uniform(-1, 1) * s["scale"]
    dx, dy = rng.uniform(-1, 1, 2) * s["shift_px"]
    interp = INTERPOLATIONS[rng.integers(len(INTERPOLATIONS))]
    m = similarity(cap.shape, angle, scale, dx, dy)
    x = warp(cap.astype(np.float32), m, interp)
    if rng.random() < s["blur_p"]:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(*s["blur_sigma"]))
    if rng.random() < s["renoise_p"]:
        x = restore_noise(cap.astype(np.float32), x, m, rng)
    if rng.random() < s["noise_p"]:
        x = x + rng.normal(0, rng.uniform(*s["noise_sd"]), x.shape).astype(np.float32)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def resampled_copies(caps: np.ndarray, copies: int, seed: int, **settings) -> np.ndarray:
    """``copies`` resampled copies of every capture of (N, H, W) uint8, copy-major: (copies * N,
    H, W); reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    out = np.empty((copies * len(caps),) + caps.shape[1:], np.uint8)
    for k in range(copies):
        for i, c in enumerate(caps):
            out[k * len(caps) + i] = resample_capture(c, rng, **settings)
    return out

