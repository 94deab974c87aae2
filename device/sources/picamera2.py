"""Raspberry Pi cameras through picamera2, as :class:`device.sources.base.FrameSource` objects.

``picamera2`` (and ``libcamera``) are imported only when a source starts: they exist only on the
board (apt's ``python3-picamera2``; the PyPI wheel cannot import off a Pi), and this module must
import anywhere.

- :class:`Picamera2Source`: one camera, chosen by its libcamera Id (``Picamera2.global_camera_info()``
  lists them; indices change when cameras are re-plugged, Ids do not). Manual exposure and gain
  (``AeEnable`` off, ``ExposureTime`` in microseconds, ``AnalogueGain``) for the IR channel, an
  optional tuning file (e.g. ``imx219_noir.json`` for a NoIR module: ``Picamera2.load_tuning_file``),
  grey output from the Y plane.
- :class:`Picamera2Rig`: several cameras captured as one set. Where the cameras offer libcamera's
  ``SyncMode`` control (Raspberry Pi 5, recent libcamera; what ``rpicam-apps --sync`` uses) the
  first camera is the sync server and the others clients, and the first frames are taken only once
  the sync point is reached. In every case the set is matched by ``SensorTimestamp`` (one clock for
  all cameras of a board): a view that lags the newest by more than ``max_skew_ms`` is replaced by
  its next frame, up to ``max_attempts`` frames; the remaining skew is reported in the metadata.

Typical use::

    src = Picamera2Source("/base/axi/pcie@1000120000/rp1/i2c@80000/imx219@10",
                          size=(1280, 960), exposure_us=4000, gain=2.0,
                          tuning="imx219_noir.json", grayscale=True)
    src.start(); frame, meta = src.capture(); src.stop()
"""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Sequence

import numpy as np

from device.errors import CaptureTimeout, FrameError, HardwareConfigError

log = logging.getLogger(__name__)

INSTALL_HINT = ("picamera2 exists only on a Raspberry Pi: install apt's python3-picamera2 and "
                "make the venv with --system-site-packages (README, Installing on a Raspberry "
                "Pi 5)")

# libcamera's controls.rpi.SyncModeEnum values, used when the enum cannot be imported
SYNC_OFF, SYNC_SERVER, SYNC_CLIENT = 0, 1, 2

# metadata keys copied (renamed) into the FrameSource metadata
_META_KEYS = {"SensorTimestamp": "sensor_timestamp_ns", "ExposureTime": "exposure_us",
              "AnalogueGain": "analogue_gain", "DigitalGain": "digital_gain",
              "FrameDuration": "frame_duration_us", "Lux": "lux",
              "SyncReady": "sync_ready", "SyncTimer": "sync_timer_us"}


def _import_picamera2():
    try:
        from picamera2 import Picamera2
    except Exception as e:   # ImportError off a Pi; RuntimeError/OSError when libcamera is broken
        hint = INSTALL_HINT
        if "numpy" in str(e) or "binary incompatib" in str(e):
            # apt's simplejpeg is built for the system numpy 1.x; the venv's numpy is 2.x
            hint = ("apt's simplejpeg was built for another numpy than the venv's: run "
                    "`pip install simplejpeg` inside the venv (README, Installing on a "
                    "Raspberry Pi 5)")
        raise HardwareConfigError(f"cannot import picamera2 ({type(e).__name__}: {e}); "
                                  f"{hint}") from e
    return Picamera2


def _sync_enum():
    """(server, client) values of libcamera's ``controls.rpi.SyncModeEnum``."""
    try:
        from libcamera import controls
        enum = controls.rpi.SyncModeEnum
        return enum.Server, enum.Client
    except Exception:
        return SYNC_SERVER, SYNC_CLIENT


def list_cameras() -> list[dict]:
    """``Picamera2.global_camera_info()``: one dict per camera (``Id``, ``Model``, ``Location``,
    ``Rotation``, and ``Num`` on newer picamera2), in the order ``Picamera2(i)`` takes them."""
    return [dict(c) for c in _import_picamera2().global_camera_info()]


