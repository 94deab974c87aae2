"""Intrinsic calibration of one camera from board detections (pure: no files, no cameras).

``calibrate_intrinsics`` runs ``cv2.calibrateCameraExtended``, drops views whose per-view RMS
exceeds a robust limit (``outlier_limit``), recalibrates, and returns everything a report needs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from calibration.boards import Detection

CRITERIA = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 30, np.finfo(float).eps)

MODEL_FLAGS = {
    "standard": 0,                                   # k1 k2 p1 p2 k3 (OpenCV's test settings)
    "k1k2": cv2.CALIB_FIX_K3,                        # for narrow lenses / few views
    "rational": cv2.CALIB_RATIONAL_MODEL,            # k1..k6 p1 p2 for wide lenses
}


def outlier_limit(errors, abs_floor: float = 0.3, ratio: float = 2.0, mads: float = 4.0) -> float:
    """Per-view RMS above which a view is an outlier: the largest of an absolute floor (a clean
    set is never trimmed), ``ratio`` x the median and the median + ``mads`` robust sigmas."""
    e = np.asarray(errors, np.float64)
    med = float(np.median(e))
    sigma = 1.4826 * float(np.median(np.abs(e - med)))
    return max(abs_floor, ratio * med, med + mads * sigma)


def coverage(points: list[np.ndarray], image_size: tuple[int, int], grid=(8, 6)) -> float:
    """Fraction of a coarse grid of image cells that hold at least one detected corner."""
    w, h = image_size
    hit = np.zeros(grid[::-1], bool)
    for p in points:
        ix = np.clip((p[:, 0] / w * grid[0]).astype(int), 0, grid[0] - 1)
        iy = np.clip((p[:, 1] / h * grid[1]).astype(int), 0, grid[1] - 1)
        hit[iy, ix] = True
    return float(hit.mean())


@dataclass
class IntrinsicsResult:
    rms: float
    camera_matrix: np.ndarray
    dist: np.ndarray
    image_size: tuple[int, int]
    views: list[str]                                  # views used in the final calibration
    per_view_rms: list[float]
    rvecs: list[np.ndarray]
    tvecs: list[np.ndarray]
    residuals: list[np.ndarray]                       # (N, 2) projected - detected, per view
    dropped: list[dict] = field(default_factory=list)  # {"view", "rms", "limit", "round"}
    initial_per_view_rms: dict = field(default_factory=dict)
    std_intrinsics: np.ndarray | None = None          # fx fy cx cy k1 k2 p1 p2 k3 ... sigmas
    coverage: float = 0.0
    model: str = "standard"

    def to_json(self) -> dict:
        std = self.std_intrinsics
        return {
            "rms": float(self.rms),
            "camera_matrix": self.camera_matrix.tolist(),
            "dist": self.dist.ravel().tolist(),
            "image_size": list(self.image_size),
            "model": self.model,
            "views_used": len(self.views),
            "views": list(self.views),
            "per_view_rms": {v: float(e) for v, e in zip(self.views, self.per_view_rms)},
            "views_dropped": list(self.dropped),
            "coverage": float(self.coverage),
            "std_fx_fy_cx_cy": None if std is None else [float(x) for x in std[:4]],
        }


def _calibrate(dets: list[Detection], size, flags, K0=None, d0=None):
    obj = [d.object_points.astype(np.float32) for d in dets]
    img = [d.image_points.astype(np.float32) for d in dets]
    rms, K, dist, rvecs, tvecs, std_in, _std_ex, per_view = cv2.calibrateCameraExtended(
        obj, img, size, K0, d0, flags=flags, criteria=CRITERIA)
    residuals = []
    for o, i, r, t in zip(obj, img, rvecs, tvecs):
        proj, _ = cv2.projectPoints(o, r, t, K, dist)
        residuals.append(proj.reshape(-1, 2) - i)
    return (float(rms), K, dist.ravel(), list(rvecs), list(tvecs), std_in.ravel(),
            per_view.ravel().astype(float), residuals)


def calibrate_intrinsics(detections: list[Detection], names: list[str] | None = None,
                         model: str = "standard", drop_outliers: bool = True,
                         min_views: int = 4, max_rounds: int = 3, outlier_kw: dict | None = None,
                         ) -> IntrinsicsResult:
    """Calibrate from per-view detections of one camera (all of one image size).

    Views are named by ``names`` (default ``view0..``). With ``drop_outliers`` views above
    ``outlier_limit`` are dropped (never below ``min_views`` views, worst first) and the camera
    recalibrated, up to ``max_rounds`` times.
    """
    if model not in MODEL_FLAGS:
        raise ValueError(f"unknown lens model {model!r}; one of {sorted(MODEL_FLAGS)}")
    names = list(names) if names is not None else [f"view{i}" for i in range(len(detections))]
    if len(names) != len(detections):
        raise ValueError("one name per detection")
    sizes = {d.image_size for d in detections}
    if len(sizes) != 1:
        raise ValueError(f"views of different image sizes {sorted(sizes)} cannot calibrate one camera")
    if len(detections) < 3:
        raise ValueError(f"only {len(detections)} view(s) with a board: at least 3 are needed "
                         f"(a dozen or more, tilted in different directions, is better)")
    size = sizes.pop()
    flags = MODEL_FLAGS[model]
    keep = list(range(len(detections)))
    dropped: list[dict] = []
    initial = None
    for rnd in range(max_rounds + 1):
        out = _calibrate([detections[i] for i in keep], size, flags)
        per_view = out[6]
        if initial is None:
            initial = {names[i]: float(e) for i, e in zip(keep, per_view)}
        if not drop_outliers or rnd == max_rounds:
            break
        limit = outlier_limit(per_view, **(outlier_kw or {}))
        bad = [k for k in np.argsort(-per_view) if per_view[k] > limit]
        bad = bad[:max(0, len(keep) - min_views)]
        if not bad:
            break
        for k in bad:
            dropped.append({"view": names[keep[k]], "rms": float(per_view[k]),
                            "limit": float(limit), "round": rnd + 1})
        keep = [i for j, i in enumerate(keep) if j not in set(bad)]
    rms, K, dist, rvecs, tvecs, std_in, per_view, residuals = out
    used = [detections[i] for i in keep]
    return IntrinsicsResult(
        rms=rms, camera_matrix=K, dist=dist, image_size=size, views=[names[i] for i in keep],
        per_view_rms=[float(e) for e in per_view], rvecs=rvecs, tvecs=tvecs,
        residuals=residuals, dropped=dropped, initial_per_view_rms=initial or {},
        std_intrinsics=std_in, coverage=coverage([d.image_points for d in used], size),
        model=model)
