"""Rotate-and-drop template protection (seed 002, claims 1-11), pure numpy.

A feature is G unit sub-features of d dims, shape (G, d). Enrolment (claims 1-8):

    k = keygen(G, d)                         standard normal / norm, per sub-feature or shared
    r = slerp(x, k, t)                       spherical interpolation toward the key (claim 5)
    m = random_mask(...) | importance_mask   mode A: preset count; claim 6: by importance
    e = normalise(where(m, r, fill))         fill 0 or stored random values (claims 7, 8)

Matching (claims 9-11): the query is rotated with *that template's* key, the same dimensions
are dropped and filled, it is renormalised, and the score is the importance-weighted sum of
sub-feature cosines.

Two rotation rules share one knob ``t``:
- ``"fraction"`` (the seed): each sub-feature turns by t * theta, theta its angle to the key;
- ``"equal_angle"`` (variant): each sub-feature turns by the same angle phi = t * 90 deg, i.e.
  t_i = min(1, phi / theta_i) per sub-feature; the claims still hold (slerp with a weight
  in [0, 1]), only the weight is chosen per sub-feature.

Masks are boolean with True = kept. Fill values are stored (G, d) arrays, zero where kept.
"""
from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass, field

import numpy as np

ROTATIONS = ("fraction", "equal_angle", "orthographic", "equal_distance")
DROP_MODES = ("random", "importance")
FILLS = ("zero", "random", "key")
KEY_MODES = ("per_cell", "shared")
_EPS = 1e-7


@dataclass(frozen=True)
class ProtectConfig:
    """What an enrolment and every later match of its templates must agree on."""

    t: float = 0.9
    rotation: str = "fraction"
    n_drop: int = 4
    drop_mode: str = "random"
    drop_total: int | None = None      # claim 6 budget; default n_drop * G (same as mode A)
    fill: str = "zero"
    key_mode: str = "per_cell"

    def check(self, dim: int | None = None) -> "ProtectConfig":
        if not 0.0 <= self.t <= 1.0:
            raise ValueError(f"t must be in [0, 1], got {self.t}")
        for name, val, allowed in (("rotation", self.rotation, ROTATIONS),
                                   ("drop_mode", self.drop_mode, DROP_MODES),
                                   ("fill", self.fill, FILLS),
                                   ("key_mode", self.key_mode, KEY_MODES)):
            if val not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {val!r}")
        if dim is not None and not 0 <= self.n_drop <= dim - 1:
            raise ValueError(f"n_drop must be in [0, {dim - 1}], got {self.n_drop}")
        return self

    def budget(self, n_cells: int) -> int:
        return self.n_drop * n_cells if self.drop_total is None else int(self.drop_total)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ProtectConfig":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d}).check()


# --------------------------------------------------------------------------- randomness
def secure_rng():
    """The default source of keys, masks and fills: draws read straight from ``os.urandom``
    (``device.protect.osrandom.OsRandom``), never a PRNG merely seeded from it. Every function
    here takes ``rng=`` a seeded ``numpy.random.Generator`` instead, for reproducible
    evaluation."""
    from device.protect.osrandom import OsRandom
    return OsRandom()


def keygen(n_cells: int, dim: int, shared: bool = False,
           rng: np.random.Generator | None = None) -> np.ndarray:
    """Claim 3/4: standard normal draw divided by its norm. Per sub-feature: (G, d) rows drawn
    independently (claim 4 i); shared: one (1, d) row for every sub-feature (claim 4 ii)."""
    rng = rng or secure_rng()
    z = rng.standard_normal((1 if shared else n_cells, dim))
    return (z / np.linalg.norm(z, axis=-1, keepdims=True)).astype(np.float32)


# --------------------------------------------------------------------------- rotation
def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-30)


def orthographic_eps(t: float) -> float:
    """The offset scale eps of the ``"orthographic"`` rule: a sub-feature orthogonal to its key
    turns by t * 90 deg, as under the fixed fraction."""
    return float(np.sin((1.0 - float(t)) * np.pi / 2))


