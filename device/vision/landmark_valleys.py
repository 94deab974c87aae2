"""Finger valleys on the landmark path: a regression from the landmarks, then each finger valley
refined on the image (pure functions; numpy + OpenCV).

The landmark network has no valley points; the valleys (the webs between the fingers, the
classical path's feature points) are placed from the landmarks and then looked for in the view:

1. **Regression** (:func:`regress_valleys`): each valley, in the palm frame
   (:class:`~device.vision.palm_from_landmarks.PalmFrame`: ``u`` along the knuckle line, ``n``
   toward the wrist, in knuckle widths) from the midpoint of its two knuckles, is a linear
   function of six nearby landmarks in that frame (the two knuckles, the two PIP and the two DIP
   joints; the thumb-index valley: the thumb's CMC, MCP, IP, the index MCP and PIP, the wrist):
   :data:`VALLEY_REGRESSION`, fitted by ``python -m tools.fit_valley_model`` on synthetic hands
   of seed 4343 (see docs/palm-regions.md). A spread finger pulls its valley with it, which the
   fixed offsets of :data:`~device.vision.palm_from_landmarks.VALLEY_MODEL` could not follow.
2. **Refinement on the image** (:func:`refine_valley`, colour views, the three finger valleys):
   a small window around the estimate (:data:`REFINE_HALF` knuckle widths each way, turned so
   the fingers point up), each pixel's chroma distance (Lab a, b) to the skin just below the
   valley, Otsu's threshold, a 3x3 opening (palm creases are thin); the background between the
   two fingers is the component touching the window's top edge nearest its centre (if it
   differs enough from the skin: :data:`MIN_GAP_CHROMA`), and the valley is the deepest point
   of its columns' top runs (toward the wrist). Kept only when it
   moves the estimate by at most :data:`REFINE_MAX_MOVE` widths (a window with no gap -- fingers
   together, a skin-coloured background -- finds something else, further away); where it is
   not, once more in a window twice as large that may move it further (:data:`REFINE_WIDE`).
   Chroma only: brightness also marks the palm's creases, and grey (NIR) views have no chroma,
   so they keep the regression's estimate.

The valleys are reported keypoints only: the landmark path's regions do not use them.
"""
from __future__ import annotations

import cv2
import numpy as np

from device.vision.palm_from_landmarks import PalmFrame, palm_frame

VALLEY_LANDMARKS = (
    (5, 9, (5, 9, 6, 10, 7, 11)),          # index-middle: MCPs, PIPs, DIPs
    (9, 13, (9, 13, 10, 14, 11, 15)),      # middle-ring
    (13, 17, (13, 17, 14, 18, 15, 19)),    # ring-little
    (2, 5, (1, 2, 3, 5, 6, 0)),            # thumb-index: thumb CMC, MCP, IP; index MCP,
                                           # PIP; the wrist
)
"""Per valley (index_middle, middle_ring, ring_little, thumb_index): the two landmarks whose
midpoint is its origin, and the six landmarks its regression reads."""

# Fitted by `python -m tools.fit_valley_model` (ridge 1e-4) on synthetic hands of seed 4343
# (the gate's front end, int8 landmarks; 358 views): rows = bias, then (u, n) of each landmark
# of VALLEY_LANDMARKS relative to the origin, in knuckle widths; columns = the valley's (u, n).
VALLEY_REGRESSION = (
    np.array([[0.0719, -0.0614], [-0.1381, -0.0390], [-0.0039, 0.2787], [0.1381, 0.0390],
              [0.0039, -0.2787], [-0.0700, 0.1993], [0.1358, 0.2320], [-0.1012, -0.1293],
              [0.0321, 0.1402], [0.0747, -0.1776], [-0.0441, -0.1515], [0.0793, 0.1100],
              [-0.0251, 0.0298]]),
    np.array([[0.0131, -0.0583], [-0.0726, -0.0292], [-0.1273, 0.0388], [0.0726, 0.0292],
              [0.1273, -0.0388], [-0.1345, -0.0396], [0.0180, 0.2735], [-0.1213, -0.1057],
              [-0.0262, 0.1919], [0.0778, -0.1154], [0.0927, -0.1109], [0.1429, 0.1183],
              [-0.1316, -0.1316]]),
    np.array([[-0.0467, -0.0540], [-0.0065, -0.1177], [-0.0173, -0.0245], [0.0065, 0.1177],
              [0.0173, 0.0245], [-0.0549, -0.1773], [0.0587, 0.0677], [0.2099, -0.1512],
              [-0.2088, 0.1498], [0.1626, 0.0040], [-0.0281, 0.0981], [-0.1053, 0.0430],
              [0.0325, -0.0731]]),
    np.array([[0.2480, -0.0636], [-0.3603, 0.2567], [-0.1596, -0.0325], [0.2037, -0.0793],
              [-0.0791, 0.2795], [-0.0046, 0.1205], [0.3250, 0.2867], [-0.2037, 0.0793],
              [0.0791, -0.2795], [-0.1952, 0.0814], [0.0630, -0.0382], [0.2494, 0.0079],
              [0.1657, 0.0341]]),
)

REFINE_HALF = 0.10
"""Half side of the refinement window, in knuckle widths (chosen on seeds 4343 and 777:
0.10-0.32 tried)."""

REFINE_MAX_MOVE = 0.05
"""Largest move of a refined valley from its regression estimate, in knuckle widths (chosen on
seeds 4343 and 777: 0.04-0.12 tried)."""

REFINE_WIDE = (0.20, 0.15)
"""(half side, largest move) of the second, wider search, for a valley the first did not move
(the regression off by more than :data:`REFINE_MAX_MOVE`: 82 % of the finger valleys more than
6 px off on seed 4343); chosen on seed 4343, checked on 777."""

