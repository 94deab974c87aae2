"""Wiegand card frames as bits: pure functions, no pins, no clock.

Two formats, the ones access panels take out of the box:

- ``wiegand26`` -- HID H10301: P(even over bits 1..12) | 8-bit facility code | 16-bit card
  number | P(odd over bits 13..24); 26 bits.
- ``wiegand34`` -- HID H10306: P(even over bits 1..16) | 16-bit facility code | 16-bit card
  number | P(odd over bits 17..32); 34 bits.

Bits are given most significant (first sent) first as a list of 0/1. ``encode`` refuses a
facility code or card number that does not fit; ``decode`` refuses a frame of another length
or with a parity error (:class:`WiegandError` names which). ``to_bytes``/``from_bytes`` pack
the bits the way OSDP's raw-Wiegand card report carries them (first bit in the top bit of the
first byte, zero-padded at the end).
"""
from __future__ import annotations

from dataclasses import dataclass


class WiegandError(ValueError):
    """A card number that does not fit the format, or a frame that does not decode."""


@dataclass(frozen=True)
class Format:
    name: str
    bits: int
    facility_bits: int
    card_bits: int

    @property
    def half(self) -> int:
        """Data bits covered by each parity bit (the first half even, the second odd)."""
        return (self.bits - 2) // 2


FORMATS = {f.name: f for f in (Format("wiegand26", 26, 8, 16),
                               Format("wiegand34", 34, 16, 16))}


@dataclass(frozen=True)
class Card:
    format: str
    facility: int
    number: int


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise WiegandError(f"unknown card format {name!r} (known: {', '.join(FORMATS)})") \
            from None


def _int_bits(value: int, n: int) -> list[int]:
    return [(value >> (n - 1 - i)) & 1 for i in range(n)]


def _bits_int(bits) -> int:
    v = 0
    for b in bits:
        v = (v << 1) | b
    return v


def check_card(fmt: str, facility: int, number: int) -> Format:
    """The format, after checking that the facility code and the card number fit it."""
    f = get_format(fmt)
    for what, v, n in (("facility code", facility, f.facility_bits),
                       ("card number", number, f.card_bits)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise WiegandError(f"{what} must be an integer, got {v!r}")
        if not 0 <= v < (1 << n):
            raise WiegandError(f"{what} {v} does not fit {fmt} ({n} bits: 0..{(1 << n) - 1})")
    return f


def encode(fmt: str, facility: int, number: int) -> list[int]:
    """The frame's bits, parity included, first bit first."""
    f = check_card(fmt, facility, number)
    data = _int_bits(facility, f.facility_bits) + _int_bits(number, f.card_bits)
    first, second = data[:f.half], data[f.half:]
    even = sum(first) % 2                   # makes the first half plus parity even
    odd = 1 - sum(second) % 2               # makes the second half plus parity odd
    return [even] + data + [odd]


def decode(bits) -> Card:
    """A frame back to its card; raises :class:`WiegandError` on a length or parity error."""
    bits = [int(b) for b in bits]
    if any(b not in (0, 1) for b in bits):
        raise WiegandError("a Wiegand frame holds 0 and 1 only")
    f = next((f for f in FORMATS.values() if f.bits == len(bits)), None)
    if f is None:
        raise WiegandError(f"{len(bits)}-bit frame: not a known format (26 or 34 bits)")
    data = bits[1:-1]
    if (bits[0] + sum(data[:f.half])) % 2 != 0:
        raise WiegandError(f"{f.name}: leading (even) parity error")
    if (bits[-1] + sum(data[f.half:])) % 2 != 1:
        raise WiegandError(f"{f.name}: trailing (odd) parity error")
    return Card(f.name, _bits_int(data[:f.facility_bits]), _bits_int(data[f.facility_bits:]))


def to_bytes(bits) -> bytes:
    """Pack bits first-bit-in-the-top-bit, zero-padded to whole bytes (OSDP raw Wiegand)."""
    bits = list(bits)
    out = bytearray((len(bits) + 7) // 8)
    for i, b in enumerate(bits):
        if b:
            out[i // 8] |= 0x80 >> (i % 8)
    return bytes(out)


def from_bytes(data: bytes, nbits: int) -> list[int]:
    """The first ``nbits`` bits of ``data`` (the inverse of :func:`to_bytes`)."""
    if nbits > len(data) * 8:
        raise WiegandError(f"{nbits} bits asked of {len(data)} bytes")
    return [(data[i // 8] >> (7 - i % 8)) & 1 for i in range(nbits)]