def resolve_camera(camera_id: str | None, infos: Sequence[dict]) -> int:
    """Position of the camera whose ``Id`` is ``camera_id`` in ``global_camera_info()``'s list:
    the number ``Picamera2()`` takes (old picamera2: the libcamera index, listed in that order;
    new: the list position, mapped to ``Num`` inside). ``None`` takes the only camera there is.
    A suffix of the Id is enough when it is unique (``"i2c@80000/imx219@10"``)."""
    if not infos:
        raise HardwareConfigError(f"no camera found by libcamera (cable, camera_auto_detect / "
                                  f"dtoverlay in config.txt?); wanted {camera_id or 'any'}")
    ids = [str(c.get("Id", "")) for c in infos]
    if camera_id is None:
        if len(infos) > 1:
            raise HardwareConfigError(f"{len(infos)} cameras attached: name one by its Id "
                                      f"({', '.join(ids)})")
        return 0
    if camera_id in ids:
        return ids.index(camera_id)
    hits = [i for i, cid in enumerate(ids) if cid.endswith(camera_id)]
    if len(hits) == 1:
        return hits[0]
    raise HardwareConfigError(f"camera Id {camera_id!r} {'is ambiguous' if hits else 'not found'};"
                              f" attached: {', '.join(ids) or 'none'}")


def load_tuning(tuning: str | os.PathLike | dict | None, picamera2_cls=None) -> dict | None:
    """A tuning file as the dict ``Picamera2(tuning=...)`` takes: a dict as is; a path that exists
    read from there; a bare name (``"imx219_noir.json"``) through ``Picamera2.load_tuning_file``,
    which searches libcamera's folders for the board's ISP (vc4 on Pi 4, pisp on Pi 5)."""
    if tuning is None or isinstance(tuning, dict):
        return tuning
    path = os.fspath(tuning)
    if os.path.isfile(path):
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise HardwareConfigError(f"tuning file {path}: {e}") from e
    cls = picamera2_cls or _import_picamera2()
    try:
        return cls.load_tuning_file(os.path.basename(path),
                                    dir=os.path.dirname(path) or None)
    except Exception as e:
        raise HardwareConfigError(f"tuning file {path!r} not found by "
                                  f"Picamera2.load_tuning_file: {e}") from e


