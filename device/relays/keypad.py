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
an entry the way access terminals take "user ID + password": the keypad ID, ``#``, the PIN,
``#``. ``*`` clears the entry; a key more than ``timeout_s`` after the previous one starts
over; more than :data:`MAX_KEYS` digits in a field drops the entry as garbage.
"""
from __future__ import annotations

from device.relays.wiegand_codec import WiegandError

KEYS = "0123456789*#"
KEY_BITS = (4, 8)
MAX_KEYS = 8                # the longest keypad ID or PIN (device.store.pins)


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
    """Keys in, a finished entry out: ``feed(key, now)`` returns ``(keypad_id, pin)`` (both
    digit strings) when the second ``#`` ends an entry, else None."""

    def __init__(self, timeout_s: float = 10.0):
        self.timeout_s = float(timeout_s)
        self._fields: list[str] = [""]
        self._last = None

    def clear(self) -> None:
        self._fields = [""]

    def feed(self, key: str, now: float) -> tuple[str, str] | None:
        if key not in KEYS:
            raise WiegandError(f"no such key {key!r}")
        if self._last is not None and now - self._last > self.timeout_s:
            self.clear()                            # a stale half entry: start over
        self._last = now
        if key == "*":
            self.clear()
            return None
        if key == "#":
            if not self._fields[-1]:
                self.clear()                        # an empty field: start over
                return None
            if len(self._fields) == 1:
                self._fields.append("")
                return None
            entry, self._fields = (self._fields[0], self._fields[1]), [""]
            return entry
        if len(self._fields[-1]) >= MAX_KEYS:
            self.clear()                            # a stuck key or garbage
            return None
        self._fields[-1] += key
        return None

    @property
    def pending(self) -> int:
        """Keys held so far (never the keys themselves)."""
        return sum(len(f) for f in self._fields) + len(self._fields) - 1
