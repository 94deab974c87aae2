"""Random draws straight from the kernel's CSPRNG (``os.urandom``), with the two methods of a
``numpy.random.Generator`` that template protection uses (``random``, ``standard_normal``).

Protection keys, drop masks and fills are secrets: each must be as unpredictable as the
kernel's randomness, not as a PCG64 state that 256 seed bits merely initialise (whoever
learns one generator state -- a core dump, a swapped page -- can replay every later draw of
that generator; here there is no state to learn). Pass a seeded ``numpy.random.Generator``
instead only for reproducible evaluation.

Pure functions of the bytes read; no file, no global state.
"""
from __future__ import annotations

import os

import numpy as np

_U53 = 2.0 ** -53


def uniform_from_bytes(raw: bytes, n: int) -> np.ndarray:
    """``n`` floats in [0, 1) from 8 bytes each (the top 53 bits of a uint64)."""
    u = np.frombuffer(raw, dtype="<u8", count=n)
    return (u >> np.uint64(11)).astype(np.float64) * _U53


def normal_from_uniform(u1: np.ndarray, u2: np.ndarray) -> np.ndarray:
    """Box-Muller: two independent N(0, 1) draws per pair (u1 in (0, 1], u2 in [0, 1))."""
    r = np.sqrt(-2.0 * np.log(u1))
    t = 2.0 * np.pi * u2
    return np.concatenate([r * np.cos(t), r * np.sin(t)])


def _count(size) -> tuple[int, tuple]:
    if size is None:
        return 1, ()
    shape = (int(size),) if np.isscalar(size) else tuple(int(s) for s in size)
    return int(np.prod(shape, dtype=np.int64)), shape


class OsRandom:
    """Drop-in for the generator argument of ``device.protect.core``: every call reads fresh
    bytes from ``os.urandom``."""

    def __init__(self, urandom=None):
        self._source = urandom              # None: os.urandom, looked up at every draw

    def _urandom(self, n: int) -> bytes:
        return (self._source or os.urandom)(n)

    def random(self, size=None):
        n, shape = _count(size)
        out = uniform_from_bytes(self._urandom(8 * n), n)
        return float(out[0]) if size is None else out.reshape(shape)

    def standard_normal(self, size=None):
        n, shape = _count(size)
        m = (n + 1) // 2
        u = uniform_from_bytes(self._urandom(16 * m), 2 * m)
        z = normal_from_uniform(1.0 - u[:m], u[m:])[:n]     # 1 - u: never log(0)
        return float(z[0]) if size is None else z.reshape(shape)