def rotation_weight(cos_xk: np.ndarray, t: float, rotation: str = "fraction") -> np.ndarray:
    """The slerp weight t_i of each sub-feature (its share of the way to the key)."""
    if rotation == "fraction":
        return np.full(np.shape(cos_xk), float(t))
    c = np.clip(cos_xk, -1.0, 1.0)
    theta = np.arccos(c)
    if rotation == "orthographic":
        # land at the angle alpha with sin(alpha) = eps * sin(theta)
        eps = orthographic_eps(t)
        alpha = np.arcsin(np.clip(eps * np.sqrt(np.maximum(1.0 - c * c, 0.0)), 0.0, 1.0))
        return np.where(theta < 1e-6, 1.0 - eps, 1.0 - alpha / np.maximum(theta, 1e-12))
    if rotation == "equal_distance":
        # land at the angle (1 - t) * 90 deg from the key (stay put if already closer)
        alpha = (1.0 - t) * np.pi / 2
        return np.where(theta <= alpha, 0.0, 1.0 - alpha / np.maximum(theta, 1e-12))
    return np.minimum(1.0, (t * np.pi / 2) / np.maximum(theta, 1e-12))


def slerp_coefficients(cos_xk: np.ndarray, t, rotation: str = "fraction"):
    """(a, b) with slerp(x, k) = a x + b k for unit x, k of cosine ``cos_xk`` (broadcasting).

    a = sin((1 - t) theta) / sin theta, b = sin(t theta) / sin theta; the limit (1 - t, t) as
    theta -> 0. ``t`` is the configured weight; ``rotation`` turns it into per-sub-feature
    weights (see ``rotation_weight``).
    """
    c = np.clip(np.asarray(cos_xk, dtype=np.result_type(cos_xk, np.float32)), -1.0, 1.0)
    if rotation == "orthographic":
        # r = cos(alpha) k + eps (x - c k): the offset from the key is eps times the feature's
        eps = np.asarray(orthographic_eps(t), c.dtype)
        b = np.sqrt(np.maximum(1.0 - eps * eps * (1.0 - c * c), 0.0)) - eps * c
        return np.broadcast_to(eps, c.shape), b
    if rotation == "equal_distance":
        # r = cos(alpha) k + sin(alpha) v, v the unit azimuth of x about k
        alpha = np.asarray((1.0 - t) * np.pi / 2, c.dtype)
        s = np.sqrt(np.maximum(1.0 - c * c, 0.0))
        far = s > np.sin(alpha)                       # theta > alpha (keys are never that close)
        a = np.where(far, np.sin(alpha) / np.where(far, s, 1.0), 1.0)
        b = np.where(far, np.cos(alpha) - a * c, 0.0)
        return a.astype(c.dtype), b.astype(c.dtype)
    tt = rotation_weight(c, t, rotation).astype(c.dtype)
    theta = np.arccos(c)
    s = np.sin(theta)
    small = s < 1e-6
    s_safe = np.where(small, 1.0, s)
    a = np.where(small, 1.0 - tt, np.sin((1.0 - tt) * theta) / s_safe)
    b = np.where(small, tt, np.sin(tt * theta) / s_safe)
    return a, b


def slerp(x: np.ndarray, k: np.ndarray, t, rotation: str = "fraction") -> np.ndarray:
    """Claim 5: spherical linear interpolation from unit x toward unit key k, weight t on the
    key, along the great circle through both. Not an orthogonal rotation: it moves every point
    toward k by a share of its own angle to k. Shapes (..., d), broadcasting."""
    x = np.asarray(x)
    k = np.asarray(k)
    c = np.sum(x * k, axis=-1, keepdims=True)
    a, b = slerp_coefficients(c, t, rotation)
    return _unit(a * x + b * k)


def inverse_slerp(r: np.ndarray, k: np.ndarray, t: float) -> np.ndarray:
    """Undo a fraction-t slerp when nothing was dropped (acceptance check 13): the angle to the
    key is angle(r, k) / (1 - t) and the azimuth about k is that of r."""
    c = np.clip(np.sum(r * k, -1, keepdims=True), -1, 1)
    theta = np.arccos(c) / (1.0 - t)
    az = _unit(r - c * k)
    return np.cos(theta) * k + np.sin(theta) * az


