"""A unit's calibration applied to its presentations: each visible view corrected (undistorted,
optionally rectified onto one common image plane), the transmission-sensor frame flat-fielded,
and the sensor frame tied to every corrected view by a homography.

:class:`UnitCorrection` is built once from a verified :class:`~device.vision.calibration.
Calibration` and the names of the cameras behind views 0..K-1; it caches the remap tables per
view and frame size. The geometry is in :mod:`device.vision.view_geometry` (pure functions).

What the liveness branch uses (docs/calibration.md, "The sensor frame in the views"):

- ``sensor_to_view(points, k, view_size)`` -- pixels of the (raw, flat-fielded) sensor frame
  -> pixels of corrected view ``k``, for points on the working plane;
- ``view_to_sensor(points, k, view_size)`` -- the inverse;
- ``sensor_in_view(sensor, k, view_size)`` -- the sensor frame warped onto corrected view ``k``.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from device.vision import view_geometry as vg
from device.vision.calibration import Calibration, CalibrationError, apply_gain, gain_map


@dataclass(frozen=True)
class ViewModel:
    """View ``k`` at its calibrated size: raw camera, and the corrected view's rotation from
    the camera (None: undistortion alone) and camera matrix."""
    camera: str
    K: np.ndarray
    dist: np.ndarray
    size: tuple[int, int]
    R_rect: np.ndarray | None
    K_out: np.ndarray


class UnitCorrection:
    """Corrections of one unit (see the module docstring). ``cameras[k]`` is the camera name
    of view ``k`` in the calibration file; ``rectify`` puts every view onto the common image
    plane of views 0 and 1 (stereo-rectified; further views rotated into the same frame)."""

    def __init__(self, cal: Calibration, cameras: list[str], rectify: bool = False,
                 alpha: float = 0.0):
        if not cal.calibrated:
            raise CalibrationError("UnitCorrection needs a verified calibration")
        self.cal, self.cameras, self.rectify = cal, list(cameras), bool(rectify)
        self._maps: dict = {}
        self._gain: dict = {}
        models = [cal.camera(n) for n in self.cameras]        # CalibrationError if missing
        rect: list = [None] * len(models)
        k_out = [m.K for m in models]
        if self.rectify and len(models) > 1:
            sizes = {m.size for m in models}
            if len(sizes) != 1:
                raise CalibrationError(f"rectification needs views of one size; the cameras "
                                       f"were calibrated at {sorted(sizes)}")
            poses = [cal.extrinsics(n) for n in self.cameras]  # CalibrationError if missing
            R01, T01 = vg.relative_pose(poses[0], poses[1])
            R0, Kc = vg.common_plane(models[0].K, models[0].dist, models[1].K, models[1].dist,
                                     R01, T01, models[0].size, alpha)
            for k in range(len(models)):
                Rk0, _ = vg.relative_pose(poses[k], poses[0])   # camera k -> camera 0
                rect[k] = R0 @ Rk0
                k_out[k] = Kc
        self.views = [ViewModel(n, m.K, m.dist, m.size, r, ko)
                      for n, m, r, ko in zip(self.cameras, models, rect, k_out)]

    # -- the views ------------------------------------------------------------------------------
    def view_matrix(self, k: int, size: tuple[int, int] | None = None) -> np.ndarray:
        """Camera matrix of corrected view ``k`` at ``size`` (default: the calibrated size)."""
        v = self._view(k)
        return v.K_out if size is None else self._scale(v, size) @ v.K_out

    def correct(self, k: int, img: np.ndarray) -> np.ndarray:
        """Raw view ``k`` -> the corrected view (same size)."""
        h, w = img.shape[:2]
        key = (k, w, h)
        if key not in self._maps:
            v = self._view(k)
            S = self._scale(v, (w, h))
            self._maps[key] = vg.correction_maps(S @ v.K, v.dist, (w, h), v.R_rect,
                                                 S @ v.K_out)
        m1, m2 = self._maps[key]
        return cv2.remap(img, m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)

    def warm(self) -> None:
        """Build the remap tables of every view at its calibrated size (at gate start, so the
        first presentation does not pay for them)."""
        for k, v in enumerate(self.views):
            self.correct(k, np.zeros((v.size[1], v.size[0]), np.uint8))

    # -- the transmission sensor ------------------------------------------------------------------
    @property
    def registration(self) -> dict | None:
        return self.cal.results.get("registration") or None

    def flatten(self, sensor: np.ndarray) -> np.ndarray:
        """Flat-field correction of a sensor frame (the file's gain map and dark level)."""
        ff = self.cal.results.get("flatfield")
        if not ff:
            raise CalibrationError("the calibration file has no flat-field gain map")
        h, w = sensor.shape[:2]
        if (w, h) not in self._gain:
            self._check_size(tuple(ff["image_size"]), (w, h), "sensor frame", "flat field")
            self._gain[(w, h)] = gain_map(ff["gain_grid"], (w, h))
        return apply_gain(sensor, self._gain[(w, h)], ff.get("dark_level", 0.0))

    def sensor_homography(self, k: int, view_size: tuple[int, int] | None = None
                          ) -> np.ndarray:
        """Undistorted sensor pixels (at the registered sensor size) -> corrected view ``k``
        pixels at ``view_size``, for points on the working plane."""
        reg = self._registration()
        v = self._view(k)
        ref = reg["reference"]
        if not reg.get("ref_undistorted", False):
            raise CalibrationError(f"the sensor registration was fitted to raw pixels of "
                                   f"{ref!r}, the gate's views are undistorted: rerun "
                                   f"palmgate-calibrate registration after intrinsics")
        K_ref = self.cal.camera(ref).at(tuple(reg["ref_size"]))
        H = np.asarray(reg["H"], np.float64).reshape(3, 3)
        if v.camera != ref:
            plane = reg_plane(reg)
            if plane is None:
                raise CalibrationError(
                    f"the sensor registration holds no working plane (made without the "
                    f"intrinsics of {ref!r}?): the sensor maps onto view {ref!r} only; rerun "
                    f"palmgate-calibrate registration after intrinsics")
            R, T = vg.relative_pose(self.cal.extrinsics(ref), self.cal.extrinsics(v.camera))
            H = vg.plane_homography(K_ref, v.K, R, T, *plane) @ H
        elif tuple(reg["ref_size"]) != v.size:
            H = vg.scale_matrix(tuple(reg["ref_size"]), v.size) @ H
        if v.R_rect is not None:
            H = vg.rotation_homography(v.K, v.K_out, v.R_rect) @ H
        if view_size is not None:
            H = self._scale(v, view_size) @ H
        return H / H[2, 2]

    def sensor_to_view(self, points, k: int, view_size: tuple[int, int] | None = None,
                       sensor_size: tuple[int, int] | None = None) -> np.ndarray:
        """(N, 2) pixels of the sensor frame (as captured, at ``sensor_size``; default the
        registered size) -> pixels of corrected view ``k`` at ``view_size`` (default its
        calibrated size), for points on the working plane."""
        return vg.apply_homography(self.sensor_homography(k, view_size),
                                   self._sensor_in(points, sensor_size))

    def view_to_sensor(self, points, k: int, view_size: tuple[int, int] | None = None,
                       sensor_size: tuple[int, int] | None = None) -> np.ndarray:
        """The inverse of :meth:`sensor_to_view`."""
        p = vg.apply_homography(np.linalg.inv(self.sensor_homography(k, view_size)), points)
        reg = self._registration()
        size = tuple(reg["sensor_size"])
        if reg.get("sensor_undistorted"):
            s = self.cal.camera(reg["sensor"])
            p = vg.distort_points(p, s.at(size), s.dist)
        if sensor_size is not None and tuple(sensor_size) != size:
            p = vg.apply_homography(self._size_map(size, tuple(sensor_size)), p)
        return p

    def sensor_in_view(self, sensor: np.ndarray, k: int,
                       view_size: tuple[int, int] | None = None) -> np.ndarray:
        """The sensor frame warped onto corrected view ``k`` (black outside the sensor's
        field)."""
        reg = self._registration()
        size = tuple(reg["sensor_size"])
        h, w = sensor.shape[:2]
        img = sensor
        if (w, h) != size:
            img = cv2.resize(sensor, size, interpolation=cv2.INTER_AREA
                             if w > size[0] else cv2.INTER_LINEAR)
        if reg.get("sensor_undistorted"):
            s = self.cal.camera(reg["sensor"])
            m1, m2 = vg.correction_maps(s.at(size), s.dist, size)
            img = cv2.remap(img, m1, m2, cv2.INTER_LINEAR)
        out_size = tuple(view_size) if view_size is not None else self._view(k).size
        return cv2.warpPerspective(img, self.sensor_homography(k, out_size), out_size,
                                   flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)

    def sensor_views(self) -> list[int]:
        """The views the sensor frame can be mapped into with this file."""
        out = []
        for k in range(len(self.views)):
            try:
                self.sensor_homography(k)
                out.append(k)
            except CalibrationError:
                pass
        return out

    # -- helpers -----------------------------------------------------------------------------------
    def _view(self, k: int) -> ViewModel:
        if not 0 <= k < len(self.views):
            raise CalibrationError(f"view {k} is not calibrated: the unit has "
                                   f"{len(self.views)} view(s) ({self.cameras})")
        return self.views[k]

    def _registration(self) -> dict:
        reg = self.registration
        if not reg:
            raise CalibrationError("the calibration file has no sensor registration")
        return reg

    def _sensor_in(self, points, sensor_size) -> np.ndarray:
        """Captured sensor pixels -> undistorted pixels at the registered size."""
        reg = self._registration()
        size = tuple(reg["sensor_size"])
        p = np.asarray(points, np.float64).reshape(-1, 2)
        if sensor_size is not None and tuple(sensor_size) != size:
            p = vg.apply_homography(self._size_map(tuple(sensor_size), size), p)
        if reg.get("sensor_undistorted"):
            s = self.cal.camera(reg["sensor"])
            p = vg.undistort_points(p, s.at(size), s.dist)
        return p

    def _scale(self, v: ViewModel, size) -> np.ndarray:
        return self._size_map(v.size, tuple(size), f"view of camera {v.camera!r}")

    @staticmethod
    def _size_map(from_size, to_size, what: str = "sensor frame") -> np.ndarray:
        if tuple(from_size) == tuple(to_size):
            return np.eye(3)
        UnitCorrection._check_size(tuple(from_size), tuple(to_size), what, "calibration")
        return vg.scale_matrix(from_size, to_size)

    @staticmethod
    def _check_size(calibrated, got, what: str, step: str) -> None:
        try:
            vg.scale_matrix(calibrated, got)
        except ValueError:
            raise CalibrationError(f"{what} {got[0]}x{got[1]} is not the {step}'s "
                                   f"{calibrated[0]}x{calibrated[1]} nor a scaled read-out of "
                                   f"it: another sensor mode than the one calibrated") from None


def reg_plane(reg: dict) -> tuple[np.ndarray, float] | None:
    """The working plane ``(n, d)`` of a registration record, in its reference camera's
    coordinates: recorded by the registration step, or the stereo mode's working distance."""
    p = reg.get("plane")
    if p:
        return np.asarray(p["normal"], float), float(p["distance"])
    if reg.get("working_distance"):
        return np.array([0.0, 0.0, 1.0]), float(reg["working_distance"])
    return None
