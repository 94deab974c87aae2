"""Registration of the transmission sensor (X-ray/NIR) to the reference camera's view.

At the palm's working distance the palm is close to a plane, so one homography maps sensor pixels
to reference pixels. ``estimate_homography`` fits it to the board corners both saw, with the board
lying on the working plane (several frames of that placement average out noise). Where either
side has intrinsics its points are undistorted first (``P = K``), so the homography lives between
the undistorted images the runtime produces with ``Calibration.undistort``.

Note: many NIR sensors cannot see dye inks; use a board printed with carbon-black toner.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from calibration.boards import Detection
from calibration.extrinsics import common_points, natural_key
from device.vision.view_geometry import apply_homography


def undistort_pixels(pts: np.ndarray, K=None, dist=None) -> np.ndarray:
    if K is None:
        return np.asarray(pts, np.float64).reshape(-1, 2)
    K = np.asarray(K, np.float64)
    return cv2.undistortPoints(np.asarray(pts, np.float64).reshape(-1, 1, 2), K,
                               np.asarray(dist, np.float64).ravel(), P=K).reshape(-1, 2)


def homography_grid_error(H_est, H_true, size: tuple[int, int], step: int = 16) -> dict:
    """Mean and max pixel distance between two homographies over a grid of the source image."""
    w, h = size
    xs, ys = np.meshgrid(np.arange(0, w, step), np.arange(0, h, step))
    p = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)
    d = np.linalg.norm(apply_homography(H_est, p) - apply_homography(H_true, p), axis=1)
    return {"mean_px": float(d.mean()), "max_px": float(d.max())}


def board_plane(detections: list[Detection], K, dist) -> dict | None:
    """The plane the board lay on, in the camera's coordinates (``n . X = d``, ``n`` towards
    the camera's far side), averaged over the views (``solvePnP`` per view); None without
    views. ``spread``: the largest distance of a view's board centre from the mean plane."""
    K, dist = np.asarray(K, np.float64), np.asarray(dist, np.float64).ravel()
    ns, ds, cs = [], [], []
    for det in detections:
        ok, rv, tv = cv2.solvePnP(det.object_points.astype(np.float64),
                                  det.image_points.astype(np.float64), K, dist)
        if not ok:
            continue
        R = cv2.Rodrigues(rv)[0]
        n = R[:, 2] * (1.0 if R[2, 2] >= 0 else -1.0)
        ns.append(n)
        ds.append(float(n @ tv.ravel()))
        cs.append(R @ det.object_points.mean(axis=0).astype(np.float64) + tv.ravel())
    if not ns:
        return None
    n = np.mean(ns, axis=0)
    n /= np.linalg.norm(n)
    d = float(np.mean([n @ c for c in cs]))
    spread = float(max(abs(n @ c - d) for c in cs))
    return {"normal": n.tolist(), "distance": d, "spread": spread, "views": len(ns)}


@dataclass
class RegistrationResult:
    H: np.ndarray                       # sensor pixels -> reference pixels
    rms: float
    per_view_rms: dict[str, float]
    points: int
    sensor_size: tuple[int, int]
    ref_size: tuple[int, int]
    sensor_undistorted: bool
    ref_undistorted: bool
    max_view_disagreement_px: float     # how far the single-view homographies disagree

    def to_json(self) -> dict:
        return {"H": self.H.tolist(), "rms": float(self.rms),
                "per_view_rms": {k: float(v) for k, v in self.per_view_rms.items()},
                "points": int(self.points), "sensor_size": list(self.sensor_size),
                "ref_size": list(self.ref_size), "sensor_undistorted": self.sensor_undistorted,
                "ref_undistorted": self.ref_undistorted,
                "max_view_disagreement_px": float(self.max_view_disagreement_px)}


def estimate_homography(sensor_views: dict[str, Detection], ref_views: dict[str, Detection],
                        sensor_intrinsics: tuple | None = None,
                        ref_intrinsics: tuple | None = None,
                        min_points: int = 8) -> RegistrationResult:
    """Fit the sensor-to-reference homography over all frames both saw (matched by key)."""
    keys, S, Rf = [], [], []
    for k in sorted(set(sensor_views) & set(ref_views), key=natural_key):
        cp = common_points(sensor_views[k], ref_views[k], min_points)
        if cp is None:
            continue
        _, ps, pr = cp
        keys.append(k)
        S.append(undistort_pixels(ps, *(sensor_intrinsics or (None, None))))
        Rf.append(undistort_pixels(pr, *(ref_intrinsics or (None, None))))
    if not keys:
        raise ValueError(f"no frame shows at least {min_points} board corners to both the sensor "
                         f"and the reference camera (is the board visible to the sensor? NIR "
                         f"needs carbon-black toner)")
    s_all, r_all = np.vstack(S), np.vstack(Rf)
    H, _ = cv2.findHomography(s_all, r_all, 0)     # plain least squares: points are clean corners
    if H is None:
        raise ValueError("homography fit failed (degenerate corner layout)")
    H = H / H[2, 2]
    per_view = {}
    for k, s, r in zip(keys, S, Rf):
        per_view[k] = float(np.sqrt(np.mean(np.sum((apply_homography(H, s) - r) ** 2, 1))))
    err = np.sum((apply_homography(H, s_all) - r_all) ** 2, 1)
    sensor_size = next(iter(sensor_views.values())).image_size
    ref_size = next(iter(ref_views.values())).image_size
    disagreement = 0.0
    for s, r in zip(S, Rf):                         # a moved board shows up here
        Hk, _ = cv2.findHomography(s, r, 0)
        if Hk is not None:
            disagreement = max(disagreement,
                               homography_grid_error(Hk, H, sensor_size, step=32)["max_px"])
    return RegistrationResult(H, float(np.sqrt(err.mean())), per_view, len(s_all), sensor_size,
                              ref_size, sensor_intrinsics is not None, ref_intrinsics is not None,
                              disagreement)
