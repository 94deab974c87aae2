"""Protected galleries for the gate: loaded from the sealed store without doubling memory, and
matched with the K views fused.

``ProtectedGallery.add_arrays`` keeps chunks and concatenates them once (momentarily twice the
gallery in RAM: ~450 MB at 10,000 users x 3 templates). :class:`GalleryBuilder` preallocates
the final arrays instead and fills them chunk by chunk, using the gallery's own ``add_arrays``
for the per-template math.

View fusion (:func:`fused_scores`): every query view is scored against every template; a
template's score is the mean over views of its best-shift protected score (the "mean of the
view scores" of the multi-view protocol), a user's score the best of their templates. The
coarse pass scores the mean of the views' queries (every view's region is rectified to the
same palm frame, so their shifted windows correspond): one coarse product, whatever K.
"""
from __future__ import annotations

import logging

import numpy as np

from device.protect.gallery import Match, ProtectedGallery

log = logging.getLogger(__name__)


class GalleryBuilder:
    def __init__(self, config, weights, n_templates: int, dim: int = 16, **kw):
        self.gal = ProtectedGallery(config, weights, dim=dim, **kw)
        g = self.gal
        kr = 1 if config.key_mode == "shared" else g.g
        self.n = int(n_templates)
        g._e = np.zeros((self.n, g.g, g.storage.cell_width(dim)), g._sdt)
        g._k = np.zeros((self.n, kr, g.storage.key_width(dim)), g._sdt)
        g._mbits = np.zeros((self.n, (g.g * dim + 7) // 8), np.uint8)
        if g._f is not None:
            g._f = np.zeros((self.n, g.g, dim), np.float32)
            g._ef = np.zeros((self.n, g.g), np.float32)
        g._xc = np.zeros((self.n, g.g * g.coarse_dims), np.uint8)
        self._tmp = ProtectedGallery(config, weights, dim=dim, **kw)
        self.filled = 0

    def add_arrays(self, owners, data, keys, masks, fills=None) -> None:
        n = len(data)
        if self.filled + n > self.n:
            raise ValueError("more templates than preallocated")
        self._tmp._chunks = []
        self._tmp.add_arrays(owners, data, keys, masks, fills)
        own, me, k, mb, f, ef, x = self._tmp._chunks.pop()
        g, sl = self.gal, slice(self.filled, self.filled + n)
        g._e[sl], g._k[sl], g._mbits[sl], g._xc[sl] = me, k, mb, x
        if g._f is not None:
            g._f[sl], g._ef[sl] = f, ef
        g._owners.extend(own)
        self.filled += n

    def add(self, owner, tmpl) -> None:
        f = None if tmpl.fill is None else tmpl.fill[None]
        self.add_arrays([owner], tmpl.data[None], tmpl.key[None], tmpl.mask[None], f)

    def finish(self) -> ProtectedGallery:
        g = self.gal
        if self.filled < self.n:                    # fewer than counted (disabled users)
            n = self.filled
            g._e, g._k, g._mbits = g._e[:n], g._k[:n], g._mbits[:n]
            g._xc = g._xc[:n]
            if g._f is not None:
                g._f, g._ef = g._f[:n], g._ef[:n]
        self._tmp = None
        return g


def load_gallery(store, config, weights, when: float | None = None, select=None, **kw):
    """Gallery of the current-version templates of users active at ``when`` (all enabled
    users when None), read user by user. Returns (gallery, {user_id: template_version}).
    ``select(user)``: which users instead (the gate's gallery of inactive users)."""
    with store.snapshot():          # one view: another process may commit meanwhile
        return _load_gallery(store, config, weights, when, select, **kw)


def _load_gallery(store, config, weights, when, select, **kw):
    if select is None:
        def select(u):
            return u.enabled if when is None else u.active(when)
    users = [u for u in store.users() if select(u)]
    n = store.count()["templates"] if len(users) > 64 else \
        sum(len(store.templates(u.user_id)) for u in users)
    b = GalleryBuilder(config, weights, n, **kw)
    versions = {}
    other = set()
    for u in users:
        for uid, _, ver, t in store.templates(u.user_id):
            if ver != u.version or t.config != config:
                continue
            if t.data.shape[0] != b.gal.g:      # enrolled with the other [match] feature
                other.add(uid)
                continue
            b.add(uid, t)
            versions[uid] = ver
    if other:
        log.warning("%d users have templates of another palm feature ([match] feature was "
                    "changed?) and cannot be matched until they are enrolled again: %s",
                    len(other), ", ".join(sorted(other)[:10]))
    return b.finish(), versions


def _fused_exact(gal: ProtectedGallery, queries, idx) -> np.ndarray:
    """Mean over views of each template's best-shift exact score: the K views' S windows go
    through one exact pass (K*S query rows)."""
    q = np.asarray(queries, np.float32)
    k, s = q.shape[:2]
    return gal.exact(q.reshape(k * s, *q.shape[2:]), idx).reshape(len(idx), k, s).max(2).mean(1)


def shortlist_of(gal: ProtectedGallery, queries, shortlist: int | None = None) -> np.ndarray:
    """Indices of the templates the exact pass scores: all of a small gallery, else the
    ``shortlist`` best by coarse score of the views' mean query."""
    n = len(gal)
    k = min(n, shortlist or gal.shortlist_size())
    if k >= n:
        return np.arange(n)
    s0 = gal.coarse(np.mean(np.asarray(queries, np.float32), axis=0))
    return np.argpartition(-s0, k - 1)[:k]


def fused_search(gal: ProtectedGallery, queries, threshold: float = -np.inf,
                 shortlist: int | None = None) -> Match | None:
    """1:N with K query views (each (S, G, d)); coarse scores summed over views."""
    if len(gal) == 0:
        return None
    idx = shortlist_of(gal, queries, shortlist)
    sc = _fused_exact(gal, queries, idx)
    j = int(np.argmax(sc))
    return Match(int(idx[j]), gal.owners[idx[j]], float(sc[j]), bool(sc[j] >= threshold),
                 len(idx))


def fused_verify(gal: ProtectedGallery, queries, owner, threshold: float = -np.inf
                 ) -> Match | None:
    """1:1: only ``owner``'s templates are scored."""
    idx = np.array([i for i, o in enumerate(gal.owners) if o == owner], np.int64)
    if idx.size == 0:
        return None
    sc = _fused_exact(gal, queries, idx)
    j = int(np.argmax(sc))
    return Match(int(idx[j]), owner, float(sc[j]), bool(sc[j] >= threshold), len(idx))
