"""The calibration stage of the pipeline: the unit's factory calibration, verified at gate start
and applied to every burst (views undistorted and optionally rectified, the sensor frame
flat-fielded; the sensor-to-view registration kept for the liveness branch).

At start (``CalibrationStage(cfg)``, built by :class:`device.gate.pipeline.Pipeline`):

- ``[source] kind = "synthetic"``: exempt -- rendered views come from no lens, so nothing is
  loaded and nothing is applied (the demo needs no file);
- ``replay`` without ``[paths] calibration``: bursts pass as recorded;
- otherwise the file is loaded with the device key (``[paths] device_key``, never created here)
  and checked against this unit's serial (``[gate] serial`` or the board's), its age
  (``[calibration] max_age_days``), its format, and the steps this configuration needs (each
  view's intrinsics, extrinsics to rectify, flat field and registration with liveness on), each
  of which must have passed at the factory. Any failure raises :class:`CalibrationError` with
  its own message and ``reason``, unless ``[calibration] allow_uncalibrated``: then a warning is
  logged, ``status()`` says uncalibrated and bursts pass unchanged.
"""
from __future__ import annotations

import logging
from dataclasses import replace

from device.store.keys import DeviceKeyError, load_device_key
from device.ops.unit_serial import DEVICE_TREE_SERIALS, UnitSerialError, unit_serial
from device.vision.calibration import CalibrationError, load_calibration
from device.vision.view_correction import UnitCorrection

log = logging.getLogger("palmgate.gate")


def view_cameras(cfg) -> list[str]:
    """The calibration-file camera name of each view (``[calibration] cameras`` or cam0..)."""
    names = list(cfg.calibration.cameras) or [f"cam{k}" for k in range(cfg.gate.views)]
    return names[:cfg.gate.views]


