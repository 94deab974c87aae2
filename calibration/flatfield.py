"""Flat field and exposure of the transmission channel (X-ray/NIR) from frames of a uniform
target: the gain map the runtime applies (``device.vision.calibration.apply_gain``), plus the
numbers that say whether illumination and exposure are in bounds.

The gain map is smooth by construction (illumination fall-off, not pixel response), so it is
stored as a coarse grid (at most 80 columns) and upsampled bilinearly by the runtime.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from device.vision.calibration import apply_gain, gain_map


def full_scale_of(img: np.ndarray, bit_depth: int | None = None) -> float:
    if bit_depth:
        return float(2 ** bit_depth - 1)
    if np.issubdtype(img.dtype, np.integer):
        return float(np.iinfo(img.dtype).max)
    return 1.0


def _gray(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return img


@dataclass
class FlatfieldResult:
    gain_grid: np.ndarray           # (rows, cols) float32
    image_size: tuple[int, int]     # (w, h)
    dark_level: float
    full_scale: float
    mean_level: float               # mean of the flat frames / full scale
    saturated_fraction: float       # pixels at >= 99 % of full scale in any frame
    uniformity: float               # min / max of the smoothed illumination
    residual_nonuniformity: float   # std / mean of the corrected, lightly smoothed mean frame
    temporal_noise: float           # median per-pixel temporal std / mean level
    defect_fraction: float          # pixels > 20 % off their smoothed neighbourhood
    gain_range: tuple[float, float]
    frames: int

    def to_json(self) -> dict:
        return {"gain_grid": np.round(self.gain_grid.astype(float), 5).tolist(),
                "grid_shape": list(self.gain_grid.shape), "image_size": list(self.image_size),
                "dark_level": float(self.dark_level), "full_scale": float(self.full_scale),
                "mean_level": float(self.mean_level),
                "saturated_fraction": float(self.saturated_fraction),
                "uniformity": float(self.uniformity),
                "residual_nonuniformity": float(self.residual_nonuniformity),
                "temporal_noise": float(self.temporal_noise),
                "defect_fraction": float(self.defect_fraction),
                "gain_range": [float(x) for x in self.gain_range], "frames": int(self.frames)}


def compute_flatfield(frames: list[np.ndarray], dark_frames: list[np.ndarray] | None = None,
                      dark_level: float | None = None, bit_depth: int | None = None,
                      max_cols: int = 80, gain_clip: tuple[float, float] = (0.25, 4.0)
                      ) -> FlatfieldResult:
    """Gain map and exposure statistics from frames of a uniform target (and optional dark
    frames, or a known ``dark_level``)."""
    if not frames:
        raise ValueError("no flat-field frames")
    frames = [_gray(f) for f in frames]
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise ValueError(f"flat-field frames of different sizes: {sorted(shapes)}")
    fs = full_scale_of(frames[0], bit_depth)
    stack = np.stack([f.astype(np.float32) for f in frames])
    mean = stack.mean(axis=0)
    h, w = mean.shape
    if dark_frames:
        dark = float(np.median(np.stack([_gray(d).astype(np.float32) for d in dark_frames])))
    else:
        dark = float(dark_level or 0.0)
    signal = np.maximum(mean - dark, 1e-3)
    cols = int(min(max_cols, max(4, w // 8)))
    rows = int(max(3, round(cols * h / w)))
    coarse = cv2.resize(signal, (cols, rows), interpolation=cv2.INTER_AREA)
    coarse = cv2.GaussianBlur(coarse, (0, 0), 0.7, borderType=cv2.BORDER_REPLICATE)
    target = float(coarse.mean())
    gain = np.clip(target / np.maximum(coarse, 1e-3), *gain_clip).astype(np.float32)
    corrected = apply_gain(mean, gain_map(gain, (w, h)), dark)
    smooth = cv2.GaussianBlur(corrected, (0, 0), 2.0)
    m = max(2, min(w, h) // 40)                 # ignore a thin border (blur edge effects)
    inner = smooth[m:-m, m:-m]
    temporal = float(np.median(stack.std(axis=0))) / max(target, 1e-6) if len(frames) > 1 else 0.0
    local = cv2.GaussianBlur(signal, (0, 0), 3.0)
    return FlatfieldResult(
        gain_grid=gain, image_size=(w, h), dark_level=dark, full_scale=fs,
        mean_level=float(mean.mean() / fs),
        saturated_fraction=float((stack.max(axis=0) >= 0.99 * fs).mean()),
        uniformity=float(coarse.min() / max(coarse.max(), 1e-6)),
        residual_nonuniformity=float(inner.std() / max(inner.mean(), 1e-6)),
        temporal_noise=temporal,
        defect_fraction=float((np.abs(signal - local) > 0.2 * np.maximum(local, 1e-3)).mean()),
        gain_range=(float(gain.min()), float(gain.max())), frames=len(frames))
