"""Typed fault classes shared across the gate: callers branch on the class, never on message
text."""
from __future__ import annotations


class HardwareConfigError(RuntimeError):
    """Configured hardware or its library is absent or unusable: a configuration error with a
    message that names the device, not a crash.  Nothing imports a hardware library at module
    import time, so every adapter imports (and is tested) off a Pi."""


class FrameError(RuntimeError):
    """A frame could not be read (unreadable file, camera gone, source not started).  ``reason``
    is the deny reason the gate records for it."""
    reason = "camera_error"


class CorruptFrameError(FrameError):
    """A frame or its metadata arrived but cannot be decoded."""
    reason = "corrupt_frame"


class CaptureTimeout(FrameError):
    """A camera delivered no frame within its time limit."""
    reason = "camera_timeout"


class RelayError(RuntimeError):
    """The relay line failed: no answer, a wrong answer, an exception response, a closed port."""


class RelayLineError(RelayError):
    """The line itself failed (the port cannot be opened, written or read; silence; a garbled
    answer): reopening it may help, and :class:`device.relays.supervisor.RelaySupervisor`
    does so on a timer."""


class RelayRefused(RelayError):
    """The board answered, and said no (a Modbus exception response): the line is up, so
    reopening it cannot help."""
