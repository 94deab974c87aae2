"""Extrinsic calibration: where every camera sits relative to the reference camera, from
simultaneous board views (``cv2.stereoCalibrateExtended`` per camera pair, intrinsics fixed).

Convention (OpenCV's): ``X_cam = R @ X_ref + T``; the baseline is ``|T|`` in board units and the
camera centre in reference coordinates is ``-R.T @ T``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from calibration.boards import Detection
from calibration.intrinsics import outlier_limit

STEREO_CRITERIA = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 100, 1e-6)


def natural_key(k: str):
    """Sort frame keys numerically when they are numbers (``2`` before ``11``)."""
    return (0, int(k), "") if str(k).isdigit() else (1, 0, str(k))


def common_points(a: Detection, b: Detection, min_points: int = 6):
    """Board points both views saw: (object (N,3), points in a (N,2), points in b (N,2))."""
    ids = np.intersect1d(a.ids, b.ids)
    if len(ids) < min_points:
        return None
    ia = {int(k): i for i, k in enumerate(a.ids)}
    ib = {int(k): i for i, k in enumerate(b.ids)}
    sa = np.array([ia[int(k)] for k in ids])
    sb = np.array([ib[int(k)] for k in ids])
    return (a.object_points[sa].astype(np.float32), a.image_points[sa].astype(np.float32),
            b.image_points[sb].astype(np.float32))


def rotation_angle_deg(R) -> float:
    c = (np.trace(np.asarray(R)) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


@dataclass
class StereoResult:
    camera: str
    reference: str
    R: np.ndarray
    T: np.ndarray
    rms: float
    pairs: list[str]
    per_pair_rms: list[float]                   # mean of the two views' RMS per pair
    dropped: list[dict] = field(default_factory=list)
    K: np.ndarray | None = None                 # the camera's intrinsics after calibration
    dist: np.ndarray | None = None

    @property
    def baseline(self) -> float:
        return float(np.linalg.norm(self.T))

    @property
    def angle_deg(self) -> float:
        return rotation_angle_deg(self.R)

    def to_json(self) -> dict:
        return {"R": self.R.tolist(), "T": self.T.ravel().tolist(), "rms": float(self.rms),
                "baseline": self.baseline, "angle_deg": self.angle_deg,
                "rvec": cv2.Rodrigues(self.R)[0].ravel().tolist(),
                "center_in_reference": (-self.R.T @ self.T.reshape(3, 1)).ravel().tolist(),
                "pairs_used": len(self.pairs),
                "per_pair_rms": {p: float(e) for p, e in zip(self.pairs, self.per_pair_rms)},
                "pairs_dropped": list(self.dropped)}


def _stereo(pairs, K1, d1, K2, d2, size, flags):
    obj = [p[0] for p in pairs]
    p1 = [p[1] for p in pairs]
    p2 = [p[2] for p in pairs]
    out = cv2.stereoCalibrateExtended(obj, p1, p2, K1.copy(), d1.copy(), K2.copy(), d2.copy(),
                                      size, None, None, flags=flags, criteria=STEREO_CRITERIA)
    rms, K1n, d1n, K2n, d2n, R, T = out[:7]
    per_view = np.asarray(out[-1]).reshape(len(pairs), 2).mean(axis=1)
    return float(rms), R, T.reshape(3, 1), per_view, K2n, d2n.ravel()


def calibrate_pair(ref_views: dict[str, Detection], cam_views: dict[str, Detection],
                   ref_intrinsics: tuple, cam_intrinsics: tuple, image_size: tuple[int, int],
                   camera: str = "cam1", reference: str = "cam0",
                   fix_intrinsics: bool = True, drop_outliers: bool = True,
                   min_pairs: int = 3, min_points: int = 6) -> StereoResult:
    """Relative pose of ``camera`` to ``reference`` from frames both saw (matched by key).

    ``*_intrinsics`` are (K, dist). With ``fix_intrinsics`` (the factory default: intrinsics come
    from their own step) only R and T are estimated; otherwise intrinsics are refined too.
    """
    K1, d1 = (np.asarray(x, np.float64) for x in ref_intrinsics)
    K2, d2 = (np.asarray(x, np.float64) for x in cam_intrinsics)
    d1, d2 = d1.ravel(), d2.ravel()
    keys, pairs = [], []
    for k in sorted(set(ref_views) & set(cam_views), key=natural_key):
        cp = common_points(ref_views[k], cam_views[k], min_points)
        if cp is not None:
            keys.append(k)
            pairs.append(cp)
    if len(pairs) < min_pairs:
        raise ValueError(f"{camera}: only {len(pairs)} simultaneous view(s) show the board to "
                         f"both {reference} and {camera}; at least {min_pairs} are needed")
    flags = cv2.CALIB_FIX_INTRINSIC if fix_intrinsics else cv2.CALIB_USE_INTRINSIC_GUESS
    dropped: list[dict] = []
    for rnd in range(3):
        rms, R, T, per_view, K2n, d2n = _stereo(pairs, K1, d1, K2, d2, image_size, flags)
        if not drop_outliers or rnd == 2:
            break
        limit = outlier_limit(per_view)
        bad = [i for i in np.argsort(-per_view) if per_view[i] > limit][:max(0, len(pairs) - min_pairs)]
        if not bad:
            break
        for i in bad:
            dropped.append({"view": keys[i], "rms": float(per_view[i]), "limit": float(limit),
                            "round": rnd + 1})
        keys = [k for i, k in enumerate(keys) if i not in set(bad)]
        pairs = [p for i, p in enumerate(pairs) if i not in set(bad)]
    return StereoResult(camera, reference, R, T, rms, keys, [float(e) for e in per_view],
                        dropped, K2n, d2n)


def plane_homography(K_src, K_dst, R, T, n, d) -> np.ndarray:
    """Homography induced by the plane ``n . X = d`` (in source-camera coordinates) mapping
    source pixels to destination pixels, where ``X_dst = R X_src + T``."""
    K_src, K_dst = np.asarray(K_src, float), np.asarray(K_dst, float)
    n = np.asarray(n, float).reshape(3, 1)
    H = K_dst @ (np.asarray(R, float) + np.asarray(T, float).reshape(3, 1) @ n.T / d) \
        @ np.linalg.inv(K_src)
    return H / H[2, 2]
