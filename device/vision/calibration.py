"""The gate's side of factory calibration: load and verify the unit's signed calibration file, and
apply it to images (undistortion, stereo rectification, sensor-to-reference registration, the
transmission sensor's gain map).

The file is JSON signed with HMAC-SHA256 under a key of its own derived from the device key
(HKDF, purpose "calibration file": ``calibration_key``; the raw device key never keys a MAC)
over a canonical encoding
(``canonical_json``: sorted keys, no spaces, UTF-8, no NaN). ``load_calibration`` refuses a
missing, tampered, foreign (another unit's serial) or stale file with ``CalibrationError`` unless
the caller explicitly allows uncalibrated operation; then it returns a ``Calibration`` whose
``calibrated`` is False and whose operations pass images through unchanged.

Everything that touches pixels is a pure function of numpy arrays; ``Calibration`` only caches the
remap tables those functions build.
"""
from __future__ import annotations

import copy
import hashlib
import hmac
import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from device.store.subkeys import CALIBRATION, SubkeyError, derive_subkey

log = logging.getLogger(__name__)

FORMAT = "palmgate-calibration/1"
SIG_ALG = "HMAC-SHA256-HKDF"     # HMAC-SHA256 under calibration_key(device key)
LEGACY_SIG_ALG = "HMAC-SHA256"   # keyed by the raw device key: refused (python -m
#                                  calibration.resign re-signs such a file once)


class CalibrationError(RuntimeError):
    """The calibration file is missing, tampered, stale, for another unit, or unusable.

    ``reason`` names the failure for status reports and tests: ``missing``, ``unreadable``,
    ``corrupt`` (not JSON / not a calibration document), ``signature`` (tampered, or signed
    with another device key), ``other_unit``, ``stale`` (too old, or made for another file
    format), ``clock`` (signed in the future), ``incomplete`` (a step the gate needs is absent
    or failed its checks at the factory), ``invalid`` (anything else)."""

    def __init__(self, message: str = "", reason: str = "invalid"):
        super().__init__(message)
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# signing
def canonical_json(obj: Any) -> bytes:
    """The exact bytes that are signed: sorted keys, compact separators, UTF-8, finite floats."""
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise CalibrationError(f"calibration data is not canonical JSON: {e}") from e


def key_id(key: bytes) -> str:
    """A short public fingerprint of the key (names which key signed; reveals nothing usable)."""
    return hashlib.sha256(b"palmgate-key-id\0" + key).hexdigest()[:16]


def calibration_key(device_key: bytes) -> bytes:
    """The calibration file's MAC key: HKDF of the device key for this purpose only."""
    try:
        return derive_subkey(device_key, CALIBRATION)
    except SubkeyError as e:
        raise CalibrationError(f"device key: {e}") from None


def _mac(doc: dict, key: bytes) -> str:
    body = {k: v for k, v in doc.items() if k != "signature"}
    return hmac.new(key, canonical_json(body), hashlib.sha256).hexdigest()


def sign_document(doc: dict, key: bytes) -> dict:
    """A copy of ``doc`` with its ``signature`` (over everything else) set; ``key`` is the
    device key (the MAC is keyed by ``calibration_key(key)``)."""
    mk = calibration_key(key)
    out = copy.deepcopy({k: v for k, v in doc.items() if k != "signature"})
    out["signature"] = {"alg": SIG_ALG, "key_id": key_id(mk), "mac": _mac(out, mk)}
    return out


def verify_document(doc: dict, key: bytes, source: str = "calibration file",
                    allow_legacy: bool = False) -> None:
    """Check the signature under the device key ``key``. A file signed the old way (the raw
    device key as the MAC key) is refused unless ``allow_legacy`` (``calibration.resign``)."""
    sig = doc.get("signature")
    if not isinstance(sig, dict) or "mac" not in sig:
        raise CalibrationError(f"{source} is not signed")
    if sig.get("alg") == LEGACY_SIG_ALG:
        if not allow_legacy:
            raise CalibrationError(
                f"{source} is signed with the raw device key (palmgate-calibrate before the "
                f"per-purpose keys); re-sign it once with `python -m calibration.resign "
                f"--calfile FILE --key KEYFILE`, or recalibrate the unit")
        key = bytes(key)
    elif sig.get("alg") == SIG_ALG:
        key = calibration_key(key)
    else:
        raise CalibrationError(f"{source}: unsupported signature algorithm {sig.get('alg')!r}")
    if sig.get("key_id") != key_id(key):
        raise CalibrationError(f"{source} was signed with another device key "
                               f"(key id {sig.get('key_id')}, this unit's {key_id(key)})")
    if not hmac.compare_digest(str(sig["mac"]), _mac(doc, key)):
        raise CalibrationError(f"{source} has been tampered with: its signature does not match "
                               f"its contents; recalibrate the unit")


