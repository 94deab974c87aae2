"""What the configuration schema is made of: an option (:class:`Opt`) and the error a bad value
raises (:class:`ConfigError`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ConfigError(ValueError):
    """A configuration key is unknown, of the wrong type or out of range (the message names it)."""


@dataclass(frozen=True)
class Opt:
    default: Any
    doc: str
    type: type | tuple = str
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    pin: bool = False          # a GPIO pin spec: int (BCM) or "GPIO17" / "BCM17" / "BOARD11"


def pin_id(pin) -> str:
    """One spelling per physical BCM pin (17, "GPIO17", "BCM17" are one pin)."""
    s = str(pin).upper()
    for p in ("GPIO", "BCM"):
        if s.startswith(p):
            return str(int(s[len(p):]))
    return s