MIN_GAP_CHROMA = 10.0
"""Smallest mean chroma distance (Lab a, b units) of the gap from the skin below it: less is
the skin's own shading (fingers together), and the estimate stays. Chosen on seeds 4343 and 777
(0, 6, 10, 14 tried: medians within 0.1 px, p95 on 4343 8.2 / 7.9 / 7.0 / 7.3 px); on the NTUST
photos it leaves 24 % of the finger valleys unmoved, against 4 % without it."""

WINDOW = 48
"""Refinement window side in pixels."""


def valley_features(lm: np.ndarray, k: int, frame: PalmFrame):
    """(features (13,), origin (2,), rotation (2, 2) image -> palm frame) of valley ``k``."""
    i, j, idx = VALLEY_LANDMARKS[k]
    origin = (lm[i, :2] + lm[j, :2]) / 2
    R = np.array([frame.u, frame.n])
    z = ((lm[list(idx), :2] - origin) @ R.T / frame.width).ravel()
    return np.r_[1.0, z], origin, R


def regress_valleys(lm: np.ndarray, frame: PalmFrame | None = None, model=None) -> np.ndarray:
    """(4, 2) image estimates of the valleys index-middle, middle-ring, ring-little,
    thumb-index from (21, 2|3) landmarks (:data:`VALLEY_REGRESSION`)."""
    lm = np.asarray(lm, np.float64)
    f = frame or palm_frame(lm)
    W = VALLEY_REGRESSION if model is None else model
    out = np.zeros((4, 2))
    for k in range(4):
        a, origin, R = valley_features(lm, k, f)
        out[k] = origin + (a @ W[k]) @ R * f.width
    return out


def _window(image: np.ndarray, centre: np.ndarray, frame: PalmFrame, half_px: float):
    """The window around ``centre`` with the fingers up (x along u, y along n), and the affine
    map window -> image."""
    s = 2 * half_px / (WINDOW - 1)
    M = np.array([[frame.u[0] * s, frame.n[0] * s, 0.0], [frame.u[1] * s, frame.n[1] * s, 0.0]])
    M[:, 2] = centre - M[:, :2] @ np.array([(WINDOW - 1) / 2, (WINDOW - 1) / 2])
    w = cv2.warpAffine(image, M, (WINDOW, WINDOW), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    return w, M


def refine_valley(image: np.ndarray, p0: np.ndarray, frame: PalmFrame,
                  half: float = REFINE_HALF, max_move: float = REFINE_MAX_MOVE) -> np.ndarray:
    """The valley near ``p0`` (image px) found on a BGR ``image`` (see the module notes), or
    ``p0`` itself when the window shows no gap between two fingers or the gap's end is more
    than ``max_move`` widths away."""
    p0 = np.asarray(p0, np.float64)
    if image.ndim != 3 or image.shape[2] < 3 or not np.isfinite(p0).all():
        return p0
    w, M = _window(np.ascontiguousarray(image[..., :3]), p0, frame, half * frame.width)
    ab = cv2.cvtColor(w, cv2.COLOR_BGR2LAB)[..., 1:].astype(np.float32)
    c = WINDOW // 2
    skin = np.sort(ab[-8:, c - 8:c + 8].reshape(-1, 2), 0)[64]     # the channels' medians
    d = np.linalg.norm(ab - skin, axis=2)
    if not d.max() > 0:
        return p0
    d8 = cv2.GaussianBlur(np.clip(d * (255 / d.max()), 0, 255).astype(np.uint8), (3, 3), 0)
    _, bg = cv2.threshold(d8, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    bg = cv2.morphologyEx(bg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    _, lbl = cv2.connectedComponents(bg)
    top = lbl[0]
    labels = [v for v in np.unique(top) if v > 0]
    if not labels:
        return p0
    dist = {v: np.abs(np.nonzero(top == v)[0] - c).min() for v in labels}
    gap = min(labels, key=dist.get)
    if dist[gap] > 0.3 * WINDOW:
        return p0
    comp = lbl == gap
    if float(d[comp].mean()) < MIN_GAP_CHROMA:    # shading of the skin, not a gap
        return p0
    lo, hi = int(c - 0.3 * WINDOW), int(c + 0.3 * WINDOW) + 1
    band = comp[:, lo:hi]
    # each column's run of background from the top edge: its last row, -1 without one
    run = np.where(band.all(0), WINDOW, np.argmin(band, axis=0)) - 1
    depth = np.full(WINDOW, -1)
    depth[lo:hi] = np.where(band[0], run, -1)
    ymax = depth.max()
    if ymax < 0 or ymax >= WINDOW - 3:          # no gap, or background all the way down
        return p0
    xs = np.nonzero(depth >= ymax - 1)[0]
    q = np.array([xs.mean(), depth[xs].mean() + 0.5])
    p = M[:, :2] @ q + M[:, 2]
    return p if np.hypot(*(p - p0)) <= max_move * frame.width else p0


def landmark_valleys(image: np.ndarray, lm: np.ndarray, frame: PalmFrame | None = None
                     ) -> np.ndarray:
    """(4, 2) valleys of the landmark path: :func:`regress_valleys`, the three finger valleys
    then refined on the image (:func:`refine_valley`, colour views)."""
    lm = np.asarray(lm, np.float64)
    f = frame or palm_frame(lm)
    v = regress_valleys(lm, f)
    for k in range(3):
        p = refine_valley(image, v[k], f)
        if np.array_equal(p, v[k]):
            p = refine_valley(image, v[k], f, *REFINE_WIDE)
        v[k] = p
    return v