class Picamera2Source:
    """One Raspberry Pi camera as a FrameSource.

    ``camera_id``: the libcamera Id (or a unique suffix); None when one camera is attached.
    ``size``: main stream (width, height). ``grayscale``: YUV420 main stream, its Y plane is the
    frame (uint8, HxW); otherwise BGR uint8 HxWx3 (picamera2's ``RGB888``, OpenCV order).
    ``exposure_us`` / ``gain``: manual exposure (``AeEnable`` False) when either is given.
    ``tuning``: tuning file name, path or dict (NoIR: ``"imx219_noir.json"``).
    ``mode``: ``"video"`` (free-running, many buffers: bursts and sync) or ``"still"``.
    ``frame_rate``: fixed frame rate (``FrameRate`` control, needed by the sync algorithm).
    ``frame_timeout_s``: a camera that delivers no frame in this time raises ``FrameError``.
    ``controls``: further libcamera controls. ``picamera2``: the ``Picamera2`` class (tests).
    """

    def __init__(self, camera_id: str | None = None, *, size: tuple[int, int] = (1280, 960),
                 grayscale: bool = False, exposure_us: int | None = None,
                 gain: float | None = None, tuning: str | os.PathLike | dict | None = None,
                 mode: str = "video", frame_rate: float | None = None,
                 buffer_count: int | None = None, frame_timeout_s: float = 1.0,
                 warmup_frames: int = 0, controls: dict | None = None, picamera2=None,
                 name: str | None = None):
        if mode not in ("video", "still"):
            raise ValueError(f"picamera2 mode {mode!r}: video or still")
        if exposure_us is not None and exposure_us <= 0:
            raise ValueError(f"exposure_us {exposure_us} must be > 0")
        if gain is not None and gain < 1.0:
            raise ValueError(f"analogue gain {gain} must be >= 1.0")
        self.camera_id = camera_id
        self.name = name or camera_id or "picamera2"
        self.size = (int(size[0]), int(size[1]))
        self.grayscale = grayscale
        self.exposure_us, self.gain = exposure_us, gain
        self.tuning = tuning
        self.mode = mode
        self.frame_rate = frame_rate
        self.buffer_count = buffer_count
        self.frame_timeout_s = frame_timeout_s
        self.warmup_frames = warmup_frames
        self.extra_controls = dict(controls or {})
        self._cls = picamera2
        self.cam = None
        self.info: dict = {}
        self.index: int | None = None
        self.sync_role: str | None = None      # "server" / "client" once a rig sets it
        self._sync_value = None
        self._n = 0

    # -- configuration --------------------------------------------------------------------
    def manual_controls(self) -> dict:
        """``AeEnable`` False with ``ExposureTime`` (int us) and ``AnalogueGain``, as given."""
        c: dict[str, Any] = {}
        if self.exposure_us is not None or self.gain is not None:
            c["AeEnable"] = False
            if self.exposure_us is not None:
                c["ExposureTime"] = int(self.exposure_us)
            if self.gain is not None:
                c["AnalogueGain"] = float(self.gain)
        return c

    def _controls(self) -> dict:
        c = self.manual_controls()
        if self.frame_rate:
            c["FrameRate"] = float(self.frame_rate)
        if self._sync_value is not None:
            c["SyncMode"] = self._sync_value
        c.update(self.extra_controls)
        return c

    def supports(self, control: str) -> bool:
        """Whether the opened camera lists ``control`` in ``camera_controls``."""
        return self.cam is not None and control in (self.cam.camera_controls or {})

    def open(self) -> None:
        """Find the camera by Id and open it (with the tuning); no streaming yet."""
        if self.cam is not None:
            return
        cls = self._cls or _import_picamera2()
        self._cls = cls
        infos = [dict(c) for c in cls.global_camera_info()]
        self.index = resolve_camera(self.camera_id, infos)
        self.info = infos[self.index]
        tuning = load_tuning(self.tuning, cls)
        try:
            self.cam = cls(self.index, tuning=tuning) if tuning is not None else cls(self.index)
        except Exception as e:
            raise HardwareConfigError(f"camera {self.info.get('Id')} could not be opened (in "
                                      f"use by another process?): {e}") from e

    def set_sync_role(self, role: str | None) -> None:
        """``"server"``, ``"client"`` or None: the libcamera SyncMode this camera runs (before
        ``start``). Only a camera that lists ``SyncMode`` takes it."""
        server, client = _sync_enum()
        self.sync_role = role
        self._sync_value = {"server": server, "client": client, None: None}[role]

    def configure(self) -> None:
        cam = self.cam
        fmt = "YUV420" if self.grayscale else "RGB888"
        kw: dict[str, Any] = {"main": {"size": self.size, "format": fmt},
                              "controls": self._controls()}
        if self.buffer_count:
            kw["buffer_count"] = int(self.buffer_count)
        make = (cam.create_video_configuration if self.mode == "video"
                else cam.create_still_configuration)
        try:
            cam.configure(make(**kw))
        except Exception as e:
            raise HardwareConfigError(f"camera {self.info.get('Id')}: configuration {kw} "
                                      f"refused: {e}") from e

    # -- FrameSource ----------------------------------------------------------------------
    def start(self, warmup: bool = True) -> None:
        """Open, configure and start the camera; on any failure it is closed again."""
        self.open()
        try:
            self.configure()
            try:
                self.cam.start()
            except Exception as e:
                raise FrameError(f"camera {self.info.get('Id')} did not start: {e}") from e
            manual = self.manual_controls()
            if manual:                      # again at run time: some stacks drop config controls
                self.cam.set_controls(manual)
            self._n = 0
            if warmup:
                self.warm_up()
        except BaseException:
            self.stop()
            raise

    def warm_up(self) -> None:
        """Drop ``warmup_frames`` frames (let exposure settle after start)."""
        for _ in range(self.warmup_frames):
            self.release(self.capture_request())

    def set_exposure(self, exposure_us: int | None = None, gain: float | None = None) -> None:
        """Change manual exposure/gain while streaming (takes effect a few frames later)."""
        if exposure_us is not None:
            self.exposure_us = exposure_us
        if gain is not None:
            self.gain = gain
        if self.cam is not None and self.manual_controls():
            self.cam.set_controls(self.manual_controls())

    def capture_request(self, sync: bool = False):
        """The next completed request (the caller releases it); ``FrameError`` on silence."""
        if self.cam is None:
            raise FrameError(f"{self.name}: capture before start()")
        try:
            if sync:
                return self.cam.capture_sync_request(wait=self.frame_timeout_s)
            return self.cam.capture_request(wait=self.frame_timeout_s)
        except Exception as e:      # picamera2 raises TimeoutError from its job on silence
            raise CaptureTimeout(f"camera {self.info.get('Id')} delivered no frame within "
                             f"{self.frame_timeout_s} s: {type(e).__name__}: {e}") from e

    @staticmethod
    def release(request) -> None:
        try:
            request.release()
        except Exception as e:
            log.warning("picamera2 request release failed: %s", e)

    @staticmethod
    def request_timestamp(request) -> int:
        md = request.get_metadata()
        ts = md.get("SensorTimestamp")
        if ts is None:
            raise FrameError("frame metadata has no SensorTimestamp")
        return int(ts)

    def frame_from_request(self, request) -> tuple[np.ndarray, dict[str, Any]]:
        """Array and metadata of a request (does not release it)."""
        try:
            arr = request.make_array("main")
            md = dict(request.get_metadata())
        except Exception as e:
            raise FrameError(f"camera {self.info.get('Id')}: unreadable frame: {e}") from e
        arr = np.asarray(arr)
        w, h = self.size
        if self.grayscale:
            if arr.ndim != 2 or arr.shape[0] < h or arr.shape[1] < w:
                raise FrameError(f"camera {self.info.get('Id')}: YUV420 frame of shape "
                                 f"{arr.shape}, expected at least ({h * 3 // 2}, {w})")
            arr = arr[:h, :w].copy()       # the Y plane
        else:
            if arr.ndim != 3 or arr.shape[2] < 3:
                raise FrameError(f"camera {self.info.get('Id')}: frame of shape {arr.shape}")
            arr = np.ascontiguousarray(arr[:, :w, :3])
        meta: dict[str, Any] = {"source": "picamera2", "camera_id": self.info.get("Id"),
                                "camera_index": self.index, "model": self.info.get("Model"),
                                "name": self.name, "index": self._n, "timestamp": time.time()}
        for k, v in _META_KEYS.items():
            if k in md:
                meta[v] = md[k]
        meta["metadata"] = md
        self._n += 1
        return arr, meta

    def capture(self) -> tuple[np.ndarray, dict[str, Any]]:
        req = self.capture_request()
        try:
            return self.frame_from_request(req)
        finally:
            self.release(req)

    def stop(self) -> None:
        cam, self.cam = self.cam, None
        if cam is None:
            return
        try:
            cam.stop()
        except Exception as e:
            log.warning("camera %s: stop failed: %s", self.info.get("Id"), e)
        try:
            cam.close()
        except Exception as e:
            log.warning("camera %s: close failed: %s", self.info.get("Id"), e)

    def describe(self) -> dict:
        """For the status report."""
        return {"kind": "picamera2", "name": self.name, "camera_id": self.info.get("Id",
                                                                                   self.camera_id),
                "model": self.info.get("Model"), "running": self.cam is not None,
                "size": list(self.size), "grayscale": self.grayscale,
                "exposure_us": self.exposure_us, "gain": self.gain,
                "tuning": self.tuning if not isinstance(self.tuning, dict) else "dict",
                "sync_role": self.sync_role, "frames": self._n}


