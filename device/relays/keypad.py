"""A keypad on the gate's Wiegand input: key frames to keys, keys to a PIN. Pure functions and
one small state machine; no pins, no clock of its own.

Keypad readers (HID's keypad readers, and the keypad + card readers of most makers) send each
key press on the same DATA0/DATA1 pair as their cards, as a short frame of its own, in one of
two formats chosen on the reader:

- **4-bit burst**: the key's value, most significant bit first: ``0``-``9`` = 0-9, ``*`` = 10,
  ``#`` = 11.
- **8-bit burst**: the inverted value in the high nibble, then the value (``1`` = 1110 0001),
  so a dropped bit shows.

A card frame is 26 or 34 bits, so the length tells the two apart. :class:`PinEntry` gathers
digits until ``#`` (enter); ``*`` clears; a key more than ``timeout_s`` after the previous one
starts over; more than :data:`MAX_KEYS` digits is dropped as garbage.
"""
from __future__ import annotations

from device.relays.wiegand_codec import WiegandError

KEYS = "0123456789*#"
KEY_BITS = (4, 8)
MAX_KEYS = 8                # the longest PIN (device.store.pins.MAX_DIGITS)


def _value(bits) -> int:
    v = 0
    for b in bits:
        v = (v << 1) | int(b)
    return v


def decode_key(bits) -> str:
    """The key of a 4- or 8-bit keypad frame; :class:`WiegandError` when it is none."""
    bits = [int(b) for b in bits]
    if any(b not in (0, 1) for b in bits):
        raise WiegandError("a Wiegand frame holds 0 and 1 only")
    if len(bits) == 4:
        v = _value(bits)
    elif len(bits) == 8:
        hi, v = _value(bits[:4]), _value(bits[4:])
        if hi != (~v & 0xF):
            raise WiegandError("8-bit keypad frame: the high nibble is not the inverted key")
    else:
        raise WiegandError(f"{len(bits)}-bit frame: not a keypad key (4 or 8 bits)")
    if v >= len(KEYS):
        raise WiegandError(f"keypad frame of value {v}: no such key")
    return KEYS[v]


def encode_key(key: str, bits: int = 4) -> list[int]:
    """The frame a keypad sends for ``key`` (the inverse of :func:`decode_key`)."""
    if key not in KEYS or bits not in KEY_BITS:
        raise WiegandError(f"no {bits}-bit keypad frame for {key!r}")
    v = KEYS.index(key)
    val = [(v >> (3 - i)) & 1 for i in range(4)]
    return val if bits == 4 else [1 - b for b in val] + val


class PinEntry:
    """Keys in, a finished PIN out: ``feed(key, now)`` returns the digits when ``#`` ends an
    entry, else None."""

    def __init__(self, timeout_s: float = 10.0):
        self.timeout_s = float(timeout_s)
        self._digits = ""
        self._last = None

    def feed(self, key: str, now: float) -> str | None:
        if self._last is not None and now - self._last > self.timeout_s:
            self._digits = ""                       # a stale half entry: start over
        self._last = now
        if key == "*":
            self._digits = ""
            return None
        if key == "#":
            pin, self._digits = self._digits, ""
            return pin or None
        if key.isdigit():
            self._digits = (self._digits + key) if len(self._digits) < MAX_KEYS else ""
            return None
        raise WiegandError(f"no such key {key!r}")

    @property
    def pending(self) -> int:
        """Digits typed so far (never the digits themselves)."""
        return len(self._digits)
