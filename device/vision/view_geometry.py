"""Pure geometry of a calibrated unit: the maps that correct each view (undistortion, and
rectification onto one common image plane) and the homographies that carry transmission-sensor
pixels into the corrected views. Functions of numpy arrays only; no files, no configuration.

Conventions (those of the calibration file, ``device.vision.calibration``):

- a camera matrix ``K`` is for the calibrated image size ``(w, h)``; at another read-out size of
  the same field the pixel grid scales about pixel centres (``scale_matrix``);
- extrinsics ``(R, T)`` map coordinates of the extrinsics' reference camera into a camera:
  ``X_cam = R X_ref + T``;
- the sensor registration ``H`` maps (undistorted) sensor pixels to undistorted pixels of the
  registration's reference camera, for points on the working plane ``n . X = d`` (reference
  camera coordinates).
"""
from __future__ import annotations

import cv2
import numpy as np


def as_K(K) -> np.ndarray:
    return np.asarray(K, dtype=np.float64).reshape(3, 3)


def as_dist(d) -> np.ndarray:
    return np.asarray(d if d is not None else [], dtype=np.float64).ravel()


def scale_matrix(from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """3x3 map of pixel coordinates from one read-out size of a field to another (pixel
    centres kept: ``x' = (x + 0.5) s - 0.5``). Raises ``ValueError`` if the aspect differs."""
    (w0, h0), (w1, h1) = from_size, to_size
    if abs(w1 / w0 - h1 / h0) > 1e-3:
        raise ValueError(f"image size {tuple(to_size)} is not a scaled {tuple(from_size)}")
    s = w1 / w0
    return np.array([[s, 0, 0.5 * s - 0.5], [0, s, 0.5 * s - 0.5], [0, 0, 1.0]])


def apply_homography(H, pts) -> np.ndarray:
    """(N, 2) points through a 3x3 homography."""
    p = np.asarray(pts, np.float64).reshape(-1, 2)
    q = np.hstack([p, np.ones((len(p), 1))]) @ np.asarray(H, np.float64).T
    return q[:, :2] / q[:, 2:3]


def undistort_points(pts, K, dist) -> np.ndarray:
    """Raw pixels -> pixels of the undistorted image with the same camera matrix."""
    K = as_K(K)
    p = np.asarray(pts, np.float64).reshape(-1, 1, 2)
    return cv2.undistortPoints(p, K, as_dist(dist), P=K).reshape(-1, 2)


def distort_points(pts, K, dist) -> np.ndarray:
    """Undistorted pixels -> raw pixels (the inverse of ``undistort_points``)."""
    K = as_K(K)
    p = np.asarray(pts, np.float64).reshape(-1, 2)
    xy = (p - K[:2, 2]) / np.diag(K)[:2]
    obj = np.hstack([xy, np.ones((len(xy), 1))])
    out, _ = cv2.projectPoints(obj, np.zeros(3), np.zeros(3), K, as_dist(dist))
    return out.reshape(-1, 2)


def relative_pose(src, dst) -> tuple[np.ndarray, np.ndarray]:
    """(R, T) with ``X_dst = R X_src + T`` from two extrinsics ``(R_i, T_i)`` of one reference."""
    Rs, Ts = np.asarray(src[0], float).reshape(3, 3), np.asarray(src[1], float).reshape(3, 1)
    Rd, Td = np.asarray(dst[0], float).reshape(3, 3), np.asarray(dst[1], float).reshape(3, 1)
    R = Rd @ Rs.T
    return R, Td - R @ Ts


def plane_homography(K_src, K_dst, R, T, n, d) -> np.ndarray:
    """Source pixels -> destination pixels for points on the plane ``n . X = d`` (source
    camera coordinates), where ``X_dst = R X_src + T``."""
    if not d:
        raise ValueError("the plane's distance must be non-zero")
    n = np.asarray(n, float).reshape(3, 1)
    H = as_K(K_dst) @ (np.asarray(R, float).reshape(3, 3)
                       + np.asarray(T, float).reshape(3, 1) @ n.T / float(d)) \
        @ np.linalg.inv(as_K(K_src))
    return H / H[2, 2]


def rotation_homography(K_src, K_dst, R) -> np.ndarray:
    """Pixels of a camera -> pixels of the same camera rotated by ``R`` (camera coordinates to
    new coordinates) with matrix ``K_dst``: the rectifying warp of undistorted pixels."""
    H = as_K(K_dst) @ np.asarray(R, float).reshape(3, 3) @ np.linalg.inv(as_K(K_src))
    return H / H[2, 2]


def common_plane(K0, d0, K1, d1, R01, T01, size: tuple[int, int], alpha: float = 0.0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The rectified frame of a camera pair (OpenCV's ``stereoRectify``, zero disparity at
    infinity): the rotation from camera-0 coordinates into it and its camera matrix.
    ``X_1 = R01 X_0 + T01``. Every further camera rotated into this frame shares the image
    plane; cameras 0 and 1 come out row-aligned."""
    R1, _R2, P1, _P2, _Q, _, _ = cv2.stereoRectify(
        as_K(K0), as_dist(d0), as_K(K1), as_dist(d1), tuple(size),
        np.asarray(R01, float).reshape(3, 3), np.asarray(T01, float).reshape(3, 1),
        alpha=alpha)
    return R1, P1[:, :3].copy()


def correction_maps(K, dist, size: tuple[int, int], R=None, K_new=None):
    """``cv2.remap`` tables that turn a raw view of ``size`` (w, h) into the corrected one:
    undistorted, and with ``R`` rotated into a common frame, imaged with ``K_new`` (default
    ``K``: undistortion alone keeps the camera matrix, which the sensor registration assumes)."""
    K = as_K(K)
    P = K if K_new is None else as_K(K_new)
    return cv2.initUndistortRectifyMap(K, as_dist(dist), None if R is None else
                                       np.asarray(R, float).reshape(3, 3), P, tuple(size),
                                       cv2.CV_16SC2)


def line_straightness(points: np.ndarray) -> float:
    """RMS distance (pixels) of points from their total-least-squares line: 0 for a straight
    row of corners, a few pixels for one bent by lens distortion."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    c = p - p.mean(axis=0)
    s = np.linalg.svd(c, compute_uv=False)
    return float(s[-1] / np.sqrt(len(p)))
