"""Protected galleries for the gate: loaded from the sealed store without doubling memory, and
matched with the K views fused.

``ProtectedGallery.add_arrays`` keeps chunks and concatenates them once (momentarily twice the
gallery in RAM: ~450 MB at 10,000 users x 3 templates). :class:`GalleryBuilder` preallocates
the final arrays instead -- a :class:`~device.gate.slot_gallery.SlotGallery`, with free slots
for later patches (:mod:`device.gate.gallery_refresh`) -- and fills them chunk by chunk. The
search functions below take any gallery: they score its live slots only.

View fusion (:func:`fused_scores`): every query view is scored against every template; a
template's score is the mean over views of its best-shift protected score (the "mean of the
view scores" of the multi-view protocol), a user's score the best of their templates. The
coarse pass scores the mean of the views' queries (every view's region is rectified to the
same palm frame, so their shifted windows correspond): one coarse product, whatever K.
"""
from __future__ import annotations

import logging

import numpy as np

from device.gate.slot_gallery import GalleryFull, SlotGallery
from device.protect.gallery import Match, ProtectedGallery

log = logging.getLogger(__name__)


class GalleryBuilder:
    """Fills a :class:`~device.gate.slot_gallery.SlotGallery` of ``n_templates`` (+
    ``headroom`` free slots for patches) chunk by chunk: the arrays are allocated once."""

    def __init__(self, config, weights, n_templates: int, dim: int = 16, headroom: int = 0,
                 **kw):
        self.n = int(n_templates)
        self.gal = SlotGallery(config, weights, self.n + int(headroom), dim=dim, **kw)

    @property
    def filled(self) -> int:
        return self.gal.hw

    def add_arrays(self, owners, data, keys, masks, fills=None) -> None:
        try:
            self.gal.add_arrays(owners, data, keys, masks, fills)
        except GalleryFull as e:
            raise ValueError(f"more templates than preallocated: {e}") from None

    def add(self, owner, tmpl) -> None:
        if tmpl.config != self.gal.config:
            raise ValueError("template was made with another protection configuration")
        f = None if tmpl.fill is None else tmpl.fill[None]
        self.add_arrays([owner], tmpl.data[None], tmpl.key[None], tmpl.mask[None], f)

    def finish(self) -> SlotGallery:
        return self.gal


def load_gallery(store, config, weights, when: float | None = None, select=None,
                 headroom: int = 0, users=None, **kw):
    """Gallery of the current-version templates of users active at ``when`` (all enabled
    users when None), read user by user. Returns (gallery, {user_id: template_version}).
    ``select(user)``: which users instead (the gate's gallery of inactive users);
    ``headroom``: free slots for later patches; ``users``: ``store.users()`` when the caller
    read them already (in the same snapshot)."""
    with store.snapshot():          # one view: another process may commit meanwhile
        return _load_gallery(store, config, weights, when, select, headroom, users, **kw)


def _load_gallery(store, config, weights, when, select, headroom, users, **kw):
    if select is None:
        def select(u):
            return u.enabled if when is None else u.active(when)
    users = [u for u in (store.users() if users is None else users) if select(u)]
    n = store.count()["templates"] if len(users) > 64 else \
        sum(len(store.templates(u.user_id)) for u in users)
    b = GalleryBuilder(config, weights, n, headroom=headroom, **kw)
    versions = {}
    other = set()
    for u in users:
        other |= add_user_templates(b.gal, store, u, config, versions)
    if other:
        log.warning("%d users have templates of another palm feature ([match] feature was "
                    "changed?) and cannot be matched until they are enrolled again: %s",
                    len(other), ", ".join(sorted(other)[:10]))
    return b.finish(), versions


def add_user_templates(gal, store, u, config, versions: dict) -> set:
    """Add user ``u``'s current-version templates of ``config`` to ``gal`` (and their version
    to ``versions``), as a full load does; returns {u.user_id} when their templates are of
    another palm feature (not added), else an empty set."""
    other = set()
    rows = []
    for uid, _, ver, t in store.templates(u.user_id):
        if ver != u.version or t.config != config:
            continue
        if t.data.shape[0] != gal.g:            # enrolled with the other [match] feature
            other.add(uid)
            continue
        rows.append(t)
    if rows:
        fills = None if rows[0].fill is None else np.stack([t.fill for t in rows])
        gal.add_arrays([u.user_id] * len(rows), np.stack([t.data for t in rows]),
                       np.stack([t.key for t in rows]), np.stack([t.mask for t in rows]),
                       fills)
        versions[u.user_id] = u.version
    return other


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
        return gal.live_slots()
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
    idx = gal.slots_of(owner)
    if idx.size == 0:
        return None
    sc = _fused_exact(gal, queries, idx)
    j = int(np.argmax(sc))
    return Match(int(idx[j]), owner, float(sc[j]), bool(sc[j] >= threshold), len(idx))
