"""Types and constants of the palm-region step (:mod:`device.vision.regions`): the sizes of the
two rectified regions, the valley names, :class:`RegionError` and its reasons, where the first
region sits in the valley frame (:class:`RegionGeometry`), and the keypoints of one hand.

No imports from its sibling modules: ``valleys``, ``roi_geometry`` and ``regions`` all import
from here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FIRST_SIZE = 128
"""Side of the rectified first region (the palm-centre ROI), pixels."""

SECOND_SIZE = 192
"""Side of the rectified second region; at the first region's scale, so its central
FIRST_SIZE x FIRST_SIZE pixels are the first region."""

VALLEY_NAMES = ("index_middle", "middle_ring", "ring_little", "thumb_index")
"""Order of the valleys in :attr:`HandKeypoints.valleys` (the synthetic hands' order)."""

REASONS = ("bad_input", "no_hand", "too_few_valleys", "hand_too_small", "hand_cut_off",
           "roi_off_hand", "low_quality")
"""Every ``RegionError.reason``."""


class RegionError(ValueError):
    """The palm regions could not be acquired; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass(frozen=True)
class RegionGeometry:
    """Where the first region sits in the valley frame, in units of the valley span (distance
    between the index-middle and ring-little valleys)."""

    side: float = 1.25
    """First-region side / span."""
    offset: float = 0.875
    """Distance from the valley line to the first-region centre (the palm centre) / span."""

    def __post_init__(self):
        if not (self.side > 0 and self.offset > 0):
            raise ValueError("side and offset must be positive")


VISIBLE_GEOMETRY = RegionGeometry(1.25, 0.875)
"""Whole hands seen by a camera: the synthetic hands' own ROI (0.25 span below the valley line
to the square's top edge, side 1.25 spans), the usual contactless-palmprint ROI."""

NIR_GEOMETRY = RegionGeometry(0.95, 0.75)
"""Contact NIR sensors with a peg (PolyU-style frames, where the palm fills the frame): the
largest square that stays on the palm of held-out-free training subjects (see README)."""


def default_geometry(modality: str) -> RegionGeometry:
    return NIR_GEOMETRY if modality == "nir" else VISIBLE_GEOMETRY


@dataclass(frozen=True)
class HandKeypoints:
    """Image-pixel keypoints of one hand."""

    valleys: np.ndarray
    """(4, 2) float64 in :data:`VALLEY_NAMES` order; the thumb-index row is NaN when the thumb
    valley was not found (always on NIR frames with a peg, where the thumb is out of view)."""
    palm_centre: np.ndarray
    """(2,) the first region's centre."""
    hand: str | None = None
    """"right" / "left" as the camera sees the palm (thumb on the image right of an upright
    right palm), or None when no thumb valley was found (labels then follow the right-hand
    convention)."""

    names = VALLEY_NAMES

    def as_dict(self) -> dict:
        v = [None if np.isnan(p).any() else [float(p[0]), float(p[1])] for p in self.valleys]
        return {"valleys": dict(zip(VALLEY_NAMES, v)),
                "palm_centre": [float(self.palm_centre[0]), float(self.palm_centre[1])],
                "hand": self.hand}
