"""Presentation bursts: K visible views + 1 transmission-sensor frame, and where they come from.

``BurstSource``: ``start()``, ``capture_burst() -> Burst`` (raises ``EndOfFrames`` when a finite
source is done, ``FrameError`` when a camera fails), ``stop()``.

- :class:`ReplaySource` -- recorded bursts on disk, one folder per burst::

      DIR/<burst>/view_0.png .. view_<K-1>.png, sensor.png, burst.json (optional metadata),
                  sensor_1.png, sensor_2.png ... (optional: further sensor frames, what the
                  gate's second look re-captures; device/gate/second_look.py)

  It is also a plain :class:`device.sources.base.FrameSource` (``capture()`` yields the frames of
  the bursts one after another with ``role``/``view``/``burst`` in the metadata).
- :class:`CameraBurstSource` -- K FrameSources (OpenCV, picamera2, folders) + a sensor one,
  each capture bounded by a timeout on the camera's own capture thread: a camera that stops
  delivering is a ``FrameError`` (``CaptureTimeout``), and never costs a thread per fault.
- the synthetic source for the demo is :mod:`device.synth.source`.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

import cv2
import numpy as np

from device.errors import CorruptFrameError
from device.sources.base import EndOfFrames, FrameError, FrameSource
from device.sources.worker import CaptureWorker


@dataclass
class Burst:
    views: list                      # K images (BGR or grey uint8); an entry may be None
    sensor: np.ndarray | None        # transmission-sensor frame (grey)
    meta: dict = field(default_factory=dict)   # e.g. burst id, label, claimed user id
    more_sensor: Callable[[int], list] | None = field(default=None, repr=False)
    # ``more_sensor(k)`` -> k further sensor frames of the same presentation (a re-capture;
    # None: the source cannot): the gate's second look (device/gate/second_look.py)


@runtime_checkable
class BurstSource(Protocol):
    def start(self) -> None: ...

    def capture_burst(self) -> Burst: ...

    def stop(self) -> None: ...


def sensor_u8(frame: np.ndarray) -> np.ndarray:
    """A sensor frame as the replay layout stores it: uint8 as it is, a float frame in [0, 1]
    scaled to 0..255 and rounded."""
    if frame.dtype == np.uint8:
        return frame
    return np.clip(np.round(frame * 255.0), 0, 255).astype(np.uint8)


def write_burst(folder, burst: Burst, sensor_frames: list | None = None) -> Path:
    """Record a burst in the replay layout (PNG, lossless); ``sensor_frames``: further sensor
    frames of the presentation, written as sensor_1.png, sensor_2.png ..."""
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    for k, v in enumerate(burst.views):
        if v is not None and not cv2.imwrite(str(d / f"view_{k}.png"), v):
            raise OSError(f"could not write {d / f'view_{k}.png'}")
    frames = [("sensor.png", burst.sensor)] if burst.sensor is not None else []
    frames += [(f"sensor_{k}.png", s) for k, s in enumerate(sensor_frames or [], 1)]
    for name, s in frames:
        if not cv2.imwrite(str(d / name), sensor_u8(s)):
            raise OSError(f"could not write {d / name}")
    (d / "burst.json").write_text(json.dumps(burst.meta, indent=1, default=str))
    return d


def _read(path: Path, flag) -> np.ndarray:
    if not path.exists():
        raise FrameError(f"missing frame {path}")
    img = cv2.imread(str(path), flag)
    if img is None:
        raise CorruptFrameError(f"corrupt frame {path} (cannot decode)")
    return img


def read_burst(folder, views: int | None = None) -> Burst:
    """One burst folder -> :class:`Burst`. A view file that cannot be decoded raises
    ``FrameError`` naming it (the gate denies with reason ``corrupt_frame``)."""
    d = Path(folder)
    if not d.is_dir():
        raise FrameError(f"no burst folder {d}")
    names = sorted(d.glob("view_*.png"), key=lambda p: int(p.stem.split("_")[1]))
    if views is not None:
        names = [d / f"view_{k}.png" for k in range(views)]
    imgs = [_read(p, cv2.IMREAD_COLOR) for p in names]
    sensor = _read(d / "sensor.png", cv2.IMREAD_GRAYSCALE) if (d / "sensor.png").exists() \
        else None
    meta = {}
    if (d / "burst.json").exists():
        try:
            meta = json.loads((d / "burst.json").read_text())
        except json.JSONDecodeError as e:
            raise CorruptFrameError(f"corrupt burst metadata {d / 'burst.json'}: {e}") from None
    meta = dict(meta, burst=d.name, path=str(d))
    more = recorded_sensor(d) if (d / "sensor_1.png").exists() else None
    return Burst(imgs, sensor, meta, more)


def recorded_sensor(d: Path) -> Callable[[int], list]:
    """``more(k)`` of a recorded burst: its sensor_1.png .. sensor_<k>.png, read when asked (a
    missing or undecodable frame raises, and the second look denies)."""
    def more(k: int) -> list:
        return [_read(d / f"sensor_{j}.png", cv2.IMREAD_GRAYSCALE) for j in range(1, k + 1)]
    return more


class ReplaySource:
    """Recorded bursts of a folder (sub-folders sorted by name), or a list of folders."""

    def __init__(self, root, views: int | None = None, loop: bool = False):
        if isinstance(root, (list, tuple)):
            self.folders = [Path(p) for p in root]
            self.spec = f"{len(self.folders)} burst folders"
        else:
            r = Path(root)
            self.folders = [r] if (r / "view_0.png").exists() else \
                sorted(p for p in r.iterdir() if p.is_dir()) if r.is_dir() else []
            self.spec = str(r)
        self.views, self.loop = views, loop
        self._i: int | None = None
        self._frames: list = []

    def __len__(self) -> int:
        return len(self.folders)

    def start(self) -> None:
        if not self.folders:
            raise FrameError(f"no recorded bursts in {self.spec}")
        self._i = 0
        self._frames = []

    def capture_burst(self) -> Burst:
        if self._i is None:
            raise FrameError("ReplaySource.capture_burst() before start()")
        if self._i >= len(self.folders):
            if not self.loop:
                raise EndOfFrames(self.spec)
            self._i = 0
        folder = self.folders[self._i]
        self._i += 1
        return read_burst(folder, self.views)

    # -- FrameSource view: the frames of the bursts in order -----------------------------
    def capture(self) -> tuple[np.ndarray, dict[str, Any]]:
        if not self._frames:
            b = self.capture_burst()
            fr = [(v, {"role": "view", "view": k}) for k, v in enumerate(b.views)]
            if b.sensor is not None:
                fr.append((b.sensor, {"role": "sensor"}))
            self._frames = [(f, dict(m, burst=b.meta["burst"], timestamp=time.time(),
                                     source="replay")) for f, m in fr]
        return self._frames.pop(0)

    def stop(self) -> None:
        self._i = None


def read_bursts(path, views: int | None = None) -> list[Burst]:
    """Every recorded burst of ``path`` (one burst folder, or a folder of them), in order."""
    src = ReplaySource(path, views=views)
    src.start()
    return [src.capture_burst() for _ in range(len(src))]


class CameraBurstSource:
    """K visible FrameSources + one sensor FrameSource -> bursts; every capture is bounded by
    ``timeout_s``. A camera that stops delivering raises ``FrameError`` (the loop denies with
    ``camera_timeout`` and keeps trying: it recovers when frames come again). Each camera is
    called from one capture thread of its own (device/sources/worker.py): a driver call that
    never returns holds that thread only, and the camera answers ``camera_timeout`` until the
    call returns -- no thread piles up per fault, and the late frame is dropped."""

    def __init__(self, views: list[FrameSource], sensor: FrameSource | None,
                 timeout_s: float = 2.0):
        self.view_sources, self.sensor_source, self.timeout_s = list(views), sensor, timeout_s
        self._workers = [CaptureWorker(s.capture, f"camera {k}")
                         for k, s in enumerate(self.view_sources)]
        self._sensor_worker = CaptureWorker(sensor.capture, "sensor camera") \
            if sensor is not None else None
        self._n = 0

    def start(self) -> None:
        for s in self.view_sources + ([self.sensor_source] if self.sensor_source else []):
            s.start()

    def capture_burst(self) -> Burst:
        imgs = []
        for w in self._workers:
            img, _ = w.call(self.timeout_s)
            imgs.append(img)
        sensor = None
        if self._sensor_worker is not None:
            sensor, _ = self._sensor_worker.call(self.timeout_s)
        self._n += 1
        return Burst(imgs, sensor, {"burst": f"live-{self._n:06d}", "timestamp": time.time()},
                     self._recapture if self._sensor_worker is not None else None)

    def _recapture(self, k: int) -> list:
        """k more sensor frames, each capture bounded like the burst's (the second look)."""
        return [self._sensor_worker.call(self.timeout_s)[0] for _ in range(k)]

    def stuck(self) -> dict:
        """Cameras whose last driver call has not returned: {name: seconds}."""
        ws = self._workers + ([self._sensor_worker] if self._sensor_worker else [])
        return {w.what: round(w.stuck_s, 1) for w in ws if w.stuck_s is not None}

    def stop(self) -> None:
        for s in self.view_sources + ([self.sensor_source] if self.sensor_source else []):
            try:
                s.stop()
            except Exception:       # noqa: BLE001 - stopping must reach every camera
                pass
        for w in self._workers + ([self._sensor_worker] if self._sensor_worker else []):
            w.close()


def open_frame_source(spec: str, grayscale: bool = False) -> FrameSource:
    """``picamera2:<Id>`` through the hardware adapter where it is installed
    (device/relays/), anything else through :func:`device.sources.base.open_source`."""
    kind, _, rest = spec.partition(":")
    if kind == "picamera2":
        try:
            from device.sources.picamera2 import open_camera   # the hardware side's adapter
        except ImportError as e:
            raise ValueError(f"source {spec!r}: the picamera2 adapter (device/relays) is not "
                             f"available here: {e}") from None
        return open_camera(rest, grayscale=grayscale)
    from device.sources.base import open_source
    return open_source(spec, grayscale=grayscale)
