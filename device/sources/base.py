"""Frame sources: one small protocol for cameras, recorded frames and anything else that yields
images. ``start()``, then ``capture() -> (frame, metadata)`` until done, then ``stop()``.

Adapters here need only OpenCV: ``FolderSource`` replays images of a folder or glob in order,
``OpenCVSource`` reads a V4L2/UVC camera (or a video file) through ``cv2.VideoCapture``.
Hardware-specific adapters (picamera2) live in their own modules and import their library there.
"""
from __future__ import annotations

import glob as _glob
import os
import time
from pathlib import Path
from typing import Any, Iterator, Protocol, runtime_checkable

import cv2
import numpy as np

from device.errors import CaptureTimeout, CorruptFrameError, FrameError  # noqa: F401

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm")


class EndOfFrames(EOFError):
    """A finite source has no more frames."""


@runtime_checkable
class FrameSource(Protocol):
    def start(self) -> None: ...

    def capture(self) -> tuple[np.ndarray, dict[str, Any]]: ...

    def stop(self) -> None: ...


def frames(source: FrameSource, limit: int | None = None) -> Iterator[tuple[np.ndarray, dict]]:
    """Iterate ``source`` (started and stopped here) until it ends or ``limit`` frames."""
    source.start()
    try:
        n = 0
        while limit is None or n < limit:
            try:
                yield source.capture()
            except EndOfFrames:
                return
            n += 1
    finally:
        source.stop()


def expand_images(spec: str | os.PathLike) -> list[Path]:
    """Sorted image paths of a folder (its image files) or a glob pattern (or one file)."""
    s = str(spec)
    p = Path(s)
    if p.is_dir():
        paths = [q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES]
    elif any(ch in s for ch in "*?["):
        paths = [Path(q) for q in _glob.glob(s)]
    else:
        paths = [p] if p.exists() else []
    return sorted(paths)


class FolderSource:
    """Replays the images of a folder or glob, sorted by name; metadata names the file."""

    def __init__(self, spec: str | os.PathLike, grayscale: bool = False, loop: bool = False):
        self.spec = str(spec)
        self.grayscale = grayscale
        self.loop = loop
        self.paths = expand_images(spec)
        self._i: int | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def start(self) -> None:
        if not self.paths:
            raise FrameError(f"no images match {self.spec!r}")
        self._i = 0

    def capture(self) -> tuple[np.ndarray, dict[str, Any]]:
        if self._i is None:
            raise FrameError("FolderSource.capture() before start()")
        if self._i >= len(self.paths):
            if not self.loop:
                raise EndOfFrames(self.spec)
            self._i = 0
        path = self.paths[self._i]
        index = self._i
        self._i += 1
        flag = cv2.IMREAD_GRAYSCALE if self.grayscale else cv2.IMREAD_UNCHANGED
        img = cv2.imread(str(path), flag)
        if img is None:
            raise FrameError(f"cannot read image {path}")
        return img, {"index": index, "path": str(path), "name": path.name,
                     "timestamp": time.time(), "source": "folder"}

    def stop(self) -> None:
        self._i = None


class OpenCVSource:
    """A camera (V4L2/UVC index or /dev/videoN) or a video file through ``cv2.VideoCapture``."""

    def __init__(self, device: int | str = 0, width: int | None = None,
                 height: int | None = None, fps: float | None = None,
                 fourcc: str | None = None, backend: int | None = None,
                 grayscale: bool = False, warmup: int = 0):
        self.device = device
        self.width, self.height, self.fps, self.fourcc = width, height, fps, fourcc
        if backend is None:
            is_camera = isinstance(device, int) or str(device).startswith("/dev/video")
            backend = cv2.CAP_V4L2 if is_camera and os.name == "posix" else cv2.CAP_ANY
        self.backend = backend
        self.grayscale = grayscale
        self.warmup = warmup
        self._cap: cv2.VideoCapture | None = None
        self._n = 0

    def start(self) -> None:
        cap = cv2.VideoCapture(self.device, self.backend)
        if not cap.isOpened():
            cap.release()
            raise FrameError(f"cannot open camera/video {self.device!r}")
        if self.fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.fourcc))
        if self.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        if self.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        if self.fps:
            cap.set(cv2.CAP_PROP_FPS, self.fps)
        self._cap, self._n = cap, 0
        for _ in range(self.warmup):            # let auto-exposure settle
            cap.read()

    def capture(self) -> tuple[np.ndarray, dict[str, Any]]:
        if self._cap is None:
            raise FrameError("OpenCVSource.capture() before start()")
        ok, frame = self._cap.read()
        if not ok or frame is None:
            if isinstance(self.device, str) and not self.device.startswith("/dev/"):
                raise EndOfFrames(self.device)   # a video file ran out
            raise FrameError(f"camera {self.device!r} returned no frame")
        if self.grayscale and frame.ndim == 3:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        meta = {"index": self._n, "timestamp": time.time(), "source": "opencv",
                "device": self.device,
                "pos_msec": float(self._cap.get(cv2.CAP_PROP_POS_MSEC))}
        self._n += 1
        return frame, meta

    def stop(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def open_source(spec: str, grayscale: bool = False) -> FrameSource:
    """A source from a short spec: ``folder:GLOB``, ``opencv:0``, ``opencv:/dev/video2``,
    ``opencv:clip.avi``; a bare glob/folder means ``folder:``, a bare integer ``opencv:``."""
    kind, sep, rest = spec.partition(":")
    if sep and kind == "folder":
        return FolderSource(rest, grayscale=grayscale)
    if sep and kind == "opencv":
        dev: int | str = int(rest) if rest.isdigit() else rest
        return OpenCVSource(dev, grayscale=grayscale)
    if spec.isdigit():
        return OpenCVSource(int(spec), grayscale=grayscale)
    return FolderSource(spec, grayscale=grayscale)
