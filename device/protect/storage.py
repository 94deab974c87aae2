"""How the in-memory gallery keeps protected cells and keys (``[match] storage``).

The arithmetic is always float32; storage is what stays resident between searches:

- ``float32``: bit-exact scores.
- ``float16``: half the bytes; scores move by at most ~3e-5.
- ``int8``: a quarter of float32. Each key cell is kept as int8 with its own float16 scale
  (k' = codes * scale); each encrypted cell e as its projection on that stored key plus an int8
  residual with its own scale: e' = lam * k' + r. Under the shipped protection every encrypted
  cell lies a few degrees from its key (t = 0.9, equal distance), so the residual is small
  and its int8 step is a few thousandths of the cell's length. The matcher rotates the query
  with k' instead of k -- the main source of the difference (docs/results.md measures it).

The int8 layout packs the scales into the same int8 rows (float16 bytes viewed as int8), so
the gallery's arrays keep one dtype and one row per template: keys (n, K, d + 2), cells
(n, G, d + 4) with [codes..., lam, scale].
"""
from __future__ import annotations

import numpy as np

STORAGES = ("float32", "float16", "int8")


def _q8(x: np.ndarray):
    """Per-vector int8 codes and float16 scales of x (..., d)."""
    s = (np.abs(x).max(-1) / 127.0).astype(np.float16)
    sf = np.maximum(s.astype(np.float32), np.float32(1e-30))
    return np.clip(np.rint(x / sf[..., None]), -127, 127).astype(np.int8), s


def _f16_bytes(*vals: np.ndarray) -> np.ndarray:
    """float16 arrays (...,) -> int8 bytes (..., 2 * len(vals))."""
    return np.stack(vals, -1).astype(np.float16).view(np.int8)


def _f16_of(b: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(b).view(np.float16).astype(np.float32)


class Storage:
    """One storage rule: array dtype, row widths, pack and unpack (pure functions)."""

    def __init__(self, name: str):
        if name not in STORAGES:
            raise ValueError(f"storage must be one of {STORAGES}, got {name!r}")
        self.name = name
        self.dtype = np.dtype(name)
        self.int8 = name == "int8"

    def key_width(self, d: int) -> int:
        return d + 2 if self.int8 else d

    def cell_width(self, d: int) -> int:
        return d + 4 if self.int8 else d

    def pack_keys(self, keys: np.ndarray) -> np.ndarray:
        keys = np.asarray(keys, np.float32)
        if not self.int8:
            return keys.astype(self.dtype)
        codes, s = _q8(keys)
        return np.concatenate([codes, _f16_bytes(s)], -1)

    def unpack_keys(self, packed: np.ndarray) -> np.ndarray:
        if not self.int8:
            return packed.astype(np.float32)
        return packed[..., :-2].astype(np.float32) * _f16_of(packed[..., -2:])

    def pack_cells(self, cells: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """``keys``: the *unpacked* stored keys broadcast to the cells' shape."""
        cells = np.asarray(cells, np.float32)
        if not self.int8:
            return cells.astype(self.dtype)
        kk = np.sum(keys * keys, -1)
        lam = (np.sum(cells * keys, -1) / np.maximum(kk, 1e-30)).astype(np.float16)
        r = cells - lam.astype(np.float32)[..., None] * keys
        codes, s = _q8(r)
        return np.concatenate([codes, _f16_bytes(lam, s)], -1)

    def unpack_cells(self, packed: np.ndarray, keys: np.ndarray) -> np.ndarray:
        if not self.int8:
            return packed.astype(np.float32)
        ls = _f16_of(packed[..., -4:])                    # (..., 2): lam, scale
        return ls[..., :1] * keys + packed[..., :-4].astype(np.float32) * ls[..., 1:]