# --------------------------------------------------------------------------- dropping
def drop_counts(importance: np.ndarray, total: int, dim: int) -> np.ndarray:
    """Claim 6: per-sub-feature drop counts from importance, inversely proportional to it
    (largest-remainder rounding), summing to ``total``, each in [0, dim - 1], and never larger
    for a more important sub-feature."""
    imp = np.asarray(importance, np.float64)
    g = imp.size
    if np.any(imp <= 0):
        raise ValueError("importance must be positive")
    if not 0 <= total <= g * (dim - 1):
        raise ValueError(f"drop budget {total} outside [0, {g * (dim - 1)}]")
    order = np.lexsort((np.arange(g), imp))      # least important first, stable
    inv = 1.0 / imp[order]
    cap = dim - 1
    # capped proportional targets: tau_i = min(cap, lam * inv_i) with sum tau = total
    lo, hi = 0.0, total / inv.min() + 1.0
    for _ in range(200):
        lam = (lo + hi) / 2
        if np.minimum(cap, lam * inv).sum() < total:
            lo = lam
        else:
            hi = lam
    tau = np.minimum(cap, hi * inv)
    counts = np.minimum(np.floor(tau + 1e-9).astype(np.int64), cap)
    frac = np.where(counts < cap, tau - counts, -1.0)
    for i in np.argsort(-frac, kind="stable"):   # largest remainders; ties: less important
        if counts.sum() >= total:
            break
        if counts[i] < cap:
            counts[i] += 1
    # enforce monotonicity exactly (sorting keeps the multiset and the total)
    counts = np.sort(counts)[::-1]
    out = np.empty(g, np.int64)
    out[order] = counts
    return out


def random_mask(n_cells: int, dim: int, counts, rng: np.random.Generator | None = None
                ) -> np.ndarray:
    """Boolean keep-mask (G, d): ``counts`` (int or (G,)) positions per sub-feature dropped,
    chosen uniformly at random."""
    rng = rng or secure_rng()
    counts = np.broadcast_to(np.asarray(counts, np.int64), (n_cells,))
    ranks = np.argsort(rng.random((n_cells, dim)), axis=1).argsort(axis=1)
    return ranks >= counts[:, None]


def make_fill(mask: np.ndarray, mode: str, rng: np.random.Generator | None = None,
              key: np.ndarray | None = None) -> np.ndarray | None:
    """Claim 7: the values the dropped positions take: None for zero fill; for random fill
    N(0, 1/d) draws at the dropped positions (zero where kept), stored with the template; for
    key fill the key's own entries there (random values, independent of the feature, that the
    stored key already holds: nothing more is stored). Key fill keeps each sub-feature's norm
    before renormalisation independent of which key entries were dropped, so the drop does not
    reweight the sub-features at random (README, "Protected templates")."""
    if mode == "zero":
        return None
    if mode == "key":
        if key is None:
            raise ValueError("key fill needs the key")
        return np.where(mask, 0.0, np.broadcast_to(key, mask.shape)).astype(np.float32)
    rng = rng or secure_rng()
    d = mask.shape[-1]
    f = rng.standard_normal(mask.shape) / np.sqrt(d)
    return np.where(mask, 0.0, f).astype(np.float32)


def apply_drop(r: np.ndarray, mask: np.ndarray, fill: np.ndarray | None) -> np.ndarray:
    """Claims 7-8: dropped positions take the fill, then each sub-feature is renormalised."""
    v = np.where(mask, r, 0.0 if fill is None else fill)
    return _unit(v)


