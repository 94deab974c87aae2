"""The gate's protected gallery, patched in place: preallocated slots, free slots reused.

A full reload of a 10,000-user gallery decrypts and re-derives every template; a site sends
its changes (enrolments, revocations, access times) to every gate, so each change would cost
the next presenter that reload. :class:`SlotGallery` keeps the arrays of a
:class:`~device.protect.gallery.ProtectedGallery` at a fixed capacity:

- a template lives in a *slot* (a row of every array); slots ``[0, hw)`` have been used
  (``hw``: the high-water mark), those above it were never touched (np.zeros: their pages
  are not resident until written);
- removing an owner marks their slots dead -- the rows are zeroed, the owner is ``None``,
  the slot goes to the free heap -- and adding reuses the lowest free slot first, so the
  arrays are never copied or concatenated;
- every per-template result (``coarse``, ``exact`` with no index, ``owners``) is indexed by
  slot over ``[0, hw)``; dead slots score ``-inf``, so the int8 coarse pass and the exact
  pass never put a dead slot on a shortlist, and ``search``/``verify`` never return one;
- :meth:`compact` moves live rows from the top into the dead slots below (a few rows at a
  time, in place) when the dead share is large: the coarse pass covers ``hw`` rows;
- a patch that needs more slots than are free raises :class:`GalleryFull`: the caller
  reloads the whole gallery (the old one dropped first), so the memory is never above what
  a fresh load takes.
"""
from __future__ import annotations

import heapq

import numpy as np

from device.protect.gallery import Match, ProtectedGallery


class GalleryFull(Exception):
    """More templates than the gallery's free slots: reload it with a new capacity."""


