"""Protected matching against many templates with the cell shift search (claims 9-11).

For every template j and every query window s, each query cell g is rotated with the key of
template cell g (the cell it lands on), dropped with template j's mask and fill, renormalised,
and compared with the encrypted cell; the score is the best, over windows, of the
importance-weighted sum of cell cosines. Exactly what ``core.match_score`` does one template
at a time, computed here in closed form so that it runs as matrix products:

    with c = q.k, p = q.(m*k), n2 = |m*q|^2, u = q.(m*e), ek = (m*e).k, ef = e.((1-m)*f),
    m2 = |m*k|^2, f2 = |(1-m)*f|^2 and (a, b) the slerp coefficients of c:
        cos(eq, e) = (a u + b ek + ef) / sqrt(a^2 n2 + 2 a b p + b^2 m2 + f2).

1:N is coarse-to-fine. Scoring every template at the zero shift does not work here: a palm
misaligned by up to 8 px falls to rank ~1000 of 5,400 at the zero shift (Tongji held-out
palms, measured), so the coarse stage searches shifts too, and to stay one matrix product it
uses the identity-bearing part of the protected score: for 1 - t small the cell cosine is
    1 - (alpha^2 / 2) |P(theta_q m psi_q - theta_e m psi_e)|^2 / |m k|^2     (P: out of m k)
whose cross term is linear in the projection of the encrypted cell off its masked key --
the appendix's key strip, computed in memory from the template and its key, never stored.
The coarse index keeps its first ``coarse_dims`` (PCA-ordered) dimensions of every cell as
bytes -- one contiguous (N, G * coarse_dims) uint8 array, by default 392 bytes a template
(8 dimensions of each of the 49 cells, 4 of each of the hybrid's 98) -- and the query is tried at
all 25 shifts in one int8 matrix product per block of templates
(:mod:`device.protect.coarse_int8`) (``coarse_shifts="near"``: only the 9 of ±1 map pixel -- 3x cheaper,
enough on Tongji but it lost 0.8 % of the correct accepts on synthetic palms, which are
misaligned further); the best ``shortlist`` templates get the exact protected search. ``search(..., exhaustive=True)`` runs the exact search on
every template; tests and the evaluation command check both give the same decisions.

Memory per template (G=49, d=16, per-cell keys, zero fill, float32 storage): encrypted cells
3136 B, keys 3136 B (64 B shared-key), mask bits 98 B, coarse index G * coarse_dims B (392 B);
float16 storage halves the cells and keys;
random fill adds 3136 B; key fill nothing (``_e`` keeps the whole encrypted cell, the fill is
the key at the dropped positions).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from device.protect.coarse_int8 import index_codes, max_products, query_codes
from device.protect.storage import Storage
from device.protect.core import (ProtectConfig, ProtectedTemplate, enrol_many,
                                 slerp_coefficients)


@dataclass
class Match:
    """Result of a search: best template index (into the gallery), its owner, its score."""

    index: int
    owner: object
    score: float
    accepted: bool
    candidates: int


# bytes of a template's coarse index (G * coarse_dims when not given): 8 dims of the 49
# cells, 4 of the hybrid's 98 -- the right template ranked first among 20,000 on Tongji
# validation palms with either (600/600 queries; with 2 hybrid dims it ranked up to 7th)
COARSE_WIDTH = 392
NEAR_SHIFTS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 0), (0, 1), (1, -1), (1, 0), (1, 1))


def _unit(v):
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-30)


class ProtectedGallery:
    """Protected templates of one configuration, stacked for fast matching.

    ``shifts`` are the (S, 2) query-window shifts of the feature extractor (for the coarse
    stage's subset); ``weights`` the (G,) sub-feature importances that weight the per-cell
    similarities into the score (claim 11).
    """

    def __init__(self, config: ProtectConfig, weights: np.ndarray, dim: int = 16,
                 shifts: np.ndarray | None = None, shortlist: int = 64,
                 shortlist_fraction: float = 0.002, coarse_dims: int | None = None,
                 coarse_shifts: str = "all", storage: str = "float32"):
        self.config = config.check(dim)
        # float16 halves the resident gallery (encrypted cells and keys, the bulk of it); the
        # arithmetic stays float32. Measured on Tongji ROIs: scores move by at most 2.8e-5
        # (median 1e-5), against 8.5e-4 between the 1e-3 and 1e-4 thresholds. int8: a
        # quarter (device/protect/storage.py)
        self.storage = Storage(storage)
        self._sdt = self.storage.dtype
        w = np.asarray(weights, np.float64)
        if np.any(w <= 0):
            raise ValueError("weights must be positive")
        self.weights = (w / w.sum()).astype(np.float32)
        self.g, self.d = w.size, dim
        if shifts is None:
            r = np.arange(-2, 3)
            shifts = np.stack(np.meshgrid(r, r, indexing="ij"), -1).reshape(-1, 2)
        sh = [tuple(int(v) for v in x) for x in np.asarray(shifts)]
        self.zero_shift = sh.index((0, 0))
        if coarse_shifts not in ("all", "near"):
            raise ValueError("coarse_shifts must be 'all' or 'near'")
        self.coarse_shifts = np.arange(len(sh)) if coarse_shifts == "all" else \
            np.array([sh.index(c) for c in NEAR_SHIFTS if c in sh])
        self.shortlist = int(shortlist)
        self.shortlist_fraction = float(shortlist_fraction)
        if coarse_dims is None:
            coarse_dims = max(1, COARSE_WIDTH // self.g)
        self.coarse_dims = int(min(coarse_dims, dim))
        self._owners: list = []
        kr = 1 if config.key_mode == "shared" else self.g
        st = self.storage                 # _e: m * e (kept part); e for key fill
        self._e = np.zeros((0, self.g, st.cell_width(dim)), self._sdt)
        self._k = np.zeros((0, kr, st.key_width(dim)), self._sdt)
        self._mbits = np.zeros((0, (self.g * dim + 7) // 8), np.uint8)
        # random fill is stored; key fill is the key's entries at the dropped positions (not
        # stored): for it ``_e`` keeps the whole encrypted template, dropped entries included
        self._f = None if config.fill != "random" else np.zeros((0, self.g, dim), np.float32)
        self._ef = None if config.fill != "random" else np.zeros((0, self.g), np.float32)
        self._xc = np.zeros((0, self.g * self.coarse_dims), np.uint8)    # coarse index
        self._chunks: list = []

    # ------------------------------------------------------------------ building
    @property
    def owners(self) -> list:
        """Owner of each template, in gallery order."""
        self._flush()
        return self._owners

    def __len__(self) -> int:
        self._flush()
        return len(self._owners)

    def add(self, owner, tmpl: ProtectedTemplate) -> int:
        if tmpl.config != self.config:
            raise ValueError("template was made with another protection configuration")
        f = None if tmpl.fill is None else tmpl.fill[None]
        return self.add_arrays([owner], tmpl.data[None], tmpl.key[None], tmpl.mask[None], f)

    def add_arrays(self, owners, data, keys, masks, fills=None) -> int:
        """Append templates given as stacked arrays (n, G, d); returns the first new index."""
        first = len(self._owners) + sum(len(c[0]) for c in self._chunks)
        self._chunks.append(self.pack(owners, data, keys, masks, fills))
        return first

    def pack(self, owners, data, keys, masks, fills=None) -> tuple:
        """The stored rows of templates given as stacked arrays (n, G, d): (owners, cells,
        keys, mask bits, fill, e.f, coarse index), as the gallery's arrays hold them."""
        data = np.asarray(data, np.float32)
        n = len(data)
        masks = np.asarray(masks, bool)
        keys = np.asarray(keys, np.float32)
        me = np.where(masks, data, 0.0).astype(np.float32)
        kk = np.broadcast_to(keys, data.shape)
        u = _unit(np.where(masks, kk, 0.0))
        strip = _unit(me - np.sum(me * u, -1, keepdims=True) * u)
        x = index_codes(strip[..., :self.coarse_dims].reshape(n, -1))
        mbits = np.packbits(masks.reshape(n, -1), axis=1)
        f = ef = None
        if self._f is not None:
            f = np.asarray(fills, np.float32)
            ef = np.einsum("ngd,ngd->ng", np.where(masks, 0.0, data), f).astype(np.float32)
        stored = data if self.config.fill == "key" else me
        kp = self.storage.pack_keys(keys)
        ep = self.storage.pack_cells(stored, np.broadcast_to(self.storage.unpack_keys(kp),
                                                             data.shape))
        return list(owners), ep, kp, mbits, f, ef, x

    def _flush(self) -> None:
        if not self._chunks:
            return
        ch, self._chunks = self._chunks, []
        for c in ch:
            self._owners.extend(c[0])
        self._e = np.concatenate([self._e] + [c[1] for c in ch])
        self._k = np.concatenate([self._k] + [c[2] for c in ch])
        self._mbits = np.concatenate([self._mbits] + [c[3] for c in ch])
        if self._f is not None:
            self._f = np.concatenate([self._f] + [c[4] for c in ch])
            self._ef = np.concatenate([self._ef] + [c[5] for c in ch])
        self._xc = np.concatenate([self._xc] + [c[6] for c in ch])

    def live_slots(self) -> np.ndarray:
        """Indices of the templates a search scores: all of them here (a gallery patched in
        place, :class:`device.gate.slot_gallery.SlotGallery`, skips its free slots)."""
        return np.arange(len(self))

    def slots_of(self, owner) -> np.ndarray:
        """Indices of ``owner``'s templates."""
        return np.array([i for i, o in enumerate(self.owners) if o == owner], np.int64)

    def remove_owner(self, owner) -> int:
        """Drop every template of ``owner`` (after a delete or a re-enrolment)."""
        return self.remove_owners({owner})

    def remove_owners(self, owners) -> int:
        """Drop every template of each of ``owners`` (a set), in one pass."""
        self._flush()
        owners = set(owners)
        keep = np.array([o not in owners for o in self._owners], bool)
        gone = int((~keep).sum())
        if gone:
            self._owners = [o for o, k in zip(self._owners, keep) if k]
            self._e, self._k, self._mbits = self._e[keep], self._k[keep], self._mbits[keep]
            self._xc = self._xc[keep]
            if self._f is not None:
                self._f, self._ef = self._f[keep], self._ef[keep]
        return gone

    def nbytes(self) -> dict:
        self._flush()
        out = {"encrypted": self._e.nbytes, "keys": self._k.nbytes,
               "masks": self._mbits.nbytes, "coarse_index": self._xc.nbytes}
        if self._f is not None:
            out["fill"] = self._f.nbytes + self._ef.nbytes
        return out

    # ------------------------------------------------------------------ scoring
    def coarse(self, queries: np.ndarray) -> np.ndarray:
        """Coarse scores of every template: best over the coarse shifts of the weighted
        key-stripped cell products (first ``coarse_dims`` dims), one int8 (T, k) x (k, S)
        product per block of templates (:mod:`device.protect.coarse_int8`)."""
        self._flush()
        return self._coarse_rows(self._xc, queries)

    def _coarse_rows(self, xc: np.ndarray, queries: np.ndarray) -> np.ndarray:
        """Coarse scores of the index rows ``xc``."""
        q = np.asarray(queries, np.float32)
        q = q[self.coarse_shifts] if q.ndim == 3 else q[None]
        qw = q[..., :self.coarse_dims] * self.weights[:, None]
        codes, scale = query_codes(qw.reshape(len(q), -1))
        return max_products(xc, codes).astype(np.float32) * np.float32(scale / 127.0)

    def exact(self, queries: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
        """Exact protected scores (n, S): templates ``idx`` (all if None) x query windows."""
        self._flush()
        q = np.asarray(queries, np.float32)
        if q.ndim == 2:
            q = q[None]
        idx = np.arange(len(self._owners)) if idx is None else np.asarray(idx)
        out = np.empty((len(idx), q.shape[0]), np.float32)
        step = max(1, 4096 // max(1, q.shape[0]))
        qg = np.ascontiguousarray(q.transpose(1, 0, 2))               # (g, s, d)
        for lo in range(0, len(idx), step):
            out[lo:lo + step] = self._exact_block(qg, idx[lo:lo + step])
        return out

    def _exact_block(self, qg: np.ndarray, sel: np.ndarray) -> np.ndarray:
        g, d = self.g, self.d
        n = len(sel)
        m = np.unpackbits(self._mbits[sel], axis=1)[:, :g * d].reshape(n, g, d).astype(bool)
        k = np.broadcast_to(self.storage.unpack_keys(self._k[sel]), (n, g, d))
        me = self.storage.unpack_cells(self._e[sel], k)
        if self.config.fill == "key":
            full, me = me, np.where(m, me, 0.0).astype(np.float32)
        mk = np.where(m, k, 0.0).astype(np.float32)
        m2 = np.einsum("ngd,ngd->ng", mk, mk)
        ek = np.einsum("ngd,ngd->ng", me, k)
        if self._f is not None:
            f = self._f[sel]
            f2 = np.einsum("ngd,ngd->ng", f, f)
            ef = self._ef[sel]
        elif self.config.fill == "key":
            # f = (1-m) k: |f|^2 = |k|^2 - |m k|^2, e.f = ((1-m) e).k
            f2 = np.maximum(np.einsum("ngd,ngd->ng", k, k) - m2, 0.0)
            ef = np.einsum("ngd,ngd->ng", full - me, k)
        else:
            f2 = ef = np.zeros((n, g), np.float32)
        # (g, s, d) @ (g, d, n) -> (g, s, n), one batched product per functional
        stack = np.concatenate([k, mk, me], 0).transpose(1, 2, 0)   # (g, d, 3n)
        prod = np.matmul(qg, stack)
        c, p, u = prod[..., :n], prod[..., n:2 * n], prod[..., 2 * n:]
        n2 = np.matmul(qg * qg, m.astype(np.float32).transpose(1, 2, 0))
        a, b = slerp_coefficients(c, self.config.t, self.config.rotation)
        tr = lambda z: z.T[:, None, :]                               # (n, g) -> (g, 1, n)
        num = a * u + b * tr(ek) + tr(ef)
        den = np.sqrt(np.maximum(a * a * n2 + 2 * a * b * p + b * b * tr(m2) + tr(f2), 1e-30))
        return np.einsum("g,gsn->ns", self.weights, num / den)

    # ------------------------------------------------------------------ decisions
    def shortlist_size(self) -> int:
        n = len(self)
        return min(n, max(self.shortlist, int(np.ceil(self.shortlist_fraction * n))))

    def search(self, queries: np.ndarray, threshold: float = -np.inf,
               exhaustive: bool = False, shortlist: int | None = None) -> Match | None:
        """1:N: the best template over the gallery (coarse-to-fine unless ``exhaustive``)."""
        self._flush()
        if not self._owners:
            return None
        q = np.asarray(queries, np.float32)
        n = len(self._owners)
        k = min(n, shortlist or self.shortlist_size())
        if exhaustive or k >= n:
            idx = np.arange(n)
        else:
            s0 = self.coarse(q)
            idx = np.argpartition(-s0, k - 1)[:k]
        best = self.exact(q, idx).max(1)
        j = int(np.argmax(best))
        return Match(int(idx[j]), self._owners[idx[j]], float(best[j]),
                     bool(best[j] >= threshold), len(idx))

    def verify(self, queries: np.ndarray, owner, threshold: float = -np.inf) -> Match | None:
        """1:1: only the named owner's templates are touched."""
        self._flush()
        idx = np.array([i for i, o in enumerate(self._owners) if o == owner], np.int64)
        if idx.size == 0:
            return None
        best = self.exact(queries, idx).max(1)
        j = int(np.argmax(best))
        return Match(int(idx[j]), owner, float(best[j]), bool(best[j] >= threshold), len(idx))

    def template(self, i: int) -> ProtectedTemplate:
        """Rebuild template ``i`` (tests, export)."""
        self._flush()
        g, d = self.g, self.d
        m = np.unpackbits(self._mbits[i])[:g * d].reshape(g, d).astype(bool)
        key = self.storage.unpack_keys(self._k[i])
        data = self.storage.unpack_cells(self._e[i], np.broadcast_to(key, (g, d)))
        fill = None
        if self._f is not None:
            fill = self._f[i]
            # dropped part of e is fill / N_e, with N_e = f2 / ef
            f2 = np.sum(fill * fill, -1)
            ne = f2 / np.maximum(self._ef[i], 1e-30)
            data = data + np.where(m, 0.0, fill / ne[:, None])
        elif self.config.fill == "key":
            fill = np.where(m, 0.0, np.broadcast_to(key, (g, d))).astype(np.float32)
        return ProtectedTemplate(data.astype(np.float32), key, m, fill, self.config)


def enrol_and_score(config, w, Tt, Qq, rng, shortlist: int = 64, pick=None):
    """Enrol the plaintext templates ``Tt`` under fresh keys and score every query of ``Qq``
    against every one exactly (or, with ``pick`` (nq, nt) boolean, only the picked pairs; the
    rest are NaN).  Returns the scores (nq, nt), the gallery and its enrolled arrays."""
    data, keys, masks, fills = enrol_many(Tt, config, importance=w, rng=rng)
    gal = ProtectedGallery(config, w, dim=Tt.shape[-1], shortlist=shortlist)
    gal.add_arrays(list(range(len(Tt))), data, keys, masks, fills)
    if pick is None:
        S = np.stack([gal.exact(q).max(1) for q in Qq])
    else:
        S = np.full(pick.shape, np.nan, np.float32)
        for i, q in enumerate(Qq):
            idx = np.flatnonzero(pick[i])
            S[i, idx] = gal.exact(q, idx).max(1)
    return S, gal, (data, keys, masks, fills)