# --------------------------------------------------------------------------- templates
@dataclass
class ProtectedTemplate:
    """One protected template: encrypted sub-features, key(s), keep-mask, fill. It holds no
    plaintext feature. ``key`` is (G, d) per sub-feature or (1, d) shared (claim 4)."""

    data: np.ndarray
    key: np.ndarray
    mask: np.ndarray
    fill: np.ndarray | None
    config: ProtectConfig = field(default_factory=ProtectConfig)

    @property
    def n_cells(self) -> int:
        return self.data.shape[0]

    @property
    def dim(self) -> int:
        return self.data.shape[1]

    def keys(self) -> np.ndarray:
        return np.broadcast_to(self.key, self.data.shape)

    _MAGIC = b"PGT1"

    def to_bytes(self) -> bytes:
        """Compact binary record (header JSON + float32/bit arrays); what the store seals."""
        g, d = self.data.shape
        stored_fill = self.fill is not None and self.config.fill != "key"
        head = json.dumps({"g": g, "d": d, "shared": self.key.shape[0] == 1,
                           "fill": stored_fill, "config": self.config.to_dict()},
                          sort_keys=True).encode()
        parts = [self.data.astype("<f4").tobytes(), self.key.astype("<f4").tobytes(),
                 np.packbits(self.mask.astype(bool), axis=None).tobytes()]
        if stored_fill:
            parts.append(self.fill.astype("<f4").tobytes())
        return self._MAGIC + struct.pack("<I", len(head)) + head + b"".join(parts)

    @classmethod
    def from_bytes(cls, blob: bytes) -> "ProtectedTemplate":
        if blob[:4] != cls._MAGIC:
            raise ValueError("not a protected template record")
        (n,) = struct.unpack("<I", blob[4:8])
        h = json.loads(blob[8:8 + n])
        g, d = h["g"], h["d"]
        off = 8 + n

        def take(count, dtype, nbytes):
            nonlocal off
            a = np.frombuffer(blob, dtype, count, off)
            off += nbytes
            return a

        data = take(g * d, "<f4", 4 * g * d).reshape(g, d).astype(np.float32)
        kr = 1 if h["shared"] else g
        key = take(kr * d, "<f4", 4 * kr * d).reshape(kr, d).astype(np.float32)
        nb = (g * d + 7) // 8
        mask = np.unpackbits(take(nb, np.uint8, nb))[:g * d].reshape(g, d).astype(bool)
        fill = take(g * d, "<f4", 4 * g * d).reshape(g, d).astype(np.float32) if h["fill"] \
            else None
        if off != len(blob):
            raise ValueError("protected template record has trailing or missing bytes")
        config = ProtectConfig.from_dict(h["config"])
        if config.fill == "key":
            fill = make_fill(mask, "key", key=key)
        return cls(data, key, mask, fill, config)


def protect_with(x: np.ndarray, key: np.ndarray, mask: np.ndarray, fill: np.ndarray | None,
                 config: ProtectConfig) -> np.ndarray:
    """Claims 1, 5, 7, 8 with given key/mask/fill: normalise(fill(slerp(x, k, t), mask)).
    ``x`` may carry leading axes (e.g. S shifted windows)."""
    x = _unit(np.asarray(x, np.float64))
    k = np.broadcast_to(key, np.broadcast_shapes(x.shape, np.shape(key))).astype(np.float64)
    return apply_drop(slerp(x, k, config.t, config.rotation), mask, fill)


def enrol(x: np.ndarray, config: ProtectConfig = ProtectConfig(),
          importance: np.ndarray | None = None,
          rng: np.random.Generator | None = None) -> ProtectedTemplate:
    """Protect one plaintext feature (G, d) with a fresh key, mask and fill (claims 1-8).

    The caller discards ``x`` afterwards; the template keeps no plaintext."""
    x = _unit(np.asarray(x, np.float64))
    g, d = x.shape
    config.check(d)
    rng = rng or secure_rng()
    shared = config.key_mode == "shared"
    for _ in range(100):     # a key (anti)parallel to a sub-feature leaves slerp undefined
        key = keygen(g, d, shared, rng)
        if np.max(np.abs(np.sum(x * key, -1))) < 1 - 1e-6:
            break
    if config.drop_mode == "importance":
        imp = np.full(g, 1.0 / g) if importance is None else np.asarray(importance)
        counts = drop_counts(imp, config.budget(g), d)
    else:
        counts = config.n_drop
    mask = random_mask(g, d, counts, rng)
    fill = make_fill(mask, config.fill, rng, key)
    data = protect_with(x, key, mask, fill, config).astype(np.float32)
    return ProtectedTemplate(data, key, mask, fill, config)


