"""Geometry of the palm frame (pure numpy + OpenCV): the frame of a valley line, the corners
of a region's square in the image, and rectification of that square to a fixed-size image.
"""
from __future__ import annotations

import cv2
import numpy as np

from device.vision.region_types import FIRST_SIZE, RegionGeometry


def _line_frame(a: np.ndarray, c: np.ndarray, toward: np.ndarray):
    """Unit vectors (t along a->c, n normal to it pointing toward ``toward``) and the span."""
    d = c - a
    span = float(np.hypot(*d))
    t = d / span
    n = np.array([-t[1], t[0]])
    if np.dot(toward - (a + c) / 2, n) < 0:
        n = -n
    return t, n, span


def _half_pixel_square(corners: np.ndarray, size: int) -> np.ndarray:
    """Integer polygon of the area covered by pixel centres ``corners`` of a size x size grid."""
    c = np.asarray(corners, np.float64)
    ctr = c.mean(0)
    grow = size / (size - 1.0)
    return np.round(ctr + (c - ctr) * grow).astype(np.int32)


def frame_corners(v_im: np.ndarray, v_rl: np.ndarray, palm_side: np.ndarray,
                  geometry: RegionGeometry, size: int = FIRST_SIZE, side_scale: float = 1.0):
    """Pixel-centre corners (TL, TR, BR, BL) of a square of ``side_scale`` first-region sides
    around the palm centre, and the centre. ``palm_side`` is any point on the palm side of the
    valley line."""
    _, n, span = _line_frame(v_rl, v_im, palm_side)
    u = np.array([n[1], -n[0]])
    centre = (v_im + v_rl) / 2 + n * geometry.offset * span
    # pixel centres of a size x size grid span (size - 1) pixel steps; the first region's
    # step is side / (FIRST_SIZE - 1)
    half = geometry.side * span / (FIRST_SIZE - 1) * (size - 1) / 2 * side_scale
    corners = np.array([centre - u * half - n * half, centre + u * half - n * half,
                        centre + u * half + n * half, centre - u * half + n * half])
    return corners, centre


def rectify(image: np.ndarray, corners: np.ndarray, size: int, interp=cv2.INTER_LINEAR,
            border_value=0) -> np.ndarray:
    """Warp the square whose pixel centres (0,0), (size-1,0), (size-1,size-1) lie at
    ``corners[:3]`` to a size x size image (pre-blurred when it shrinks the image)."""
    src = np.float32(corners[:3])
    dst = np.float32([[0, 0], [size - 1, 0], [size - 1, size - 1]])
    A = cv2.getAffineTransform(dst, src)
    step = float(np.hypot(*(corners[1] - corners[0]))) / (size - 1)
    im = image
    if step > 1.3 and interp != cv2.INTER_NEAREST:
        im = cv2.GaussianBlur(image, (0, 0), 0.45 * np.sqrt(step * step - 1.0))
    return cv2.warpAffine(im, A, (size, size), flags=interp | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=border_value)


def _inside(corners: np.ndarray, shape, margin: float = 0.0) -> bool:
    h, w = shape
    return bool((corners[:, 0] >= -margin).all() and (corners[:, 1] >= -margin).all()
                and (corners[:, 0] <= w - 1 + margin).all()
                and (corners[:, 1] <= h - 1 + margin).all())