# ---------------------------------------------------------------------------------------------
# pure image functions
def _as_K(K) -> np.ndarray:
    return np.asarray(K, dtype=np.float64).reshape(3, 3)


def _as_dist(d) -> np.ndarray:
    return np.asarray(d if d is not None else [], dtype=np.float64).ravel()


def scale_camera_matrix(K, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """K for the same camera read out at another resolution (binning/scaling, same field)."""
    (w0, h0), (w1, h1) = from_size, to_size
    if abs(w1 / w0 - h1 / h0) > 1e-3:
        raise CalibrationError(f"image size {to_size} is not a scaled {from_size}: "
                               f"calibrated for another sensor mode")
    s = w1 / w0
    K = _as_K(K).copy()
    K[0, 0] *= s
    K[1, 1] *= s
    K[0, 2] = (K[0, 2] + 0.5) * s - 0.5
    K[1, 2] = (K[1, 2] + 0.5) * s - 0.5
    return K


def undistort_maps(K, dist, size: tuple[int, int], alpha: float | None = None):
    """Remap tables (and the new camera matrix) that undistort images of ``size`` (w, h).
    ``alpha`` None keeps K (what the sensor registration assumes); 0 crops to valid pixels only,
    1 keeps every source pixel."""
    K, dist = _as_K(K), _as_dist(dist)
    if alpha is None:
        newK = K.copy()
    else:
        newK, _ = cv2.getOptimalNewCameraMatrix(K, dist, size, alpha, size)
    m1, m2 = cv2.initUndistortRectifyMap(K, dist, None, newK, size, cv2.CV_16SC2)
    return m1, m2, newK


def undistort_image(img: np.ndarray, K, dist, alpha: float | None = None) -> np.ndarray:
    h, w = img.shape[:2]
    m1, m2, _ = undistort_maps(K, dist, (w, h), alpha)
    return cv2.remap(img, m1, m2, cv2.INTER_LINEAR)


def rectify_maps(K1, d1, K2, d2, R, T, size: tuple[int, int], alpha: float = 0.0):
    """Stereo rectification of a camera pair (``R``, ``T`` map camera-1 points into camera 2).
    Returns (maps1, maps2, Q)."""
    K1, K2, d1, d2 = _as_K(K1), _as_K(K2), _as_dist(d1), _as_dist(d2)
    R = np.asarray(R, np.float64).reshape(3, 3)
    T = np.asarray(T, np.float64).reshape(3, 1)
    R1, R2, P1, P2, Q, _, _ = cv2.stereoRectify(K1, d1, K2, d2, size, R, T, alpha=alpha)
    maps1 = cv2.initUndistortRectifyMap(K1, d1, R1, P1, size, cv2.CV_16SC2)
    maps2 = cv2.initUndistortRectifyMap(K2, d2, R2, P2, size, cv2.CV_16SC2)
    return maps1, maps2, Q


def rectify_pair(img1, img2, K1, d1, K2, d2, R, T, alpha: float = 0.0):
    h, w = img1.shape[:2]
    (a1, a2), (b1, b2), _ = rectify_maps(K1, d1, K2, d2, R, T, (w, h), alpha)
    return cv2.remap(img1, a1, a2, cv2.INTER_LINEAR), cv2.remap(img2, b1, b2, cv2.INTER_LINEAR)


def register_to_reference(img: np.ndarray, H, ref_size: tuple[int, int]) -> np.ndarray:
    """Warp a sensor image onto the reference view (``H`` maps sensor pixels to reference
    pixels at the working distance)."""
    return cv2.warpPerspective(img, np.asarray(H, np.float64).reshape(3, 3), tuple(ref_size),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def gain_map(grid, size: tuple[int, int]) -> np.ndarray:
    """The full-resolution float32 gain map (w, h) from the stored coarse grid (smooth by
    construction, so bilinear upsampling loses nothing)."""
    g = np.asarray(grid, np.float32)
    return cv2.resize(g, tuple(size), interpolation=cv2.INTER_LINEAR)


def apply_gain(img: np.ndarray, gain: np.ndarray, dark: float | np.ndarray = 0.0) -> np.ndarray:
    """Flat-field correction ``(img - dark) * gain``, clipped back into the input's dtype."""
    if gain.shape[:2] != img.shape[:2]:
        raise CalibrationError(f"gain map {gain.shape[:2]} does not fit image {img.shape[:2]}")
    g = gain if img.ndim == 2 else gain[..., None]
    out = (img.astype(np.float32) - np.float32(dark)) * g
    if np.issubdtype(img.dtype, np.integer):
        info = np.iinfo(img.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(img.dtype)
    return out.astype(img.dtype)


# ---------------------------------------------------------------------------------------------
# the loaded calibration
@dataclass
class CameraModel:
    name: str
    K: np.ndarray
    dist: np.ndarray
    size: tuple[int, int]                 # (w, h) the calibration was made at

    def at(self, size: tuple[int, int]) -> np.ndarray:
        return self.K if tuple(size) == self.size else scale_camera_matrix(self.K, self.size, size)


@dataclass
class Calibration:
    doc: dict | None
    calibrated: bool = True
    reason: str = ""
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def uncalibrated(cls, reason: str) -> "Calibration":
        return cls(doc=None, calibrated=False, reason=reason)

    # -- what the file holds ----------------------------------------------------------------
    @property
    def results(self) -> dict:
        return (self.doc or {}).get("results", {})

    @property
    def unit_serial(self) -> str | None:
        return (self.doc or {}).get("unit_serial")

    def cameras(self) -> list[str]:
        return sorted(self.results.get("intrinsics", {}))

    def camera(self, name: str) -> CameraModel:
        r = self.results.get("intrinsics", {}).get(name)
        if r is None:        # intrinsics the extrinsics step calibrated from its own views
            ex = self.results.get("extrinsics", {})
            r = (ex.get("cameras", {}).get(name, {}).get("intrinsics")
                 or ex.get("intrinsics_used", {}).get(name))
            r = r if r and "camera_matrix" in r else None
        if r is None:
            raise CalibrationError(f"no intrinsics for camera {name!r} in the calibration file "
                                   f"(has {self.cameras()})")
        return CameraModel(name, _as_K(r["camera_matrix"]), _as_dist(r["dist"]),
                           tuple(r["image_size"]))

    def extrinsics(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(R, T) mapping reference-camera coordinates into camera ``name``."""
        ex = self.results.get("extrinsics", {})
        if name == ex.get("reference"):
            return np.eye(3), np.zeros((3, 1))
        try:
            c = ex["cameras"][name]
        except KeyError:
            raise CalibrationError(f"no extrinsics for camera {name!r}") from None
        return np.asarray(c["R"], np.float64), np.asarray(c["T"], np.float64).reshape(3, 1)

    # -- operations (identity when uncalibrated) ---------------------------------------------
    def undistort(self, name: str, img: np.ndarray, alpha: float | None = None) -> np.ndarray:
        if not self.calibrated:
            return img
        h, w = img.shape[:2]
        key = ("undist", name, w, h, alpha)
        if key not in self._cache:
            cam = self.camera(name)
            self._cache[key] = undistort_maps(cam.at((w, h)), cam.dist, (w, h), alpha)
        m1, m2, _ = self._cache[key]
        return cv2.remap(img, m1, m2, cv2.INTER_LINEAR)

    def rectify(self, name1: str, name2: str, img1: np.ndarray, img2: np.ndarray,
                alpha: float = 0.0):
        """Rectify a pair of simultaneous views of cameras ``name1`` and ``name2``."""
        if not self.calibrated:
            return img1, img2
        h, w = img1.shape[:2]
        key = ("rect", name1, name2, w, h, alpha)
        if key not in self._cache:
            c1, c2 = self.camera(name1), self.camera(name2)
            R1, T1 = self.extrinsics(name1)
            R2, T2 = self.extrinsics(name2)
            R = R2 @ R1.T                      # camera-1 coordinates -> camera-2 coordinates
            T = T2 - R @ T1
            self._cache[key] = rectify_maps(c1.at((w, h)), c1.dist, c2.at((w, h)), c2.dist,
                                            R, T, (w, h), alpha)
        (a1, a2), (b1, b2), _ = self._cache[key]
        return cv2.remap(img1, a1, a2, cv2.INTER_LINEAR), cv2.remap(img2, b1, b2, cv2.INTER_LINEAR)

    def register(self, img: np.ndarray) -> np.ndarray:
        """The transmission-sensor frame warped onto the reference view (the undistorted
        reference view, ``undistort(reference, ...)``, when the reference had intrinsics)."""
        if not self.calibrated:
            return img
        reg = self.results.get("registration")
        if not reg:
            raise CalibrationError("the calibration file has no sensor registration")
        h, w = img.shape[:2]
        if [w, h] != list(reg["sensor_size"]):
            raise CalibrationError(f"sensor frame {w}x{h} does not match the registered "
                                   f"{reg['sensor_size'][0]}x{reg['sensor_size'][1]}")
        if reg.get("sensor_undistorted"):
            img = self.undistort(reg["sensor"], img)
        return register_to_reference(img, reg["H"], tuple(reg["ref_size"]))

    def flatten(self, img: np.ndarray) -> np.ndarray:
        """Flat-field correction of a transmission-sensor frame."""
        if not self.calibrated:
            return img
        ff = self.results.get("flatfield")
        if not ff:
            raise CalibrationError("the calibration file has no flat-field gain map")
        h, w = img.shape[:2]
        key = ("gain", w, h)
        if key not in self._cache:
            self._cache[key] = gain_map(ff["gain_grid"], (w, h))
        return apply_gain(img, self._cache[key], ff.get("dark_level", 0.0))


def _parse_utc(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def check_document(doc: dict, key: bytes, *, unit_serial: str | None = None,
                   max_age_s: float | None = None, now: float | None = None,
                   required: tuple[str, ...] = (), source: str = "calibration file") -> None:
    """Raise ``CalibrationError`` unless ``doc`` is a genuine, current calibration of this unit."""
    fmt = doc.get("format") if isinstance(doc, dict) else None
    if fmt != FORMAT:
        family = FORMAT.rsplit("/", 1)[0] + "/"
        if isinstance(fmt, str) and fmt.startswith(family):
            raise CalibrationError(f"{source} is stale: made for calibration format {fmt!r}, "
                                   f"this firmware reads {FORMAT!r}; recalibrate the unit",
                                   reason="stale")
        raise CalibrationError(f"{source} is not a {FORMAT} document", reason="corrupt")
    try:
        verify_document(doc, key, source)
    except CalibrationError as e:
        named = doc.get("unit_serial")
        hint = (f" (it names unit {named!r}, this unit is {unit_serial!r})"
                if unit_serial is not None and named != unit_serial else "")
        raise CalibrationError(f"{e}{hint}", reason="signature") from None
    if unit_serial is not None and doc.get("unit_serial") != unit_serial:
        raise CalibrationError(f"{source} belongs to unit {doc.get('unit_serial')!r}, "
                               f"not this unit {unit_serial!r}", reason="other_unit")
    if max_age_s is not None:
        try:
            signed = _parse_utc(doc["signed_utc"])
        except (KeyError, ValueError) as e:
            raise CalibrationError(f"{source} has no valid signing time",
                                   reason="corrupt") from e
        age = (time.time() if now is None else now) - signed
        if age > max_age_s:
            raise CalibrationError(f"{source} is stale: signed {age / 86400:.1f} days ago, the "
                                   f"limit is {max_age_s / 86400:.1f} days; recalibrate the unit",
                                   reason="stale")
        if age < -300:
            raise CalibrationError(f"{source} is signed {-age:.0f} s in the future: check the "
                                   f"unit's clock", reason="clock")
    missing = [s for s in required if s not in doc.get("results", {})]
    if missing:
        raise CalibrationError(f"{source} lacks the step(s) {missing}", reason="incomplete")


def load_calibration(path: str | os.PathLike, key: bytes, *, unit_serial: str | None = None,
                     max_age_s: float | None = None, now: float | None = None,
                     required: tuple[str, ...] = (), allow_uncalibrated: bool = False
                     ) -> Calibration:
    """Load, verify and check the unit's calibration file.

    ``unit_serial``: refuse a file made for another unit. ``max_age_s``: refuse a file signed
    longer ago. ``required``: steps that must be present (e.g. ``("intrinsics", "flatfield")``).
    With ``allow_uncalibrated=True`` a failure is logged and an uncalibrated ``Calibration``
    (identity operations) is returned instead of raising.
    """
    p = Path(path)
    try:
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CalibrationError(f"no calibration file at {p}: run the factory calibration "
                                   f"(palmgate-calibrate) for this unit",
                                   reason="missing") from None
        except (OSError, UnicodeDecodeError) as e:
            raise CalibrationError(f"cannot read calibration file {p}: {e}",
                                   reason="unreadable") from e
        try:
            doc = json.loads(text, parse_constant=_reject_constant)
        except ValueError as e:
            raise CalibrationError(f"calibration file {p} is not valid JSON "
                                   f"(corrupt or tampered): {e}", reason="corrupt") from e
        check_document(doc, key, unit_serial=unit_serial, max_age_s=max_age_s, now=now,
                       required=required, source=f"calibration file {p}")
        return Calibration(doc=doc)
    except CalibrationError as e:
        if not allow_uncalibrated:
            raise
        log.warning("running UNCALIBRATED (explicitly allowed): %s", e)
        return Calibration.uncalibrated(str(e))


def _reject_constant(name: str):
    raise ValueError(f"non-finite number {name}")