def enrol_many(x: np.ndarray, config: ProtectConfig = ProtectConfig(),
               importance: np.ndarray | None = None,
               rng: np.random.Generator | None = None):
    """``enrol`` for a stack of features (n, G, d), vectorised; returns the stacked arrays
    ``(data, keys, masks, fills)`` (fills None for zero fill), each template with its own
    fresh key, mask and fill."""
    x = _unit(np.asarray(x, np.float32))
    n, g, d = x.shape
    config.check(d)
    rng = rng or secure_rng()
    z = rng.standard_normal((n, 1 if config.key_mode == "shared" else g, d))
    keys = (z / np.linalg.norm(z, axis=-1, keepdims=True)).astype(np.float32)
    for _ in range(100):
        bad = np.flatnonzero(np.max(np.abs(np.sum(x * keys, -1)), -1) >= 1 - 1e-6)
        if bad.size == 0:
            break
        keys[bad] = keygen(g, d, config.key_mode == "shared", rng)
    if config.drop_mode == "importance":
        imp = np.full(g, 1.0 / g) if importance is None else np.asarray(importance)
        counts = drop_counts(imp, config.budget(g), d)
    else:
        counts = np.full(g, config.n_drop)
    ranks = np.argsort(rng.random((n, g, d)), axis=-1).argsort(axis=-1)
    masks = ranks >= counts[None, :, None]
    fills = None
    if config.fill == "random":
        fills = np.where(masks, 0.0, rng.standard_normal((n, g, d)) / np.sqrt(d)
                         ).astype(np.float32)
    elif config.fill == "key":
        fills = np.where(masks, 0.0, np.broadcast_to(keys, masks.shape)).astype(np.float32)
    data = np.empty_like(x)
    for lo in range(0, n, 4096):
        sl = slice(lo, lo + 4096)
        data[sl] = protect_with(x[sl], keys[sl], masks[sl],
                                None if fills is None else fills[sl], config)
    return data, keys, masks, fills


def protect_query(q: np.ndarray, tmpl: ProtectedTemplate) -> np.ndarray:
    """Claim 10: the query (..., G, d) rotated with the template's key, dropped at the same
    positions with the same fill, renormalised."""
    return protect_with(q, tmpl.key, tmpl.mask, tmpl.fill, tmpl.config)


def weighted_score(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None = None
                   ) -> np.ndarray:
    """Claim 11: sum_i w_i cos(a_i, b_i) over sub-features (last two axes (G, d)); uniform
    weights 1/G by default."""
    cos = np.sum(_unit(a) * _unit(b), -1)
    g = cos.shape[-1]
    w = np.full(g, 1.0 / g) if weights is None else np.asarray(weights, np.float64)
    return cos @ w


def match_score(q: np.ndarray, tmpl: ProtectedTemplate, weights: np.ndarray | None = None
                ) -> float:
    """Claims 10-11 for one template: ``q`` is (G, d) or (S, G, d) shifted windows; the score
    is the best over shifts of the weighted sum of sub-feature cosines."""
    eq = protect_query(q, tmpl)
    s = weighted_score(eq, tmpl.data.astype(np.float64), weights)
    return float(np.max(s))


def key_strip(tmpl: ProtectedTemplate) -> np.ndarray:
    """The appendix's key-known attack: project the masked key direction out of each
    encrypted sub-feature; returns (G, d) unit estimates of the plaintext directions."""
    e = tmpl.data.astype(np.float64)
    k = np.broadcast_to(tmpl.key, e.shape)
    mk = np.where(tmpl.mask, k, 0.0)
    ev = np.where(tmpl.mask, e, 0.0)             # the fill carries no information
    u = _unit(mk)
    return _unit(ev - np.sum(ev * u, -1, keepdims=True) * u).astype(np.float32)
