"""Where a view's pixel lies in the sensor frame: the registrations the binding uses
(:mod:`device.gate.sensor_binding`) -- homographies of a synthetic rig or given ones, the unit's
factory registration, and the synthetic rig's nominal one."""
from __future__ import annotations

import numpy as np

from device.gate import binding_geometry as G


class HomographyRegistration:
    """Sensor pixel -> view pixel homographies (one per view, for views of ``view_size`` (W, H)
    and a sensor frame of ``sensor_size`` (W, H)); views or frames of other sizes are scaled.
    ``K``: the views' camera matrices at ``view_size`` (for :meth:`centre`)."""

    def __init__(self, H: list, view_size: tuple[int, int], sensor_size: tuple[int, int],
                 K: list | None = None):
        self.H = [np.asarray(h, np.float64) for h in H]
        self.Hinv = [np.linalg.inv(h) for h in self.H]
        self.K = None if K is None else [np.asarray(k, np.float64) for k in K]
        self.view_size, self.sensor_size = tuple(view_size), tuple(sensor_size)

    def to_sensor(self, points, k: int, view_size, sensor_size) -> np.ndarray:
        if not 0 <= k < len(self.Hinv):
            return np.full((len(points), 2), np.nan)
        p = np.asarray(points, np.float64).reshape(-1, 2)
        p = p * (np.array(self.view_size, float) / np.array(view_size, float))
        q = np.column_stack([p, np.ones(len(p))]) @ self.Hinv[k].T
        q = q[:, :2] / q[:, 2:3]
        return q * (np.array(sensor_size, float) / np.array(self.sensor_size, float))

    def centre(self, k: int, view_size, sensor_size) -> np.ndarray | None:
        """View ``k``'s camera centre in the sensor-pixel world
        (:func:`device.gate.binding_geometry.camera_centre`); None without camera matrices."""
        if self.K is None or not 0 <= k < len(self.H):
            return None
        sv = np.diag([*(np.array(view_size, float) / np.array(self.view_size, float)), 1.0])
        ss = np.diag([*(np.array(sensor_size, float) / np.array(self.sensor_size, float)),
                      1.0])
        return G.camera_centre(sv @ self.K[k], sv @ self.H[k] @ np.linalg.inv(ss))


class CorrectionRegistration:
    """The unit's factory registration (:class:`device.vision.view_correction.UnitCorrection`)."""

    def __init__(self, correction):
        self.correction = correction

    def to_sensor(self, points, k: int, view_size, sensor_size) -> np.ndarray:
        return self.correction.view_to_sensor(points, k, view_size, sensor_size)

    def centre(self, k: int, view_size, sensor_size) -> np.ndarray | None:
        """View ``k``'s camera centre in the sensor-pixel world, from its corrected camera
        matrix and its registration homography (the sensor's lens distortion left out: it
        changes the centre little near the hand); None where the file cannot give it."""
        from device.vision.calibration import CalibrationError
        c = self.correction
        try:
            reg = c.registration or {}
            H = c.sensor_homography(k, tuple(view_size))
            size = tuple(reg.get("sensor_size") or sensor_size)
            ss = np.diag([sensor_size[0] / size[0], sensor_size[1] / size[1], 1.0])
            return G.camera_centre(c.view_matrix(k, tuple(view_size)), H @ np.linalg.inv(ss))
        except (CalibrationError, np.linalg.LinAlgError, KeyError, TypeError):
            return None


def nominal_registration(cfg) -> HomographyRegistration:
    """The synthetic rig's registration (``[source] synthetic_seed``, ``[gate] views``,
    ``[liveness] sensor``): exact for the synthetic source, a stand-in anywhere else."""
    from device.synth.bound import sensor_size, synthetic_cameras, synthetic_registration
    seed, views = cfg.source.synthetic_seed, cfg.gate.views
    H, view_hw = synthetic_registration(seed, views, cfg.liveness.sensor)
    sh = sensor_size(cfg.liveness.sensor)
    return HomographyRegistration(H, (view_hw[1], view_hw[0]), (sh[1], sh[0]),
                                  synthetic_cameras(seed, views, view_hw))
