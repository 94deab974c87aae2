"""Palm regions from hand landmarks (pure geometry, numpy only): the palm frame, the first
region (the palm centre, seed 000's "preset part") and the second region (the rest of the palm)
as squares in the image, the palm outline for the second region's mask, and finger-valley
estimates for the keypoint reports.

The palm frame of 21 MediaPipe landmarks (:mod:`device.vision.landmarks`):

* the knuckle line runs from the little-finger MCP (17) to the index MCP (5); its length is the
  palm's scale, ``width``; ``u`` is its direction;
* ``n`` is perpendicular to it, pointing toward the wrist (0);
* the first region's centre is ``offset`` widths along ``n`` and ``along`` widths along ``u``
  from the knuckle line's midpoint, its side ``side`` widths (:class:`LandmarkGeometry`).

Rectified, the region shows the palm upright (fingers up, the knuckle line level) at a fixed
scale (``side`` knuckle widths to 128 pixels) whatever the hand's rotation and size in the
image. Handedness is found from the landmarks (:attr:`PalmFrame.hand`) and normalised by
convention: both hands are only rotated, never reflected (as the classical path does), so a
right palm shows its index side on the right, a left palm on the left; mirroring left palms
into right ones is an option (:attr:`LandmarkGeometry.mirror_left`) that measured worse.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WRIST, THUMB_CMC, THUMB_MCP, INDEX_MCP, MIDDLE_MCP, RING_MCP, LITTLE_MCP = 0, 1, 2, 5, 9, 13, 17
INDEX_PIP, MIDDLE_PIP, RING_PIP, LITTLE_PIP = 6, 10, 14, 18


@dataclass(frozen=True)
class LandmarkGeometry:
    """Where the first region sits in the palm frame, in knuckle widths (|MCP5 - MCP17|)."""

    side: float = 1.0
    """First-region side / width."""
    offset: float = 0.55
    """Distance from the knuckle line to the first region's centre, toward the wrist / width."""
    along: float = 0.0
    """Shift of the centre along the knuckle line, toward the index finger / width."""
    mirror_left: bool = False
    """Mirror left palms so that every region looks like a right palm. Off: on the NTUST
    development photos mirroring raised the hand-level EER (hybrid matcher, fp32) from 2.3 %
    to 4.3 % -- a palm never changes hands, so mirroring only makes left-against-right
    impostors look alike."""

    def __post_init__(self):
        if not (self.side > 0 and self.offset > 0):
            raise ValueError("side and offset must be positive")


@dataclass(frozen=True)
class PalmFrame:
    """The palm's frame in the image (pixels)."""

    origin: np.ndarray
    """(2,) midpoint of the knuckle line (MCP5, MCP17)."""
    u: np.ndarray
    """(2,) unit vector from the little-finger MCP to the index MCP."""
    n: np.ndarray
    """(2,) unit vector perpendicular to ``u``, toward the wrist."""
    width: float
    """|MCP5 - MCP17| in pixels."""
    hand: str
    """"right" or "left" as seen from the palm side: "right" when (u, n) is a rotation of the
    image axes (x right, y down), i.e. the index is right of the little finger with the
    fingers up."""


def palm_frame(lm: np.ndarray) -> PalmFrame:
    """The palm frame of (21, 2|3) image landmarks."""
    lm = np.asarray(lm, np.float64)
    a, b = lm[INDEX_MCP, :2], lm[LITTLE_MCP, :2]
    d = a - b
    width = float(np.hypot(*d))
    if not width > 0:
        raise ValueError("degenerate landmarks: index and little MCP coincide")
    u = d / width
    n = np.array([-u[1], u[0]])
    origin = (a + b) / 2
    if np.dot(lm[WRIST, :2] - origin, n) < 0:
        n = -n
    hand = "right" if u[0] * n[1] - u[1] * n[0] > 0 else "left"
    return PalmFrame(origin, u, n, width, hand)


def region_centre(frame: PalmFrame, geometry: LandmarkGeometry) -> np.ndarray:
    return frame.origin + frame.n * geometry.offset * frame.width \
        + frame.u * geometry.along * frame.width