_SPEC_TYPES = {"exposure_us": int, "gain": float, "tuning": str, "mode": str,
               "frame_rate": float, "buffer_count": int, "frame_timeout_s": float,
               "warmup_frames": int, "name": str}


def open_camera(spec: str, grayscale: bool = False, **kw) -> Picamera2Source:
    """A source from a config string: ``ID[?key=value&...]`` (the part after ``picamera2:``),
    keys ``size=WxH``, ``grayscale=0|1``, ``exposure_us``, ``gain``, ``tuning``, ``mode``,
    ``frame_rate``, ``buffer_count``, ``frame_timeout_s``, ``warmup_frames``, ``name``;
    keyword arguments override. An empty Id takes the only camera there is. Example:
    ``/base/axi/pcie@1000120000/rp1/i2c@80000/imx219@10?exposure_us=4000&gain=2&grayscale=1``."""
    from urllib.parse import parse_qsl
    cam_id, _, query = spec.partition("?")
    opts: dict[str, Any] = {"grayscale": grayscale}
    for k, v in parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)):
        if k == "size":
            try:
                w, h = (int(x) for x in v.lower().split("x"))
            except ValueError:
                raise ValueError(f"picamera2 spec {spec!r}: size={v!r}, expected WxH") from None
            opts["size"] = (w, h)
        elif k == "grayscale":
            opts["grayscale"] = v.lower() in ("1", "true", "yes", "on")
        elif k in _SPEC_TYPES:
            try:
                opts[k] = _SPEC_TYPES[k](v)
            except ValueError:
                raise ValueError(f"picamera2 spec {spec!r}: {k}={v!r} is not a "
                                 f"{_SPEC_TYPES[k].__name__}") from None
        else:
            raise ValueError(f"picamera2 spec {spec!r}: unknown option {k!r} (known: size, "
                             f"grayscale, {', '.join(_SPEC_TYPES)})")
    opts.update(kw)
    return Picamera2Source(cam_id or None, **opts)


