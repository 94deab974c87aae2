"""Motion blur of a view, told apart from isotropic softness by the direction of its fine
detail.

A hand that moves during the exposure smears the image along one direction: the fine detail
along the motion is gone, across it it stays. A soft (out of focus, low resolution, JPEG)
photo of a still hand loses fine detail in every direction alike. So the measure is not how
much fine detail there is (the variance of the Laplacian, :func:`device.vision.quality.
sharpness`, which differs more between sharp photos of different hands than between a sharp
and a blurred photo of one hand) but how evenly it is spread over the directions:

* the fine band of the palm-centre pixels at the view's own resolution (the grey level minus
  its Gaussian blur, sigma :data:`FINE_SIGMA` px): the detail that motion of a few pixels
  removes;
* its gradient structure tensor summed over the patch, ``[[<gx^2>, <gx gy>], [<gx gy>,
  <gy^2>]]``, and the ratio of its eigenvalues, smallest over largest
  (:func:`gradient_isotropy`): 1 for detail equally strong in every direction, toward 0 when
  one direction has none (the motion's).

A palm's creases give a still palm some direction too (sharp palms: 0.3-0.9 on the
development sets), a blur of 4-20 px drops it to 0.05-0.3. Heavy blur leaves only sensor and
quantisation noise in the fine band, which is isotropic again: those views fall under the
isotropic ``[quality] min_sharpness`` instead, so the two checks together catch both.

The patch is the largest axis-aligned square inside the first region (rotation-free: the
measure is invariant to rotation, so the region need not be rectified), at the image's own
resolution, reduced to at most :data:`MAX_PATCH` px (a high-resolution camera's fine band is
mostly noise). Pure functions; about 0.1-0.3 ms a view.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from device.vision.quality import QualityIssue

FINE_SIGMA = 1.0
"""Gaussian sigma (view pixels) below which detail counts as fine."""

MAX_PATCH = 256
"""Largest patch side (px); larger patches are reduced (area interpolation) first."""

MIN_PATCH = 16
"""Smaller patches are not measured (too few gradients: the isotropy is 1)."""

EDGE = 6
"""Pixels left out at each border of the filtered patch (filter edge effects)."""


def palm_patch(grey: np.ndarray, corners: np.ndarray, max_side: int = MAX_PATCH) -> np.ndarray:
    """The largest axis-aligned square inside the region ``corners`` (4, 2) image px, clipped
    to the image, reduced to ``max_side`` px at most. Grey uint8 in, grey uint8 out."""
    c = np.asarray(corners, np.float64)
    centre = c.mean(0)
    side = float(np.hypot(*(c[1] - c[0])))
    h = side / (2 * math.sqrt(2))            # half side of the square inscribed at any angle
    H, W = grey.shape[:2]
    x0, y0 = max(0, int(round(centre[0] - h))), max(0, int(round(centre[1] - h)))
    x1, y1 = min(W, int(round(centre[0] + h))), min(H, int(round(centre[1] + h)))
    patch = grey[y0:max(y0, y1), x0:max(x0, x1)]
    if patch.size and max(patch.shape) > max_side:
        f = max_side / max(patch.shape)
        patch = cv2.resize(patch, (max(1, round(patch.shape[1] * f)),
                                   max(1, round(patch.shape[0] * f))),
                           interpolation=cv2.INTER_AREA)
    return patch


def fine_gradients(patch: np.ndarray, sigma: float = FINE_SIGMA):
    """(gx, gy): the Sobel gradients of ``patch``'s fine band (the grey level minus its
    Gaussian blur), :data:`EDGE` px cut off each border; None for a patch too small to
    measure."""
    p = np.asarray(patch)
    if p.ndim != 2 or min(p.shape) < MIN_PATCH:
        return None
    F = p.astype(np.float32)
    fine = F - cv2.GaussianBlur(F, (0, 0), sigma)
    gx = cv2.Sobel(fine, cv2.CV_32F, 1, 0, ksize=3)[EDGE:-EDGE, EDGE:-EDGE]
    gy = cv2.Sobel(fine, cv2.CV_32F, 0, 1, ksize=3)[EDGE:-EDGE, EDGE:-EDGE]
    return gx, gy


def tensor_isotropy(a: float, b: float, c: float) -> float:
    """Smallest over largest eigenvalue of the structure tensor ``[[a, c], [c, b]]``; 1.0
    where it holds no detail."""
    tr = a + b
    if not tr > 1e-6:
        return 1.0
    d = math.sqrt((a - b) ** 2 + 4 * c * c)
    return max(0.0, (tr - d) / (tr + d))


def gradient_isotropy(patch: np.ndarray, sigma: float = FINE_SIGMA) -> float:
    """Smallest over largest eigenvalue of the structure tensor of ``patch``'s fine band
    (0: all fine detail in one direction, as after motion blur; 1: equal in every direction).
    1.0 for a patch too small or without any fine detail (flat: the exposure checks' case)."""
    g = fine_gradients(patch, sigma)
    if g is None:
        return 1.0
    gx, gy = g
    return tensor_isotropy(float((gx * gx).mean()), float((gy * gy).mean()),
                           float((gx * gy).mean()))


def motion_blur_measure(grey: np.ndarray, corners: np.ndarray) -> float:
    """:func:`gradient_isotropy` of the palm-centre patch of a grey view."""
    return gradient_isotropy(palm_patch(grey, corners))


def motion_blur_check(grey: np.ndarray, corners: np.ndarray, q) -> float:
    """Raise :class:`QualityIssue` ``motion_blur`` ("hold your hand still") when the palm
    centre's fine detail is too one-directional (isotropy under ``q.min_gradient_isotropy``;
    0 checks nothing); return the isotropy otherwise."""
    limit = float(getattr(q, "min_gradient_isotropy", 0.0))
    if limit <= 0:
        return 1.0
    v = motion_blur_measure(grey, corners)
    if v < limit:
        e = QualityIssue("motion_blur", f"fine detail one-directional (isotropy {v:.2f} < "
                         f"{limit:g})")
        e.isotropy = v
        raise e
    return v
