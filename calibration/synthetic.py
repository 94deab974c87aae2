"""Boards rendered through known cameras: ground truth for testing the calibration math without a
camera (and a self-test an engineer can run on a unit-less bench).

A view is the board image (``board.generate_image``) warped by the homography ``K [r1 r2 t] S^-1``
of the board plane (``S`` maps board units to board-image pixels), rendered at twice the
resolution and area-averaged down (anti-aliasing), then lens distortion (exact, by remapping
through ``cv2.undistortPoints``), blur and noise.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SS = 2                                              # supersampling factor


def rot(rx: float = 0.0, ry: float = 0.0, rz: float = 0.0) -> np.ndarray:
    """Rotation from angles in degrees about x, then y, then z (applied as Rz @ Ry @ Rx)."""
    ax, ay, az = np.radians([rx, ry, rz])
    Rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    Ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    Rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


@dataclass
class Camera:
    K: np.ndarray
    size: tuple[int, int]                           # (w, h)
    dist: np.ndarray | None = None
    R: np.ndarray | None = None                     # pose: X_cam = R X_ref + T
    T: np.ndarray | None = None

    def pose_of(self, R_ref, t_ref):
        """Board pose in this camera from the board pose in the reference camera."""
        R = np.eye(3) if self.R is None else self.R
        T = np.zeros(3) if self.T is None else np.asarray(self.T, float).ravel()
        return R @ R_ref, R @ np.asarray(t_ref, float).ravel() + T


def board_homography(K, R, t, S) -> np.ndarray:
    """Board-image pixels -> camera pixels for a board at pose (R, t)."""
    P = np.asarray(K, float) @ np.column_stack([R[:, 0], R[:, 1], np.asarray(t, float).ravel()])
    return P @ np.linalg.inv(S)


_DIST_MAPS: dict = {}


def _distortion_maps(K, dist, size):
    key = (np.asarray(K, float).tobytes(), np.asarray(dist, float).tobytes(), tuple(size))
    if key not in _DIST_MAPS:
        w, h = size[0] * SS, size[1] * SS
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        p1 = (np.stack([xs.ravel(), ys.ravel()], 1) - (SS - 1) / 2) / SS   # in 1x pixels
        q1 = cv2.undistortPoints(p1.reshape(-1, 1, 2), np.asarray(K, float),
                                 np.asarray(dist, float), P=np.asarray(K, float)).reshape(-1, 2)
        q2 = q1 * SS + (SS - 1) / 2
        if len(_DIST_MAPS) >= 4:                     # keep a few cameras' maps
            _DIST_MAPS.pop(next(iter(_DIST_MAPS)))
        _DIST_MAPS[key] = (q2[:, 0].reshape(h, w).astype(np.float32),
                           q2[:, 1].reshape(h, w).astype(np.float32))
    return _DIST_MAPS[key]


def render_view(board_img: np.ndarray, S: np.ndarray, cam: Camera, R: np.ndarray, t,
                blur: float = 0.0, noise: float = 0.0, rng: np.random.Generator | None = None,
                background: int = 110, contrast: float = 1.0, invert: bool = False) -> np.ndarray:
    """The board at pose (R, t) in ``cam`` as an 8-bit grayscale image."""
    w, h = cam.size
    up = np.array([[SS, 0, (SS - 1) / 2], [0, SS, (SS - 1) / 2], [0, 0, 1]])
    H = up @ board_homography(cam.K, R, t, S)
    src = board_img if not invert else 255 - board_img
    img = cv2.warpPerspective(src, H, (w * SS, h * SS), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=background)
    if cam.dist is not None and np.any(np.asarray(cam.dist) != 0):
        mx, my = _distortion_maps(cam.K, cam.dist, cam.size)
        img = cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                        borderValue=background)
    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    if contrast != 1.0:
        img = 128 + (img - 128) * contrast
    if blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    if noise > 0:
        rng = rng or np.random.default_rng(0)
        img = img + rng.normal(0, noise, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def board_poses(n: int, center, distance: float, rng: np.random.Generator,
                max_tilt: float = 35.0, max_roll: float = 20.0, jitter: float = 0.15
                ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` poses (R, t) of a board whose centre (board units) sits near the optical axis at
    about ``distance``, tilted up to ``max_tilt`` degrees in varied directions."""
    c = np.asarray([center[0], center[1], 0.0])
    poses = []
    for i in range(n):
        a = 2 * np.pi * i / n
        tilt = max_tilt * (0.4 + 0.6 * rng.random())
        R = rot(tilt * np.sin(a), tilt * np.cos(a), rng.uniform(-max_roll, max_roll))
        z = distance * (1 + rng.uniform(-jitter, jitter))
        off = np.array([rng.uniform(-1, 1) * 0.12 * z, rng.uniform(-1, 1) * 0.08 * z, z])
        poses.append((R, off - R @ c))
    return poses