class Picamera2Rig:
    """Several :class:`Picamera2Source` cameras captured as one time-matched set.

    ``sync``: ``"auto"`` (libcamera SyncMode when every camera lists it, else software matching),
    ``"libcamera"`` (required: a camera without it is a ``HardwareConfigError``), or
    ``"software"``. ``max_skew_ms``: the largest spread of ``SensorTimestamp`` across a set.
    ``strict``: a set that stays above it after ``max_attempts`` extra frames raises
    ``FrameError``; otherwise it is returned with ``synced`` False.

    ``capture_all()`` returns ``(list of frames, metadata)``; ``capture()`` (the FrameSource call)
    stacks them into one (K, H, W[, 3]) array and needs equal shapes. Metadata: ``views`` (each
    camera's metadata), ``skew_ns``, ``synced``, ``sync`` (the method used), ``attempts``.
    """

    def __init__(self, sources: Sequence[Picamera2Source], *, sync: str = "auto",
                 max_skew_ms: float = 5.0, max_attempts: int = 8, strict: bool = True):
        if not sources:
            raise ValueError("a camera rig needs at least one camera")
        if sync not in ("auto", "libcamera", "software"):
            raise ValueError(f"sync {sync!r}: auto, libcamera or software")
        ids = [s.camera_id for s in sources]
        if len(set(ids)) != len(ids):
            raise ValueError(f"a camera appears twice in the rig: {ids}")
        self.sources = list(sources)
        self.sync = sync
        self.max_skew_ns = int(max_skew_ms * 1e6)
        self.max_attempts = max_attempts
        self.strict = strict
        self.method: str | None = None
        self.last_skew_ns: int | None = None
        self._n = 0
        self._started = False

    def start(self) -> None:
        try:
            for s in self.sources:
                s.open()
            use_lib = self.sync != "software" and len(self.sources) > 1 and all(
                s.supports("SyncMode") for s in self.sources)
            if self.sync == "libcamera" and not use_lib and len(self.sources) > 1:
                missing = [s.name for s in self.sources if not s.supports("SyncMode")]
                raise HardwareConfigError(f"sync = libcamera, but {', '.join(missing)} list no "
                                          f"SyncMode control (needs a Pi 5 and libcamera with "
                                          f"the rpi sync algorithm); use sync = auto or software")
            self.method = "libcamera" if use_lib else "software"
            if use_lib:
                # clients first: they wait for the server's "now"
                for s in self.sources[1:]:
                    s.set_sync_role("client")
                self.sources[0].set_sync_role("server")
                for s in self.sources[1:] + self.sources[:1]:
                    s.start(warmup=False)
                for s in self.sources:        # wait until each camera reached the sync point
                    s.release(s.capture_request(sync=True))
                for s in self.sources:
                    s.warm_up()
            else:
                for s in self.sources:
                    s.start()
        except BaseException:
            self.stop()
            raise
        self._started = True
        self._n = 0

    def capture_all(self) -> tuple[list[np.ndarray], dict[str, Any]]:
        if not self._started:
            raise FrameError("Picamera2Rig.capture before start()")
        reqs: list = [None] * len(self.sources)
        try:
            ts = []
            for i, s in enumerate(self.sources):
                reqs[i] = s.capture_request()
                ts.append(s.request_timestamp(reqs[i]))
            attempts = 0
            while max(ts) - min(ts) > self.max_skew_ns and attempts < self.max_attempts:
                newest = max(ts)
                for i, s in enumerate(self.sources):     # replace every lagging view
                    if newest - ts[i] > self.max_skew_ns:
                        s.release(reqs[i])
                        reqs[i] = None
                        reqs[i] = s.capture_request()
                        ts[i] = s.request_timestamp(reqs[i])
                attempts += 1
            skew = int(max(ts) - min(ts))
            synced = skew <= self.max_skew_ns
            self.last_skew_ns = skew
            if not synced and self.strict:
                raise FrameError(f"camera views {skew / 1e6:.2f} ms apart after {attempts} "
                                 f"extra frames (max_skew_ms {self.max_skew_ns / 1e6:g})")
            frames, views = [], []
            for s, r in zip(self.sources, reqs):
                f, m = s.frame_from_request(r)
                frames.append(f)
                views.append(m)
        finally:
            for s, r in zip(self.sources, reqs):
                if r is not None:
                    s.release(r)
        meta = {"source": "picamera2-rig", "index": self._n, "timestamp": time.time(),
                "views": views, "skew_ns": skew, "skew_ms": skew / 1e6, "synced": synced,
                "sync": self.method, "attempts": attempts,
                "camera_ids": [s.info.get("Id") for s in self.sources]}
        self._n += 1
        return frames, meta

    def capture(self) -> tuple[np.ndarray, dict[str, Any]]:
        frames, meta = self.capture_all()
        shapes = {f.shape for f in frames}
        if len(shapes) != 1:
            raise FrameError(f"rig views differ in shape {sorted(shapes)}: use capture_all()")
        return np.stack(frames), meta

    def stop(self) -> None:
        self._started = False
        for s in self.sources:
            s.stop()

    def describe(self) -> dict:
        return {"kind": "picamera2-rig", "sync": self.method or self.sync,
                "max_skew_ms": self.max_skew_ns / 1e6, "last_skew_ms":
                None if self.last_skew_ns is None else self.last_skew_ns / 1e6,
                "cameras": [s.describe() for s in self.sources]}
