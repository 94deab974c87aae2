"""Fixed-point numbers in the ring Z_2^64 and two-party additive sharing.

Every share is a ``numpy.uint64`` array; additions and products wrap modulo 2^64, which is the
ring arithmetic itself (numpy never checks unsigned overflow). A real value ``v`` with ``f``
fraction bits is the ring element ``round(v * 2^f) mod 2^64``; it decodes as the signed
(two's complement) integer over ``2^f``. Scales are per tensor (``device.split.cellnet``
states each one) and are chosen so that no intermediate exceeds 2^62 in magnitude: products
are never truncated on shares, they are rescaled exactly where a value is opened.

Randomness: ``Prg`` is AES-256 in counter mode keyed by a 32-byte seed (``cryptography``);
``fresh_seed`` draws one from ``os.urandom``.
"""
from __future__ import annotations

import hashlib
import os

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

U64 = np.uint64


def encode(x, frac: int) -> np.ndarray:
    """Real array -> ring elements with ``frac`` fraction bits (round to nearest)."""
    v = np.round(np.asarray(x, np.float64) * float(2 ** frac))
    if v.size and np.abs(v).max() >= 2.0 ** 62:
        raise OverflowError(f"value too large for 2^62 at {frac} fraction bits")
    return v.astype(np.int64).view(U64)


def decode(u, frac: int) -> np.ndarray:
    """Ring elements -> float64, read as signed integers over 2^frac."""
    return np.asarray(u, U64).view(np.int64).astype(np.float64) / float(2 ** frac)


def signed(u) -> np.ndarray:
    return np.asarray(u, U64).view(np.int64)


def fresh_seed() -> bytes:
    return os.urandom(32)


def derive(seed: bytes, label: str) -> bytes:
    """A 32-byte sub-seed for ``label`` (SHA-256 of the seed and the label)."""
    return hashlib.sha256(seed + b"\x00" + label.encode()).digest()


class Prg:
    """Deterministic cryptographic stream (AES-256-CTR) for uniform ring elements and bits."""

    def __init__(self, seed: bytes):
        if len(seed) != 32:
            raise ValueError("PRG seed must be 32 bytes")
        self._enc = Cipher(algorithms.AES(seed), modes.CTR(b"\x00" * 16)).encryptor()

    def bytes(self, n: int) -> bytes:
        return self._enc.update(b"\x00" * n)

    def ring(self, shape) -> np.ndarray:
        n = int(np.prod(shape, dtype=np.int64))
        return np.frombuffer(self.bytes(8 * n), dtype=U64).reshape(shape).copy()

    def bits(self, shape) -> np.ndarray:
        n = int(np.prod(shape, dtype=np.int64))
        return (np.frombuffer(self.bytes(n), np.uint8) & 1).astype(bool).reshape(shape)


def share(x: np.ndarray, prg: Prg) -> tuple[np.ndarray, np.ndarray]:
    """Additive shares (s0, s1) of ring array ``x``: s0 uniform, s1 = x - s0."""
    x = np.asarray(x, U64)
    s0 = prg.ring(x.shape)
    return s0, x - s0


def reconstruct(s0, s1) -> np.ndarray:
    return np.asarray(s0, U64) + np.asarray(s1, U64)
