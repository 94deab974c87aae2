"""Exact protected scores of many queries against many templates at once (claims 9-11).

The same closed form as ``ProtectedGallery.exact`` (device/protect/gallery.py), arranged so
that a block of query windows (R rows) meets a block of templates (n) in one (R, n) matrix per
cell: the template-side quantities are computed once per template block
(:class:`TemplateBlock`), not once per query, and each cell costs a few (R, 16) x (16, n)
products plus elementwise passes over (R, n).

For every template j, query window r and cell g, with c = q.k, p = q.(m k), n2 = |m q|^2,
u = q.(m e), ek = (m e).k, m2 = |m k|^2, the fill terms ef, f2 and (a, b) the slerp
coefficients of c:

    cos(eq, e) = (a u + b ek + ef) / sqrt(a^2 n2 + 2 a b p + b^2 m2 + f2)

and the score is the importance-weighted sum over cells, best over the windows.

Under the ``equal_distance`` rotation (the shipped one) the slerp coefficients are
a = sin(alpha) / sqrt(1 - c^2), b = cos(alpha) - a c whenever the query cell is farther than
alpha = (1 - t) 90 deg from the key (always, in practice; a cell of a block where it is not
takes the general form), and the closed form folds into fewer passes:

- a cell from which no template of the block dropped anything (the importance-driven budget
  leaves most cells whole): m = 1, the fill is unused, the rotated query is a unit vector, and
  with e_perp = e - (e.k) k (the encrypted cell off its key)
      cos(eq, e) = a (q.e_perp) + cos(alpha) (e.k);
- a cell with drops: with h = m e - ek k and K = cos(alpha)^2 m2 + f2
      num = a (q.h) + cos(alpha) ek + ef,
      den^2 = a^2 (n2 - 2 c p + c^2 m2) + 2 a cos(alpha) (p - c m2) + K;
- a cell where every template dropped exactly one dimension (the shipped importance budget
  drops one in each of its least important cells): with that dimension's entries q_x of the
  query and k_x of the key, z = q_x - c k_x, and m2 = 1 - k_x^2 (k unit), the same becomes
      den^2 = sin(alpha)^2 + K - a z (a z + 2 cos(alpha) k_x).

Query cells are made unit first (the protection does the same, ``core.protect_with``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from device.protect.core import ProtectConfig, slerp_coefficients

# (rows x templates) elements per elementwise pass: the workspace's arrays stay in cache
BLOCK_ELEMENTS = 1 << 16


def _unit(v):
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-30)


@dataclass
class TemplateBlock:
    """The template-side quantities of n protected templates, per cell (leading axis G; the
    ``(d, x n)`` matrices are the right-hand sides of the per-cell products)."""

    config: ProtectConfig
    weights: np.ndarray          # (G,) float32, summing to 1
    n: int
    kind: np.ndarray             # (G,) per cell: WHOLE, DROP1, DROPS (equal_distance), GENERAL
    const: np.ndarray            # (n,) sum over WHOLE cells of w cos(alpha) (e.k)
    rhs: list                    # per cell: WHOLE [k | w e_perp] (d, 2n);
    #                              DROP1 [k | w h | one-hot of the dropped dimension] (d, 3n);
    #                              DROPS [k | mk | w h] (d, 3n); GENERAL [k | mk | me] (d, 3n)
    m: np.ndarray                # (G, d, n) float keep-mask (n2 = (q*q) @ m)
    mk: np.ndarray               # (G, d, n) m k   (the general form's right-hand sides, for
    me: np.ndarray               # (G, d, n) m e    a fast cell that needs it)
    ek: np.ndarray               # (G, n) (m e).k
    m2: np.ndarray               # (G, n) |m k|^2
    f2: np.ndarray               # (G, n) |(1-m) f|^2
    ef: np.ndarray               # (G, n) e.((1-m) f)
    num0: np.ndarray             # (G, n) DROP1, DROPS: w (cos(alpha) ek + ef)
    den0: np.ndarray             # (G, n) DROPS: K = cos(alpha)^2 m2 + f2; DROP1: sin^2 + K
    kx: np.ndarray               # (G, n) DROP1: k_x
    kx2: np.ndarray              # (G, n) DROP1: 2 cos(alpha) k_x

    @classmethod
    def from_arrays(cls, config: ProtectConfig, weights, data, keys, masks, fills=None
                    ) -> "TemplateBlock":
        """From enrolled arrays (``core.enrol_many``'s data, keys, masks, fills), each
        (n, G, d); ``weights`` (G,) positive (normalised here)."""
        w = np.asarray(weights, np.float64)
        w = (w / w.sum()).astype(np.float32)
        e = np.asarray(data, np.float32)
        n, g, d = e.shape
        m = np.asarray(masks, bool)
        k = np.ascontiguousarray(np.broadcast_to(np.asarray(keys, np.float32), e.shape))
        me = np.where(m, e, 0.0).astype(np.float32)
        mk = np.where(m, k, 0.0).astype(np.float32)
        m2 = np.einsum("ngd,ngd->ng", mk, mk)
        ek = np.einsum("ngd,ngd->ng", me, k)
        if config.fill == "random":
            f = np.asarray(fills, np.float32)
            f2 = np.einsum("ngd,ngd->ng", f, f)
            ef = np.einsum("ngd,ngd->ng", np.where(m, 0.0, e), f)
        elif config.fill == "key":
            f2 = np.maximum(np.einsum("ngd,ngd->ng", k, k) - m2, 0.0)
            ef = np.einsum("ngd,ngd->ng", e - me, k)
        else:
            f2 = ef = np.zeros((n, g), np.float32)
        kind = np.full(g, GENERAL)
        const = np.zeros(n, np.float32)
        num0 = den0 = kx = kx2 = np.zeros((g, n), np.float32)
        tr = lambda a: a.transpose(1, 2, 0)                          # (n, g, d) -> (g, d, n)
        unit_keys = n == 0 or float(np.abs(np.einsum("ngd,ngd->ng", k, k) - 1).max()) < 1e-5
        if config.rotation == "equal_distance" and unit_keys:   # (stored keys rounded to
            # float16 or int8 are not unit: the general form scores them as the gallery does)
            alpha = (1.0 - config.t) * np.pi / 2
            ca, sa = np.float32(np.cos(alpha)), np.float32(np.sin(alpha))
            whole = m.all(axis=(0, 2)) if n else np.ones(g, bool)
            one = (m.sum(-1) == d - 1).all(0) if n else np.zeros(g, bool)
            kind = np.where(whole, WHOLE, np.where(one, DROP1, DROPS))
            hot = ~m                                                      # DROP1's dimension
            kx = np.ascontiguousarray(np.where(hot, k, 0.0).sum(-1).T, np.float32)
            kx2 = np.ascontiguousarray(2 * ca * kx, np.float32)
            ekw = np.einsum("ngd,ngd->ng", e, k)
            const = (ca * ekw[:, whole] @ w[whole]).astype(np.float32)
            rot = tr((e - ekw[..., None] * k) * w[None, :, None])          # WHOLE: e_perp
            h = tr((me - ek[..., None] * k) * w[None, :, None])           # DROPS
            num0 = (w[:, None] * (ca * ek + ef).T).astype(np.float32)
            den0 = (ca * ca * m2 + f2).T + np.where(one, sa * sa, 0.0)[:, None]
            den0 = den0.astype(np.float32)
        rhs = []
        for c in range(g):
            parts = {WHOLE: lambda: (k[:, c].T, rot[c]),
                     DROP1: lambda: (k[:, c].T, h[c], hot[:, c].T),
                     DROPS: lambda: (k[:, c].T, mk[:, c].T, h[c]),
                     GENERAL: lambda: (k[:, c].T, mk[:, c].T, me[:, c].T)}[kind[c]]()
            rhs.append(np.ascontiguousarray(np.concatenate(parts, axis=1), np.float32))
        return cls(config, w, n, kind, const, rhs,
                   np.ascontiguousarray(tr(m.astype(np.float32))),
                   np.ascontiguousarray(tr(mk)), np.ascontiguousarray(tr(me)),
                   ek.T.copy(), m2.T.copy(),
                   f2.T.copy(), ef.T.copy(), np.ascontiguousarray(num0),
                   np.ascontiguousarray(den0), kx, kx2)

    @classmethod
    def from_gallery(cls, gal, idx=None) -> "TemplateBlock":
        """Templates ``idx`` (all if None) of a ``ProtectedGallery``, as the gate holds them
        (its storage precision included)."""
        n_all = len(gal)                     # also joins the gallery's pending chunks
        idx = np.arange(n_all) if idx is None else np.asarray(idx)
        g, d = gal.g, gal.d
        m = np.unpackbits(gal._mbits[idx], axis=1)[:, :g * d].reshape(len(idx), g, d) \
            .astype(bool)
        st = getattr(gal, "storage", None)
        if hasattr(st, "unpack_keys"):        # a gallery with packed (e.g. int8) storage
            k = st.unpack_keys(gal._k[idx])
            e = st.unpack_cells(gal._e[idx], np.broadcast_to(k, (len(idx), g, d)))
        else:
            k = gal._k[idx].astype(np.float32)
            e = gal._e[idx].astype(np.float32)
        fills = None
        if gal._f is not None:
            # the gallery keeps m e and the fill; e's dropped part is fill / N_e (as template())
            f = gal._f[idx]
            ne = np.sum(f * f, -1) / np.maximum(gal._ef[idx], 1e-30)
            e = e + np.where(m, 0.0, f / ne[..., None])
            fills = f
        return cls.from_arrays(gal.config, gal.weights, e, k, m, fills)


WHOLE, DROP1, DROPS, GENERAL = 0, 1, 2, 3


class Workspace:
    """Buffers for scoring up to ``rows`` query windows against ``n`` templates, reused cell
    after cell and call after call: the loop allocates nothing and its arrays stay in cache."""

    def __init__(self, rows: int, n: int):
        self.rows, self.n = rows, n
        self.prod = {w: np.empty((rows, w * n), np.float32) for w in (2, 3)}
        self.c2, self.s, self.t, self.n2 = (np.empty((rows, n), np.float32) for _ in range(4))

    def fits(self, rows: int, n: int) -> bool:
        return rows <= self.rows and n == self.n


def window_scores(block: TemplateBlock, rows: np.ndarray, work: Workspace | None = None,
                  out: np.ndarray | None = None) -> np.ndarray:
    """(R, n) exact protected scores of R query windows (R, G, d) against every template of
    the block (no shift search: one score per window). ``work``: buffers to reuse; ``out``:
    where to write."""
    q = _unit(np.asarray(rows, np.float32))
    r, g, _ = q.shape
    n = block.n
    if work is None or not work.fits(r, n):
        work = Workspace(r, n)
    qg = np.ascontiguousarray(q.transpose(1, 0, 2))                 # (g, R, d)
    acc = np.empty((r, n), np.float32) if out is None else out
    acc[:] = block.const
    cfg = block.config
    alpha = (1.0 - cfg.t) * np.pi / 2
    ca, sa = np.float32(np.cos(alpha)), np.float32(np.sin(alpha))
    floor = np.float32(np.sin(alpha) ** 2 * (1 + 1e-5))
    one = np.float32(1.0)
    for c in range(g):
        kind = block.kind[c]
        if kind != GENERAL:
            prod = work.prod[block.rhs[c].shape[1] // n][:r]
            np.matmul(qg[c], block.rhs[c], out=prod)
            cc = prod[:, :n]
            c2 = np.multiply(cc, cc, out=work.c2[:r])
            s = np.subtract(one, c2, out=work.s[:r])
            if s.min() > floor:                        # every query cell farther than alpha
                np.sqrt(s, out=s)
                np.divide(sa, s, out=s)                # s is now a
                if kind == WHOLE:
                    v = prod[:, n:]
                    np.multiply(v, s, out=v)
                    acc += v
                elif kind == DROP1:
                    _drop1_cell(block, c, prod, s, work.t[:r], acc)
                else:
                    _drops_cell(block, c, qg[c], prod, c2, s, ca, work, acc)
                continue
            if kind == WHOLE:                          # take back this cell's constant
                acc -= (ca * block.weights[c]) * block.ek[c]
        acc += block.weights[c] * _general_cell(block, c, qg[c], qg[c] @ _general_rhs(block, c))
    return acc


def _drops_cell(block, c, q, prod, c2, a, ca, work, acc) -> None:
    """Adds w cos(eq, e) of a cell with drops (equal_distance, far from every key) to acc."""
    n = block.n
    r = len(q)
    cc, p, qh = prod[:, :n], prod[:, n:2 * n], prod[:, 2 * n:]
    n2 = np.matmul(q * q, block.m[c], out=work.n2[:r])
    t = np.multiply(cc, p, out=work.t[:r])
    t *= 2
    n2 -= t
    c2 *= block.m2[c]
    n2 += c2                                           # n2 - 2 c p + c^2 m2
    np.multiply(cc, block.m2[c], out=cc)
    p -= cc                                            # p - c m2
    n2 *= a
    n2 *= a
    p *= a
    p *= 2 * ca
    n2 += p
    n2 += block.den0[c]
    np.sqrt(np.maximum(n2, np.float32(1e-30), out=n2), out=n2)
    qh *= a
    qh += block.num0[c]
    qh /= n2
    acc += qh


def _drop1_cell(block, c, prod, a, t, acc) -> None:
    """Adds w cos(eq, e) of a cell where every template dropped one dimension."""
    n = block.n
    cc, qh, qx = prod[:, :n], prod[:, n:2 * n], prod[:, 2 * n:]
    np.multiply(cc, block.kx[c], out=t)
    qx -= t                                            # z = q_x - c k_x
    qx *= a                                            # a z
    np.add(qx, block.kx2[c], out=t)
    t *= qx                                            # a z (a z + 2 cos(alpha) k_x)
    np.subtract(block.den0[c], t, out=t)
    np.sqrt(np.maximum(t, np.float32(1e-30), out=t), out=t)
    qh *= a
    qh += block.num0[c]
    qh /= t
    acc += qh


def _general_rhs(block: TemplateBlock, c: int) -> np.ndarray:
    """[k | mk | me] of cell c (a fast-path cell that needs the general form)."""
    if block.kind[c] == GENERAL:
        return block.rhs[c]
    return np.concatenate([block.rhs[c][:, :block.n], block.mk[c], block.me[c]], axis=1)


def _general_cell(block: TemplateBlock, c: int, q: np.ndarray, prod: np.ndarray
                  ) -> np.ndarray:
    """(R, n) protected cosines of cell ``c`` from q @ [k | mk | me]: the closed form, any
    configuration."""
    cfg = block.config
    n = block.n
    cc, p, u = prod[:, :n], prod[:, n:2 * n], prod[:, 2 * n:]
    n2 = (q * q) @ block.m[c]
    a, b = slerp_coefficients(cc, cfg.t, cfg.rotation)
    num = a * u + b * block.ek[c] + block.ef[c]
    den = a * a * n2 + 2 * a * b * p + b * b * block.m2[c] + block.f2[c]
    return num / np.sqrt(np.maximum(den, 1e-30))


def best_shift_scores(block: TemplateBlock, queries: np.ndarray,
                      block_elements: int | None = None) -> np.ndarray:
    """(nq, n): every query (nq, S, G, d) against every template of the block, the best over
    its S windows -- the protected shift search, blocked so that memory stays bounded."""
    q = np.asarray(queries, np.float32)
    nq, s = q.shape[:2]
    n = block.n
    out = np.empty((nq, n), np.float32)
    step = max(1, (block_elements or BLOCK_ELEMENTS) // max(1, s * n))
    work = Workspace(step * s, n)
    win = np.empty((step * s, n), np.float32)
    for lo in range(0, nq, step):
        part = q[lo:lo + step]
        k = len(part)
        sc = window_scores(block, part.reshape(-1, *q.shape[2:]), work, win[:k * s])
        np.max(sc.reshape(k, s, n), axis=1, out=out[lo:lo + k])
    return out
