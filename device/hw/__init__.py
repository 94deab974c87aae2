"""Board hardware behind small interfaces: Raspberry Pi cameras (``picamera2_source``) and GPIO
devices (``gpio``). Nothing here imports a hardware library at module import time, so every module
imports (and is tested) off a Pi; a missing library or device is a :class:`HardwareConfigError`
raised when the adapter starts, naming what is missing and how to fix it."""
from __future__ import annotations


class HardwareConfigError(RuntimeError):
    """Configured hardware or its library is absent or unusable: a configuration error with a
    message that names the device, not a crash."""
