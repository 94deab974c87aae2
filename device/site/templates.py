"""Per-gate template protection and the compact wire form of protected templates.

The enrolling gate holds the plaintext cell templates (K, G, d) only inside the enrolment
call. For every destination gate it protects them again under a fresh seed-002 key (slerp
toward a random key, drop elements: :mod:`device.protect.core`), so one palm's templates on
two gates are unlinkable without their keys, and seals the result to that gate
(:func:`device.site.sealing.pair_key`). The key is not sent: a 32-byte seed from os.urandom
is, and the receiving gate regenerates the key (and a random fill) from it; the keep-mask is
sent as bits and the protected cells as float16 (the gate's gallery keeps them in float16
anyway, ``[match] storage``). One template on the wire: 32 + ceil(G*d/8) + 2*G*d bytes
(1,698 for G=49, d=16) against 6.4 kB for ``ProtectedTemplate.to_bytes``.

The recovery copy: the plaintext templates sealed to the site recovery public key
(ephemeral-static X25519), so that a gate added later gets every existing user without a new
enrolment (``recover_for_gate``, run by the holder of the recovery private key).
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from functools import lru_cache

import numpy as np

from device.protect.core import (ProtectConfig, ProtectedTemplate, drop_counts, make_fill,
                                 protect_with, secure_rng)

SEED = 32
_MAGIC = b"PGW1"
_PLAIN = b"PGP1"


def key_from_seed(seed: bytes, g: int, d: int, config: ProtectConfig) -> np.ndarray:
    """Claim 3 from a seed: standard normal draws (Box-Muller over SHAKE-256 of the seed)
    divided by their norm, (G, d) per cell or (1, d) shared."""
    rows = 1 if config.key_mode == "shared" else g
    return _unit(_normals(seed, b"key", rows * d).reshape(rows, d)).astype(np.float32)


def _normals(seed: bytes, label: bytes, n: int) -> np.ndarray:
    m = (n + 1) // 2
    u = np.frombuffer(hashlib.shake_256(label + b"|" + seed).digest(8 * 2 * m), "<u4")
    u = (u.astype(np.float64) + 0.5) / 2.0 ** 32
    u1, u2 = u[0::2][:m], u[1::2][:m]
    r = np.sqrt(-2.0 * np.log(u1))
    return np.concatenate([r * np.cos(2 * np.pi * u2), r * np.sin(2 * np.pi * u2)])[:n]


def _unit(v):
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-30)


@lru_cache(maxsize=8)
def _counts_cached(config: ProtectConfig, imp: tuple | None, g: int, d: int) -> np.ndarray:
    if config.drop_mode == "importance":
        w = np.full(g, 1.0 / g) if imp is None else np.asarray(imp)
        return drop_counts(w, config.budget(g), d)
    return np.full(g, config.n_drop)


def _fill(mask, key, seed: bytes, config: ProtectConfig):
    if config.fill == "random":
        g, d = mask.shape
        f = _normals(seed, b"fill", g * d).reshape(g, d) / np.sqrt(d)
        return np.where(mask, 0.0, f).astype(np.float32)
    return make_fill(mask, config.fill, None, key)


def encode_for_gates(plain: np.ndarray, n_gates: int, config: ProtectConfig,
                     importance=None) -> list[bytes]:
    """Every plaintext template of ``plain`` (n, G, d) protected ``n_gates`` times, each
    under its own fresh key (claims 1-8), in wire form, one record per destination: magic,
    header (config, n, G, d), then per template seed | mask bits | cells (float16)."""
    plain = np.asarray(plain, np.float64)
    if plain.ndim != 3:
        raise ValueError(f"plaintext templates must be (n, G, d), got {plain.shape}")
    n, g, d = plain.shape
    config.check(d)
    x = _unit(plain)
    total = n_gates * n
    imp = None if importance is None else tuple(float(v) for v in np.asarray(importance))
    counts = _counts_cached(config, imp, g, d)
    seeds, keys = [], []
    for i in range(total):
        xi = x[i % n]
        for _ in range(100):   # a key (anti)parallel to a sub-feature leaves slerp undefined
            seed = os.urandom(SEED)
            key = key_from_seed(seed, g, d, config)
            if np.max(np.abs(np.sum(xi * np.broadcast_to(key, xi.shape), -1))) < 1 - 1e-6:
                break
        seeds.append(seed)
        keys.append(key)
    keys = np.stack(keys)
    rng = secure_rng()
    ranks = np.argsort(rng.random((total, g, d)), axis=-1).argsort(axis=-1)
    masks = ranks >= counts[None, :, None]
    if config.fill == "zero":
        fills = None
    else:
        fills = np.stack([_fill(masks[i], keys[i], seeds[i], config) for i in range(total)])
    xs = np.tile(x, (n_gates, 1, 1))
    data = protect_with(xs, keys, masks, fills, config).astype("<f2")
    head = json.dumps({"n": n, "g": g, "d": d, "config": config.to_dict()},
                      sort_keys=True, separators=(",", ":")).encode()
    bits = np.packbits(masks.reshape(total, -1), axis=1)
    out = []
    for j in range(n_gates):
        parts = [_MAGIC, struct.pack("<H", len(head)), head]
        for i in range(j * n, (j + 1) * n):
            parts += [seeds[i], bits[i].tobytes(), data[i].tobytes()]
        out.append(b"".join(parts))
    return out


def encode_for_gate(plain: np.ndarray, config: ProtectConfig, importance=None) -> bytes:
    return encode_for_gates(plain, 1, config, importance)[0]


def decode_templates(blob: bytes) -> list[ProtectedTemplate]:
    """The protected templates of a wire record (keys regenerated from their seeds)."""
    if blob[:4] != _MAGIC:
        raise ValueError("not a PalmGate site template record")
    (hn,) = struct.unpack("<H", blob[4:6])
    h = json.loads(blob[6:6 + hn])
    n, g, d = int(h["n"]), int(h["g"]), int(h["d"])
    config = ProtectConfig.from_dict(h["config"])
    nb = (g * d + 7) // 8
    rec = SEED + nb + 2 * g * d
    off = 6 + hn
    if len(blob) != off + n * rec:
        raise ValueError("site template record has trailing or missing bytes")
    out = []
    for i in range(n):
        o = off + i * rec
        seed = blob[o:o + SEED]
        mask = np.unpackbits(np.frombuffer(blob, np.uint8, nb, o + SEED))[:g * d]
        mask = mask.reshape(g, d).astype(bool)
        data = np.frombuffer(blob, "<f2", g * d, o + SEED + nb).reshape(g, d)
        key = key_from_seed(seed, g, d, config)
        out.append(ProtectedTemplate(data.astype(np.float32), key, mask,
                                     _fill(mask, key, seed, config), config))
    return out


def wire_bytes(n: int, g: int = 49, d: int = 16) -> int:
    """Bytes of ``n`` templates on the wire, before the header and the seal."""
    return n * (SEED + (g * d + 7) // 8 + 2 * g * d)


# --------------------------------------------------------------------------- recovery copy
def encode_plain(plain: np.ndarray) -> bytes:
    """The plaintext templates (float32) -- only ever sealed to the recovery key."""
    plain = np.asarray(plain, "<f4")
    if plain.ndim != 3:
        raise ValueError(f"plaintext templates must be (n, G, d), got {plain.shape}")
    return _PLAIN + struct.pack("<HHH", *plain.shape) + plain.tobytes()


def decode_plain(blob: bytes) -> np.ndarray:
    if blob[:4] != _PLAIN:
        raise ValueError("not a PalmGate recovery record")
    n, g, d = struct.unpack("<HHH", blob[4:10])
    if len(blob) != 10 + 4 * n * g * d:
        raise ValueError("recovery record has trailing or missing bytes")
    return np.frombuffer(blob, "<f4", n * g * d, 10).reshape(n, g, d).copy()