def region_corners(frame: PalmFrame, geometry: LandmarkGeometry, size: int,
                   first_size: int = 128) -> np.ndarray:
    """Pixel-centre corners (TL, TR, BR, BL) of a ``size`` x ``size`` grid at the first
    region's scale (a ``first_size`` grid spans ``side`` widths), concentric with the first
    region, in the normalised orientation (fingers up, index side right; left palms mirrored
    unless ``geometry.mirror_left`` is off)."""
    centre = region_centre(frame, geometry)
    half = geometry.side * frame.width / (first_size - 1) * (size - 1) / 2
    x = frame.u if (frame.hand == "right" or geometry.mirror_left) else -frame.u
    y = -frame.n                                     # image "up" of the region: the fingers
    # top-left = toward the fingers (+y... i.e. -n) and toward the little finger (-x)
    return np.array([centre - x * half + y * half, centre + x * half + y * half,
                     centre + x * half - y * half, centre - x * half - y * half])


def is_mirrored(corners: np.ndarray) -> bool:
    """Whether rectifying these corners (TL, TR, BR, BL) mirrors the image."""
    c = np.asarray(corners, np.float64)
    ex, ey = c[1] - c[0], c[3] - c[0]
    return bool(ex[0] * ey[1] - ex[1] * ey[0] < 0)


# Finger valleys (webs) and the thumb-index valley in the palm frame, as
# (along u, along n) in widths from the stated landmarks' midpoint / the landmark. Fitted
# (medians, 60 views) on synthetic hands of a development seed (777) against their exact valleys; used
# for the palm outline (the second region's mask) only: the landmark path reports the valleys
# of device.vision.landmark_valleys (a regression, refined on the image).
VALLEY_MODEL = {
    "index_middle": ((INDEX_MCP, MIDDLE_MCP), (0.030, -0.166)),
    "middle_ring": ((MIDDLE_MCP, RING_MCP), (0.000, -0.166)),
    "ring_little": ((RING_MCP, LITTLE_MCP), (-0.043, -0.209)),
    "thumb_index": ((THUMB_MCP, INDEX_MCP), (0.132, 0.154)),
}


def estimate_valleys(lm: np.ndarray, frame: PalmFrame | None = None,
                     model: dict = VALLEY_MODEL) -> np.ndarray:
    """(4, 2) image estimates of the valleys index-middle, middle-ring, ring-little,
    thumb-index from the landmarks (see :data:`VALLEY_MODEL`)."""
    lm = np.asarray(lm, np.float64)
    f = frame or palm_frame(lm)
    out = np.zeros((4, 2))
    for k, name in enumerate(("index_middle", "middle_ring", "ring_little", "thumb_index")):
        (i, j), (du, dn) = model[name]
        mid = (lm[i, :2] + lm[j, :2]) / 2
        out[k] = mid + (f.u * du + f.n * dn) * f.width
    return out


PALM_OUTLINE_GROW = 0.12
"""How far the palm outline lies outside the hull of its landmarks, in widths (the palm's
edge lies outside the MCP joints and the wrist landmark)."""


def palm_outline(lm: np.ndarray, frame: PalmFrame | None = None,
                 grow: float = PALM_OUTLINE_GROW) -> np.ndarray:
    """(K, 2) convex polygon of the palm (no fingers): the hull of the wrist, the thumb base,
    the finger MCPs and the estimated valleys, pushed out by ``grow`` widths."""
    lm = np.asarray(lm, np.float64)
    f = frame or palm_frame(lm)
    pts = np.vstack([lm[[WRIST, THUMB_CMC, THUMB_MCP, INDEX_MCP, MIDDLE_MCP, RING_MCP,
                         LITTLE_MCP], :2], estimate_valleys(lm, f)[:3]])
    hull = convex_hull(pts)
    c = hull.mean(0)
    d = hull - c
    r = np.linalg.norm(d, axis=1, keepdims=True)
    return c + d * (1 + grow * f.width / np.maximum(r, 1e-6))


def convex_hull(pts: np.ndarray) -> np.ndarray:
    """Counter-clockwise convex hull (monotone chain) of (N, 2) points."""
    p = sorted(map(tuple, np.asarray(pts, np.float64)))
    if len(p) < 3:
        return np.array(p)

    def half(points):
        out: list = []
        for q in points:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (q[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (q[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(q)
        return out
    lower, upper = half(p), half(reversed(p))
    return np.array(lower[:-1] + upper[:-1])


def inside_fraction(points: np.ndarray, shape, margin: float = 0.0) -> float:
    """Fraction of (N, 2) points inside an image of ``shape`` (h, w), ``margin`` px in."""
    h, w = shape[:2]
    p = np.asarray(points, np.float64)[:, :2]
    ok = (p[:, 0] >= margin) & (p[:, 1] >= margin) & (p[:, 0] <= w - 1 - margin) \
        & (p[:, 1] <= h - 1 - margin)
    return float(ok.mean())