class CalibrationStage:
    """See the module docstring. ``state``: ``calibrated``, ``exempt`` (synthetic source),
    ``off`` (replay, no file configured) or ``uncalibrated`` (refused, explicitly allowed)."""

    def __init__(self, cfg, now: float | None = None, serial_paths=DEVICE_TREE_SERIALS):
        self.cfg = cfg
        self.path = cfg.paths.calibration
        self.correction: UnitCorrection | None = None
        self.error: CalibrationError | None = None
        self.serial: str | None = None
        self.cameras = view_cameras(cfg)
        kind = cfg.source.kind
        if kind == "synthetic":
            self.state = "exempt"
            if self.path:
                log.info("synthetic source: the calibration file %s is not applied (rendered "
                         "views have no lens)", self.path)
            return
        if kind == "replay" and not self.path:
            self.state = "off"
            return
        try:
            self.correction = self._load(now, serial_paths)
            self.state = "calibrated"
            log.info("calibration %s loaded: unit %s, signed %s, views %s%s", self.path,
                     self.serial, self.correction.cal.doc.get("signed_utc"), self.cameras,
                     ", rectified" if cfg.calibration.rectify else "")
        except CalibrationError as e:
            if not cfg.calibration.allow_uncalibrated:
                raise
            self.state, self.error = "uncalibrated", e
            log.warning("running UNCALIBRATED ([calibration] allow_uncalibrated): %s", e,
                        extra={"event": "uncalibrated", "reason": e.reason})

    # -- start ---------------------------------------------------------------------------------
    def _load(self, now, serial_paths) -> UnitCorrection:
        c = self.cfg
        if not self.path:
            raise CalibrationError("no calibration file configured: set [paths] calibration to "
                                   "the unit's file (palmgate-calibrate writes it; "
                                   "docs/calibration.md)", reason="missing")
        try:
            self.serial = unit_serial(c.gate.serial, serial_paths)
        except UnitSerialError as e:
            raise CalibrationError(str(e), reason="serial_unknown") from None
        try:
            # the raw device key, as palmgate-calibrate verify passes it: how the calibration
            # MAC key derives from it is load_calibration's business
            key = load_device_key(c.paths.device_key)
        except DeviceKeyError as e:
            raise CalibrationError(f"cannot verify the calibration file: {e}",
                                   reason="key") from None
        days = c.calibration.max_age_days
        cal = load_calibration(self.path, key, unit_serial=self.serial,
                               max_age_s=days * 86400.0 if days else None, now=now)
        self._check_steps(cal)
        try:
            corr = UnitCorrection(cal, self.cameras, rectify=c.calibration.rectify)
        except CalibrationError as e:
            raise CalibrationError(f"calibration file {self.path}: {e}",
                                   reason="incomplete") from None
        if c.liveness.enabled:
            views = corr.sensor_views()
            if not views:
                try:
                    corr.sensor_homography(0)
                    why = ""
                except CalibrationError as e:
                    why = f": {e}"
                raise CalibrationError(f"calibration file {self.path}: the sensor registration "
                                       f"maps onto none of the views {self.cameras}{why}",
                                       reason="incomplete")
        corr.warm()
        return corr

    def _check_steps(self, cal) -> None:
        """Every step this configuration uses is in the file and passed its checks."""
        res = cal.results
        need = [("intrinsics", n) for n in self.cameras
                if n in res.get("intrinsics", {})]                 # else from extrinsics
        if self.cfg.calibration.rectify and len(self.cameras) > 1:
            need.append(("extrinsics", None))
        if self.cfg.liveness.enabled:
            need += [("flatfield", None), ("registration", None)]
        missing = [s for s, sub in need if sub is None and s not in res]
        missing += [f"intrinsics.{n}" for n in self.cameras if not _has_camera(res, n)]
        if missing:
            raise CalibrationError(
                f"calibration file {self.path} lacks {', '.join(missing)} (views "
                f"{self.cameras}, rectify {self.cfg.calibration.rectify}, liveness "
                f"{self.cfg.liveness.enabled}): run those palmgate-calibrate steps",
                reason="incomplete")
        failed = []
        for s, sub in need:
            rec = res.get(s, {})
            rec = rec.get(sub, {}) if sub else rec
            if rec.get("pass") is False:
                failed.append(f"{s}.{sub}" if sub else s)
        if failed:
            raise CalibrationError(f"calibration file {self.path}: step(s) {', '.join(failed)} "
                                   f"FAILED their checks at the factory; recalibrate the unit",
                                   reason="failed_step")

    # -- per burst -----------------------------------------------------------------------------
    @property
    def calibrated(self) -> bool:
        return self.correction is not None

    def apply(self, burst, idx=None):
        """The burst with views ``idx`` (default all) corrected and the sensor frame
        flat-fielded; the burst itself when there is nothing to apply."""
        corr = self.correction
        if corr is None:
            return burst
        idx = range(len(burst.views)) if idx is None else idx
        views = list(burst.views)
        for k in idx:
            if views[k] is not None:
                views[k] = corr.correct(k, views[k])
        sensor, more = burst.sensor, getattr(burst, "more_sensor", None)
        if sensor is not None and "flatfield" in corr.cal.results:
            sensor = corr.flatten(sensor)
            if more is not None:          # the second look's re-captures flat-fielded too
                more = _flattened(more, corr)
        extra = {"more_sensor": more} if more is not None else {}
        return replace(burst, views=views, sensor=sensor, **extra)

    def status(self) -> dict:
        """For the health report: state, file, unit, and what is wrong when uncalibrated."""
        out = {"state": self.state, "calibrated": self.calibrated, "file": self.path or None,
               "cameras": self.cameras, "rectify": bool(self.cfg.calibration.rectify)}
        if self.correction is not None:
            doc = self.correction.cal.doc
            out.update(unit_serial=doc.get("unit_serial"), signed_utc=doc.get("signed_utc"),
                       steps=sorted(self.correction.cal.results),
                       sensor_views=self.correction.sensor_views())
        if self.error is not None:
            out.update(reason=self.error.reason, detail=str(self.error),
                       problems=[f"calibration: running uncalibrated ({self.error.reason}): "
                                 f"{self.error}"])
        return out


def _flattened(more, corr):
    """``more_sensor`` with the unit's flat field applied to every frame it delivers."""
    return lambda k: [corr.flatten(f) for f in more(k)]


def _has_camera(results: dict, name: str) -> bool:
    if name in results.get("intrinsics", {}):
        return True
    ex = results.get("extrinsics", {})
    r = ex.get("cameras", {}).get(name, {}).get("intrinsics") or \
        ex.get("intrinsics_used", {}).get(name)
    return bool(r and "camera_matrix" in r)
