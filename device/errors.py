"""Typed fault classes shared across the gate: callers branch on the class, never on message
text."""
from __future__ import annotations


class HardwareConfigError(RuntimeError):
    """Configured hardware or its library is absent or unusable: a configuration error with a
    message that names the device, not a crash.  Nothing imports a hardware library at module
    import time, so every adapter imports (and is tested) off a Pi."""
