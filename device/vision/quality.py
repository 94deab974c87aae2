"""Quality gate of one view: palm present, exposed, sharp, complete -> else a prompt.

Two checks: :func:`frame_check` on the raw frame before anything else runs (a frame that is
not an image is ``corrupt_frame``; too dark / too bright asks to adjust), and
:func:`roi_check` on the palm region once found (blur, region quality). Region failures of
:mod:`device.vision.regions` and the landmark checks of :mod:`device.vision.hand_quality`
(too near, not open, not flat ...) map to prompts through :data:`PROMPTS`; the gate's front
end (:mod:`device.vision.front_end`) runs them all.
"""
from __future__ import annotations

import cv2
import numpy as np

PROMPTS = {
    "no_hand": "place your palm over the scanner",
    "too_few_valleys": "spread your fingers slightly",
    "hand_too_small": "move your hand closer",
    "too_near": "move your hand a little further away",
    "hand_cut_off": "centre your palm over the scanner",
    "roi_off_hand": "centre your palm over the scanner",
    "not_open": "open your hand and spread your fingers",
    "not_flat": "hold your palm flat, facing the camera",
    "low_quality": "adjust palm angle",
    "bad_input": "adjust palm angle",
    "too_dark": "move your palm into the light",
    "too_bright": "adjust palm angle (glare)",
    "blurred": "hold your palm still",
    "no_texture": "hold your palm in the light, facing the camera",
    "motion_blur": "hold your hand still",
    "few_views": "adjust palm angle",
}


class QualityIssue(Exception):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail

    @property
    def prompt(self) -> str:
        return PROMPTS.get(self.reason, "adjust palm angle")


class CorruptFrame(Exception):
    """A frame that is not a usable image (wrong type, shape, empty, NaN)."""


def frame_check(img, q) -> None:
    """Raise :class:`CorruptFrame` or :class:`QualityIssue` for one raw view."""
    if not isinstance(img, np.ndarray) or img.ndim not in (2, 3) or img.size == 0 \
            or min(img.shape[:2]) < 64 or (img.ndim == 3 and img.shape[2] not in (1, 3, 4)):
        raise CorruptFrame(f"not an image: {type(img).__name__} "
                           f"{getattr(img, 'shape', None)}")
    if img.dtype != np.uint8:
        raise CorruptFrame(f"unexpected pixel type {img.dtype}")
    grey = img if img.ndim == 2 else cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2GRAY) \
        if img.shape[2] >= 3 else img[..., 0]
    small = grey[::4, ::4]
    m = float(small.mean())
    if m < q.min_mean:
        raise QualityIssue("too_dark", f"mean {m:.0f} < {q.min_mean:g}")
    if m > q.max_mean or saturated_fraction(small) > q.max_clipped:
        raise QualityIssue("too_bright", f"mean {m:.0f}")


SATURATED = 250
"""Grey level from which a pixel counts as saturated (clipped)."""


def saturated_fraction(img: np.ndarray) -> float:
    """Fraction of the pixels of a grey image at or above :data:`SATURATED`."""
    return float((np.asarray(img) >= SATURATED).mean())


def sharpness(roi: np.ndarray) -> float:
    """Variance of the Laplacian of a grey ROI (higher = sharper)."""
    return float(cv2.Laplacian(np.asarray(roi, np.float32), cv2.CV_32F).var())


def roi_check(reg, q) -> None:
    if reg.quality < q.min_region_quality:
        raise QualityIssue("low_quality", f"region quality {reg.quality:.2f}")
    s = sharpness(reg.roi)
    if s < q.min_sharpness:
        raise QualityIssue("blurred", f"sharpness {s:.1f} < {q.min_sharpness:g}")