def headroom(n_templates: int) -> int:
    """Spare slots of a gallery loaded with ``n_templates``: new enrolments between full
    reloads (a re-enrolment reuses its own slots). Untouched, they cost no resident memory."""
    return max(64, int(n_templates) // 16)


class SlotGallery(ProtectedGallery):
    """A :class:`ProtectedGallery` of ``capacity`` slots, patched in place."""

    def __init__(self, config, weights, capacity: int, dim: int = 16, **kw):
        super().__init__(config, weights, dim=dim, **kw)
        self.capacity = int(capacity)
        n, g = self.capacity, self.g
        kr = 1 if config.key_mode == "shared" else g
        self._e = np.zeros((n, g, self.storage.cell_width(dim)), self._sdt)
        self._k = np.zeros((n, kr, self.storage.key_width(dim)), self._sdt)
        self._mbits = np.zeros((n, (g * dim + 7) // 8), np.uint8)
        if self._f is not None:
            self._f = np.zeros((n, g, dim), np.float32)
            self._ef = np.zeros((n, g), np.float32)
        self._xc = np.zeros((n, g * self.coarse_dims), np.uint8)
        self._live = np.zeros(n, bool)
        self._owners: list = []           # owner of each slot below hw; None: dead
        self._slots: dict = {}            # owner -> [slots]
        self._free: list = []             # heap of dead slots below hw
        self._n_live = 0

    # ------------------------------------------------------------------ state
    @property
    def hw(self) -> int:
        """Slots used so far (live or dead): every slot-indexed result has this length."""
        return len(self._owners)

    def __len__(self) -> int:
        return self._n_live

    def free(self) -> int:
        """Slots a patch can still fill."""
        return len(self._free) + self.capacity - self.hw

    def dead(self) -> int:
        return self.hw - self._n_live

    def live_slots(self) -> np.ndarray:
        return np.flatnonzero(self._live[:self.hw])

    def slots_of(self, owner) -> np.ndarray:
        return np.array(sorted(self._slots.get(owner, ())), np.int64)

    def owner_set(self) -> set:
        return set(self._slots)

    # ------------------------------------------------------------------ patching
    def _take(self, n: int) -> np.ndarray:
        if n > self.free():
            raise GalleryFull(f"{n} templates to add, {self.free()} free slots of "
                              f"{self.capacity}")
        k = min(n, len(self._free))
        out = [heapq.heappop(self._free) for _ in range(k)]
        top = self.hw
        out += range(top, top + n - k)
        self._owners.extend([None] * (n - k))
        return np.asarray(sorted(out), np.int64)

    def add_arrays(self, owners, data, keys, masks, fills=None) -> int:
        """Put templates into free slots (the lowest first); returns the first slot."""
        owners = list(owners)
        if not owners:
            return self.hw
        if len(owners) > self.free():           # before any work: nothing half-added
            raise GalleryFull(f"{len(owners)} templates to add, {self.free()} free slots "
                              f"of {self.capacity}")
        own, me, k, mb, f, ef, x = self.pack(owners, data, keys, masks, fills)
        slots = self._take(len(own))
        lo, hi = int(slots[0]), int(slots[-1]) + 1
        sl = slice(lo, hi) if hi - lo == len(slots) and np.all(np.diff(slots) == 1) else slots
        self._e[sl], self._k[sl], self._mbits[sl], self._xc[sl] = me, k, mb, x
        if self._f is not None:
            self._f[sl], self._ef[sl] = f, ef
        self._live[sl] = True
        for s, o in zip(slots.tolist(), own):
            self._owners[s] = o
            self._slots.setdefault(o, []).append(s)
        self._n_live += len(own)
        return int(slots.min())

    def remove_owners(self, owners) -> int:
        """Every template of each of ``owners``: slots dead (rows zeroed), free for reuse."""
        gone = []
        for o in set(owners):
            gone += self._slots.pop(o, [])
        if not gone:
            return 0
        idx = np.asarray(sorted(gone), np.int64)
        self._live[idx] = False                 # first: no search sees them from here on
        for a in self._arrays():
            a[idx] = 0
        for s in idx.tolist():
            self._owners[s] = None
            heapq.heappush(self._free, s)
        self._n_live -= len(idx)
        return len(idx)

    def _arrays(self) -> list:
        out = [self._e, self._k, self._mbits, self._xc]
        return out + ([self._f, self._ef] if self._f is not None else [])

    def needs_compaction(self, share: float = 0.25) -> bool:
        return self.dead() > max(64, share * self.hw)

    def compact(self, step: int = 1024) -> int:
        """Move the live rows above ``len(self)`` into the dead slots below it, ``step`` rows
        at a time (no array is copied whole); ``hw`` becomes ``len(self)``. Returns the rows
        moved."""
        n = self._n_live
        src = np.flatnonzero(self._live[n:self.hw]) + n
        dst = np.flatnonzero(~self._live[:n])
        assert len(src) == len(dst)
        for lo in range(0, len(src), step):
            s, d = src[lo:lo + step], dst[lo:lo + step]
            for a in self._arrays():
                a[d] = a[s]
                a[s] = 0
            self._live[d], self._live[s] = True, False
            for i, j in zip(s.tolist(), d.tolist()):
                o = self._owners[i]
                self._owners[j], self._owners[i] = o, None
                sl = self._slots[o]
                sl[sl.index(i)] = j
        del self._owners[n:]
        self._free = []
        return len(src)

    # ------------------------------------------------------------------ scoring
    def coarse(self, queries: np.ndarray) -> np.ndarray:
        """Coarse scores of slots ``[0, hw)``; dead slots ``-inf``."""
        hw = self.hw
        s = self._coarse_rows(self._xc[:hw], queries)  # a view: the slots in use
        s[~self._live[:hw]] = -np.inf
        return s

    def exact(self, queries: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
        """Exact scores (n, S) of slots ``idx`` (all slots below ``hw`` if None; dead slots
        ``-inf``)."""
        idx = np.arange(self.hw) if idx is None else np.asarray(idx, np.int64)
        out = super().exact(queries, idx)
        out[~self._live[idx]] = -np.inf
        return out

    def search(self, queries, threshold: float = -np.inf, exhaustive: bool = False,
               shortlist: int | None = None) -> Match | None:
        if self._n_live == 0:
            return None
        q = np.asarray(queries, np.float32)
        k = min(self._n_live, shortlist or self.shortlist_size())
        if exhaustive or k >= self._n_live:
            idx = self.live_slots()
        else:
            idx = np.argpartition(-self.coarse(q), k - 1)[:k]
        best = self.exact(q, idx).max(1)
        j = int(np.argmax(best))
        return Match(int(idx[j]), self._owners[idx[j]], float(best[j]),
                     bool(best[j] >= threshold), len(idx))

    def verify(self, queries, owner, threshold: float = -np.inf) -> Match | None:
        idx = self.slots_of(owner)
        if idx.size == 0:
            return None
        best = self.exact(queries, idx).max(1)
        j = int(np.argmax(best))
        return Match(int(idx[j]), owner, float(best[j]), bool(best[j] >= threshold), len(idx))
