"""The hand's metric size from the views, and the presented hand's size against the enrolled
hand's (pure functions).

The calibrated views triangulate the hand's 21 landmarks in metric 3-D (the binding,
:mod:`device.gate.binding_geometry`; :attr:`device.gate.sensor_binding.HandProbes.points`, in
sensor pixels of the working plane, ``px_mm`` of them a mm, heights in the same unit). Hand
geometry is a classical biometric: the lengths of the hand's bones do not change with its pose
(its fingers' spread and flexion, its turn and height), so they are what a print of the
enrolled person's hand at another scale cannot copy.

- :func:`hand_size`: :data:`SIZE_PAIRS`' distances (mm) -- the palm (wrist to each knuckle and
  to the thumb's base, the knuckles to each other) and every finger bone (joint to joint).
  Kept with each sensor template at enrolment (sealed with it,
  :func:`device.gate.sensor_identity.patch_to_bytes`).
- :func:`size_ratio`: the presented hand's size over the enrolled hand's -- the median over the
  distances of ``log(presented / enrolled)`` (each distance's enrolled length the median over
  the person's templates), as a ratio; NaN with fewer than :data:`MIN_DISTANCES` distances
  both have.
- :func:`size_numbers`: the signed tolerance (``hand_size`` of ``sensor_identity`` of
  ``models/binding_<sensor>.json``): a ratio off 1 by more than ``max_off`` (either way), or
  none, denies ``sensor_identity`` (:mod:`device.gate.sensor_identity_stage`).

Measured and chosen on validation: docs/results.md "The views' hand against the enrolled
hand's size". Arrays in, arrays out: no file, no model.
"""
from __future__ import annotations

import math
import struct

import numpy as np

SIZE_PAIRS: tuple[tuple[int, int], ...] = (
    (0, 5), (0, 9), (0, 13), (0, 17), (5, 9), (9, 13), (13, 17), (5, 17), (0, 1),
    (5, 6), (6, 7), (7, 8), (9, 10), (10, 11), (11, 12), (13, 14), (14, 15), (15, 16),
    (17, 18), (18, 19), (19, 20), (1, 2), (2, 3), (3, 4))
"""The landmark pairs (MediaPipe order) whose 3-D distances make the hand's size: the palm's
(its shape is rigid) then every finger bone's (rigid whatever the pose)."""

MIN_DISTANCES = 12
"""Fewest distances both hands have for :func:`size_ratio` to compare them."""

_A = np.array([a for a, _ in SIZE_PAIRS])
_B = np.array([b for _, b in SIZE_PAIRS])


def hand_size(points: np.ndarray, px_mm: float) -> np.ndarray | None:
    """(len(SIZE_PAIRS),) float32 distances (mm) of the hand's landmarks ``points`` (21, 3),
    in the sensor-pixel world of ``px_mm`` pixels a mm (NaN where a landmark is missing);
    None when there are no points or the scale is not a positive finite number (a numpy
    scalar is one)."""
    if points is None or isinstance(px_mm, bool) or \
            not isinstance(px_mm, (int, float, np.integer, np.floating)) or \
            not (math.isfinite(px_mm) and px_mm > 0):
        return None
    P = np.asarray(points, np.float64)
    if P.shape != (21, 3):
        return None
    d = np.linalg.norm(P[_A] - P[_B], axis=1) / float(px_mm)
    d[~(d > 0)] = np.nan                      # a landmark on another: not a length
    return d.astype(np.float32)


def size_ratio(enrolled: list, probe: np.ndarray | None,
               min_distances: int = MIN_DISTANCES) -> float:
    """The presented hand's size ``probe`` over the enrolled one (``enrolled``: the person's
    sizes, one a template): ``exp(median_i log(probe_i / ref_i))``, ``ref_i`` the median of
    distance ``i`` over ``enrolled``; NaN with fewer than ``min_distances`` distances both
    have, or none enrolled."""
    if probe is None or not enrolled:
        return float("nan")
    E = np.asarray(enrolled, np.float64)
    p = np.asarray(probe, np.float64)
    if E.ndim != 2 or E.shape[1] != len(SIZE_PAIRS) or p.shape != (len(SIZE_PAIRS),):
        return float("nan")
    with np.errstate(all="ignore"):
        ref = np.full(E.shape[1], np.nan)
        seen = np.isfinite(E).any(axis=0)
        ref[seen] = np.nanmedian(E[:, seen], axis=0)
        lr = np.log(p / ref)
    lr = lr[np.isfinite(lr)]
    if len(lr) < max(1, min_distances):
        return float("nan")
    return float(np.exp(np.median(lr)))


def measured(size: np.ndarray | None, min_distances: int = MIN_DISTANCES) -> bool:
    """Whether ``size`` has at least ``min_distances`` distances :func:`size_ratio` can
    compare (finite, positive): what enrolment keeps with a sensor template."""
    if size is None:
        return False
    s = np.asarray(size, np.float64)
    if s.shape != (len(SIZE_PAIRS),):
        return False
    with np.errstate(invalid="ignore"):
        return int(np.sum(np.isfinite(s) & (s > 0))) >= max(1, min_distances)


def size_off(ratio: float) -> float:
    """How far a ratio is off 1, either way (``max(r, 1/r) - 1``; inf when not finite)."""
    if not (math.isfinite(ratio) and ratio > 0):
        return float("inf")
    return max(ratio, 1.0 / ratio) - 1.0


# ------------------------------------------------------------------------------ bytes
def size_to_bytes(size: np.ndarray) -> bytes:
    """A size as bytes: the count, then float32 distances (big-endian)."""
    s = np.asarray(size, ">f4").ravel()
    if len(s) > 255:
        raise ValueError("a hand size has at most 255 distances")
    return struct.pack(">B", len(s)) + s.tobytes()


def size_from_bytes(blob: bytes) -> np.ndarray:
    """The size :func:`size_to_bytes` wrote (exactly); ValueError on anything else."""
    blob = bytes(blob)
    if len(blob) < 1 or len(blob) != 1 + 4 * blob[0]:
        raise ValueError("not a hand size")
    s = np.frombuffer(blob, ">f4", blob[0], 1).astype(np.float32)
    if np.any(np.isinf(s)) or np.any(s < 0):
        raise ValueError("hand size with a negative or infinite distance")
    return s


# ------------------------------------------------------------------------------ numbers
def size_numbers(si: dict | None) -> dict | None:
    """The signed ``hand_size`` numbers of a binding file's ``sensor_identity`` object (None:
    none there): ``max_off`` (the tolerance, a fraction in (0, 1)) and ``min_distances``.
    ValueError when malformed."""
    hs = (si or {}).get("hand_size")
    if hs is None:
        return None
    if not isinstance(hs, dict):
        raise ValueError("'hand_size' is not an object")
    t = hs.get("max_off")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 < t < 1.0:
        raise ValueError("'hand_size' needs a numeric 'max_off' in (0, 1)")
    m = hs.get("min_distances", MIN_DISTANCES)
    if isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= len(SIZE_PAIRS):
        raise ValueError(f"'hand_size' 'min_distances' must be an integer in "
                         f"1..{len(SIZE_PAIRS)}")
    return {"max_off": float(t), "min_distances": m}
