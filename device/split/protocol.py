"""What one node computes, layer by layer, with its peer: the secret-shared feature extraction
and match of split mode (seed 003), two nodes.

Every function takes the node's ``role`` (0 or 1), a channel to the peer (``exchange(bytes)
-> bytes`` sends this node's message and returns the peer's, ``send``/``recv`` one way), the
node's shard (``device.split.dealer``) and the inference's triples, and returns this node's
share. Both nodes call the same functions in the same order (lock-step). Rounds per query in
shared mode (secret-shared kernels, claim 8): Gabor open, softmax recovery, PCA open,
normalisation recovery, match open, score opening to node 0 -- 6; in plain mode (plaintext
kernels, claim 9) 4.

Mask recovery (seed Fig. 9, with the spec's corrections): one random ownership bit per
*group* (a map pixel's 6 orientations; a cell's 16 dims), fresh per layer and inference from
the inference seed; node 0 owns the set bits, node 1 the rest. Each node sends its share at
the peer's positions, so each opens exactly its own positions, applies the non-linearity only
there and re-shares: the owner keeps v - R and the peer holds R, where R is a uniform stream
from the common seed. That is the seed's "split, keep one share, send the other" with the
sent share drawn from a PRG both nodes hold instead of transmitted (it is uniform either way),
saving a round and n/2 ring elements per layer.
"""
from __future__ import annotations

import struct

import numpy as np

from device.split.cellnet import (DENSE, F_N, F_R, F_S, F_SC, F_SCORE, F_U, F_Y, F_YU, MAP,
                                  TEMPLATE_ROWS, WINDOW_ROWS, cell_patches, gabor_patches,
                                  softmax_orient, unit_cells)
from device.recognition.cells import UNIT_EPS
from device.split.ring import U64, Prg, decode, derive, encode

S = len(WINDOW_ROWS)


class ProtocolError(RuntimeError):
    """The peer is out of step (another triple, another job) or an opened value is out of
    range: the transaction is denied."""


def to_bytes(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a, U64).tobytes()


def from_bytes(b: bytes, shape) -> np.ndarray:
    a = np.frombuffer(b, U64)
    if a.size != int(np.prod(shape)):
        raise ProtocolError(f"peer sent {a.size} ring elements, expected {int(np.prod(shape))}")
    return a.reshape(shape).copy()


def open_value(ch, mine: np.ndarray) -> np.ndarray:
    """Open a shared value to both nodes: one exchange."""
    return mine + from_bytes(ch.exchange(to_bytes(mine)), mine.shape)


def ownership(seed: bytes, layer: str, n: int) -> np.ndarray:
    """(n,) bool, True where node 0 owns the group; the complement is node 1's."""
    return Prg(derive(seed, "mask/" + layer)).bits(n)


def mask_recover(role: int, ch, share: np.ndarray, own0: np.ndarray, frac: int):
    """Open ``share`` (groups, width) at this node's groups only. Returns (mine, values)."""
    mine = own0 if role == 0 else ~own0
    got = from_bytes(ch.exchange(to_bytes(share[~mine])), share[mine].shape)
    return mine, decode(share[mine] + got, frac)


def reshare(mine: np.ndarray, owned_enc: np.ndarray, seed: bytes, layer: str,
            shape) -> np.ndarray:
    R = Prg(derive(seed, "reshare/" + layer)).ring(shape)
    out = R.copy()
    out[mine] = owned_enc - R[mine]
    return out


def offline_terms(shard: dict, tri: dict) -> dict:
    """The parts of this node's Beaver results that do not depend on the input,
    P(A_i) @ F + Z_i for the Gabor and the cell layer: computed while the node waits for
    the next job (``tri`` caches them), or on first use."""
    if "C1" not in tri:
        tri["C1"] = gabor_patches(tri["A1"]) @ shard["gab_F"] + tri["Z1"]
        tri["C2"] = cell_patches(tri["A2"]) @ shard["pca_F"] + tri["Z2"]
    return tri


def match_offline_term(gallery: "Gallery", mt: dict) -> np.ndarray:
    """G(A3_i) @ F3 + Z3_i over the live slots of the gallery, cached in ``mt`` for the
    gallery's state (its digest: slot count, tombstones, users), so that a term computed
    before a delete is never used after it (a tombstone is not a change of slot count)."""
    key = gallery.digest()
    if mt.get("C3_key") != key:
        c = gallery.live_columns()
        mt["C3"] = mt["A3"][WINDOW_ROWS].reshape(S, -1) @ gallery.F[:, c] + mt["Z3"][:, c]
        mt["C3_key"] = key
    return mt["C3"]


def gabor_layer(role: int, ch, shard: dict, tri: dict, x: np.ndarray) -> np.ndarray:
    """Shares of the strided Gabor responses (1024, 6) at F_R = F_X + F_K."""
    if shard["mode"] == "plain":
        # plaintext-kernel mode (claim 9): kernels in the clear, computed locally
        return gabor_patches(x) @ shard["gab_K"]
    # secret-shared-kernel mode (claim 8): Beaver triple with a fixed kernel mask
    e = open_value(ch, x - tri["A1"])
    W = shard["gab_B"] + shard["gab_F"] if role == 0 else shard["gab_B"]
    return gabor_patches(e) @ W + offline_terms(shard, tri)["C1"]


def softmax_layer(role: int, ch, shard: dict, tri: dict, r: np.ndarray) -> np.ndarray:
    """Soft orientation weights (6, 32, 32) at F_S by mask recovery over map pixels (the
    owner of a pixel sees its 6 responses)."""
    own0 = ownership(tri["seed"], "softmax", len(r))
    mine, vals = mask_recover(role, ch, r, own0, F_R)
    w = encode(softmax_orient(vals, shard["beta"]), F_S)
    s = reshare(mine, w, tri["seed"], "softmax", r.shape)
    return s.T.reshape(-1, MAP, MAP)


def squared_norms(role: int, ch, tri: dict, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1-2 of ``unit_layer``: shares of every pixel's squared response norm (1024, 1)
    at F_N, and the opened Er = r - Ar for the product."""
    both = open_value(ch, np.concatenate([r[:, 6:] - tri["Alo"], r[:, :6] - tri["Ar"]], 1))
    e, er = both[:, :6], both[:, 6:]
    sq = U64(2) * e * tri["Alo"] + tri["Zsq"]
    if role == 0:
        sq = sq + e * e
    return sq.sum(axis=1, keepdims=True, dtype=np.uint64), er


def unit_layer(role: int, ch, shard: dict, tri: dict, r: np.ndarray) -> np.ndarray:
    """Unit response vectors (6, 32, 32) at F_SU, opening only each pixel's squared norm to
    its owner.  ``r`` (1024, 12): the responses at F_KM and again at F_KL.
      1. open E = r_lo - Alo and Er = r - Ar (uniform), one round;
      2. squares on shares, r_lo^2 = E^2 + 2 E Alo + Alo^2, summed over the 6: |r|^2 at F_N;
      3. mask recovery of |r|^2 (one value per pixel) by the pixel's owner, which computes
         1/sqrt(|r|^2 + eps^2) and re-shares it at F_SC;
      4. open Es = s - Bs, one round; the product r * s = (Er + Ar)(Es + Bs) on shares.
    Every product stays in the ring (bounds in cellnet), so nothing is truncated."""
    n2, er = squared_norms(role, ch, tri, r)
    mine, vals = mask_recover(role, ch, n2, ownership(tri["seed"], "norm", len(n2)), F_N)
    s_own = encode(1.0 / np.sqrt(np.maximum(vals, 0.0) + UNIT_EPS ** 2), F_SC)
    s = reshare(mine, s_own, tri["seed"], "norm", n2.shape)
    es = open_value(ch, s - tri["Bs"])
    u = er * tri["Bs"] + tri["Ar"] * es + tri["Zrs"]
    if role == 0:
        u = u + er * es
    return u.T.reshape(-1, MAP, MAP)


def is_unit(shard: dict) -> bool:
    """Whether a shard is of the unit feature (a shard without an activation is softmax)."""
    return str(shard.get("activation", "softmax")) == "unit"


def cell_layer(role: int, ch, shard: dict, tri: dict, s: np.ndarray) -> np.ndarray:
    """Projected dense cells (841, 16) at F_Y = F_S + F_P, or F_YU for the unit feature (PCA
    of every 4x4 block, minus mean @ PCA)."""
    if shard["mode"] == "plain":
        return cell_patches(s) @ shard["pca_W"] + shard["bias"]
    e = open_value(ch, s - tri["A2"])
    W = shard["pca_B"] + shard["pca_F"] if role == 0 else shard["pca_B"]
    return cell_patches(e) @ W + offline_terms(shard, tri)["C2"] + shard["bias"]


def normalise_layer(role: int, ch, shard: dict, tri: dict, y: np.ndarray,
                    template: bool) -> np.ndarray:
    """Unit cells at F_U by mask recovery over cells. A template keeps only its 49 cells,
    each scaled by its importance (the owner does it on the opened cell), so that a match
    score is a plain inner product."""
    if template:
        y = y[TEMPLATE_ROWS]
    own0 = ownership(tri["seed"], "normalise", len(y))
    mine, vals = mask_recover(role, ch, y, own0, F_YU if is_unit(shard) else F_Y)
    u = unit_cells(vals)
    if template:
        u = u * shard["importance"][mine][:, None]
    return reshare(mine, encode(u, F_U), tri["seed"], "normalise", y.shape)


def extract(role: int, ch, shard: dict, tri: dict, x: np.ndarray,
            template: bool = False) -> np.ndarray:
    """This node's share of the feature of input share ``x`` (128x128 at F_X): the dense
    query map (841, 16), or the weighted template (49, 16)."""
    r = gabor_layer(role, ch, shard, tri, x)
    if is_unit(shard):
        s = unit_layer(role, ch, shard, tri, r)
    else:
        s = softmax_layer(role, ch, shard, tri, r)
    y = cell_layer(role, ch, shard, tri, s)
    return normalise_layer(role, ch, shard, tri, y, template)


# ---------------------------------------------------------------- gallery and matching

class Gallery:
    """One node's template slots: the opened masked templates F3 (784, capacity), this node's
    mask share B3, and which user holds which slot.

    Slots are used in order and never again: ``uids`` grows by one per enrolled view and a
    deleted (or half-enrolled) slot stays in place as a tombstone (``dead``; its F3 column
    zeroed), so the mask B3 of a slot masks one template only. Opening F' = T' - B3 next to
    an old F = T - B3 would give T' - T. The live slots are the ones that are matched."""

    def __init__(self, role: int, gal_B: np.ndarray):
        self.role = role
        self.B = gal_B
        self.F = np.zeros_like(gal_B)
        self.uids: list[str] = []
        self.dead = np.zeros(gal_B.shape[1], bool)
        self.reserve_hook = None        # node: fsync the slot high-water mark before opening
        self._cache: dict = {}

    @property
    def capacity(self) -> int:
        return self.B.shape[1]

    @property
    def n(self) -> int:
        """Slots used so far, tombstones included: the next template gets slot ``n``."""
        return len(self.uids)

    def _changed(self) -> None:
        self._cache = {}

    def live(self) -> np.ndarray:
        """Indices of the live slots (the columns that are matched)."""
        if "live" not in self._cache:
            self._cache["live"] = np.flatnonzero(~self.dead[:self.n])
        return self._cache["live"]

    def live_uids(self) -> list[str]:
        return [self.uids[k] for k in self.live()]

    def all_live(self) -> bool:
        return not self.dead[:self.n].any()

    def digest(self) -> bytes:
        """What the two nodes must agree on before a job: the slot count, which slots are
        dead and the user of every live slot (a dead slot's former user does not count: the
        node that never saved the slot does not know it)."""
        if "digest" not in self._cache:
            import hashlib
            h = hashlib.sha256(struct.pack(">Q", self.n))
            h.update(np.packbits(self.dead[:self.n]).tobytes())
            h.update("\x00".join("" if d else u
                                  for u, d in zip(self.uids, self.dead)).encode())
            self._cache["digest"] = h.digest()
        return self._cache["digest"]

    def live_columns(self):
        """The live slots as a column selector: a slice while no slot is dead (a view, no
        copy), else their indices."""
        return slice(0, self.n) if self.all_live() else self.live()

    def _W(self) -> np.ndarray:
        """This node's share of the live templates' weights: B3 + F3 (node 0) or B3."""
        c = self.live_columns()
        return self.B[:, c] + self.F[:, c] if self.role == 0 else self.B[:, c]

    def fill_from(self, F: np.ndarray, uids: list[str], dead=None) -> None:
        self.F[:, :F.shape[1]] = F
        self.uids = list(uids)
        self.dead[:] = False
        if dead is not None:
            self.dead[:len(dead)] = np.asarray(dead, bool)
            self.F[:, self.dead] = 0
        self._changed()

    def slots_of(self, uid: str) -> list[int]:
        return [k for k, u in enumerate(self.uids) if u == uid]

    def kill(self, slots) -> list[int]:
        """Tombstone ``slots``: their F3 columns overwritten with zeros, marked dead, never
        matched or reused. Returns the slots that were live."""
        slots = [int(k) for k in slots if 0 <= int(k) < self.n]
        was = [k for k in slots if not self.dead[k]]
        if slots:
            self.F[:, slots] = 0
            self.dead[slots] = True
            self._changed()
        return was

    def extend_dead(self, n: int) -> None:
        """Slots up to ``n`` that this node never saved (the peer did, or a template was
        opened and the node stopped before saving it): tombstones, so that their masks
        are never used again."""
        if n > self.capacity:
            raise ProtocolError(f"slot count {n} beyond this node's capacity {self.capacity}")
        while self.n < n:
            self.dead[self.n] = True
            self.F[:, self.n] = 0
            self.uids.append("")
        self._changed()


def enrol(role: int, ch, gallery: Gallery, uid: str, t: np.ndarray) -> int:
    """Store this node's template share ``t`` (49, 16) in the next fresh slot: the nodes
    open F3 = T - B3 for the slot (one exchange); the share itself need not be kept. The
    slot is reserved first (``reserve_hook``), so one opened and never saved is a
    tombstone after a restart, not a slot whose mask a later template would reuse."""
    k = gallery.n
    if k >= gallery.capacity:
        raise ProtocolError("gallery full: provision more template slots")
    if gallery.reserve_hook is not None:
        gallery.reserve_hook(k + 1)
    gallery.F[:, k] = open_value(ch, t.reshape(-1) - gallery.B[:, k])
    gallery.uids.append(uid)
    gallery._changed()
    return k


def match_shares(role: int, ch, gallery: Gallery, mt: dict, u: np.ndarray) -> np.ndarray:
    """Shares (25, K) of every live template's score at every shift: sum over cells of
    importance-weighted cosines, at F_SCORE. Beaver with the slot masks (one exchange).
    Tombstoned slots are not scored (their columns are left out on both nodes)."""
    e = open_value(ch, u - mt["A3"])
    G = lambda m: m[WINDOW_ROWS].reshape(S, -1)       # noqa: E731
    return G(e) @ gallery._W() + match_offline_term(gallery, mt)


def _open_scores(role: int, ch, shares: np.ndarray):
    """The designated opening of the scores: node 1 sends its shares and gets None; node 0
    adds them to its own and gets the scores (a range check catches a peer out of step)."""
    if role == 1:
        ch.send(to_bytes(shares))
        return None
    scores = decode(shares + from_bytes(ch.recv(), shares.shape), F_SCORE)
    if scores.size and np.abs(scores).max() > 1.0 + 1e-3:
        raise ProtocolError("opened score out of range: peer out of step")
    return scores


def decide(role: int, ch, shares: np.ndarray, threshold: float):
    """Node 1 sends its score shares to node 0, which sums them, takes the best shift of each
    template, then the best template (never a per-node maximum), and decides. Node 0
    returns (accept, index, best score, scores per template); node 1 returns None."""
    scores = _open_scores(role, ch, shares)
    if scores is None:
        return None
    per_t = scores.max(axis=0)
    if per_t.size == 0:
        return False, -1, float("-inf"), per_t
    k = int(per_t.argmax())
    return bool(per_t[k] >= threshold), k, float(per_t[k]), per_t


def decide_fused(role: int, ch, shares: np.ndarray, uids: list, threshold: float,
                 claimed: str | None = None):
    """The gate's decision over K views: node 1 sends its (K, 25, N) score shares to node 0,
    which sums them, takes each template's best shift per view, the mean over the views (the
    gate's view fusion), each user's best template (1:1: only the claimed user's), then the
    best user, and compares it with the threshold. The maximum is taken only on summed
    scores, never per node. Node 0 returns a dict {accept, uid, score, threshold[, unknown]};
    node 1 returns None."""
    scores = _open_scores(role, ch, shares)
    if scores is None:
        return None
    per_t = scores.max(axis=1).mean(axis=0) if scores.size else np.zeros(0)
    best: dict[str, float] = {}
    for u, s in zip(uids, per_t):
        if claimed is None or u == claimed:
            best[u] = max(best.get(u, -np.inf), float(s))
    out = {"accept": False, "uid": None, "score": None, "threshold": float(threshold),
           "templates": int(per_t.size)}
    if not best:
        out["unknown"] = claimed is not None
        return out
    uid = max(best, key=best.get)
    out.update(uid=uid, score=best[uid], accept=bool(best[uid] >= threshold))
    return out


def check_sync(ch, stock_i: int, stock_m: int, gallery: Gallery) -> tuple[int, int, dict]:
    """Bring two freshly paired nodes into step (one node may have restarted after a deny, a
    power cut or a delete that reached only one of them): both move to the later triple
    indices (a triple is skipped, never reused) and to the larger slot count, and a slot is
    live afterwards only where it is live on both nodes: a slot one node lacks (saved by the
    peer only, or opened and never saved) and a slot either node has tombstoned become
    tombstones on both (the union of the deletes; a slot is never dropped and reused).
    Galleries that still differ (another user in a live slot) are a ProtocolError. Three
    exchanges. Returns (inference index, match index, {"added": slots this node lacked,
    "killed": slots it tombstoned because of the peer})."""
    mine = struct.pack(">QQQ", stock_i, stock_m, gallery.n)
    i1, m1, n1 = struct.unpack(">QQQ", ch.exchange(mine))
    n = max(gallery.n, n1)
    added = list(range(gallery.n, n))
    gallery.extend_dead(n)
    bits = np.packbits(gallery.dead[:n]).tobytes()
    got = ch.exchange(bits)
    if len(got) != len(bits):
        raise ProtocolError("peer sent a tombstone map of another size")
    peer_dead = np.unpackbits(np.frombuffer(got, np.uint8))[:n].astype(bool)
    killed = gallery.kill(np.flatnonzero(peer_dead & ~gallery.dead[:n]))
    h = gallery.digest()
    if ch.exchange(h) != h:
        raise ProtocolError("the two nodes' galleries differ: re-provision or restore them")
    return max(stock_i, i1), max(stock_m, m1), {"added": added, "killed": killed}


def check_step(ch, job: int, triple: int, gallery: Gallery | None = None) -> None:
    """Both nodes must be at the same job and triple index and (with ``gallery``) hold the
    same gallery state (slot count, tombstones, users): one exchange before each job. A
    delete that reached one node only therefore denies every job until the nodes are
    paired again and ``check_sync`` has applied it on both."""
    mine = struct.pack(">QQ", job, triple) + (gallery.digest() if gallery is not None
                                              else b"")
    if ch.exchange(mine) != mine:
        raise ProtocolError("peer is at another job or triple, or holds another gallery "
                            "(a delete not yet on both nodes): deny")


# ------------------------------------------------- generic layers (CNN-shaped feature models)

def activation_layer(role: int, ch, seed: bytes, layer: str, x: np.ndarray, fn,
                     frac_in: int, frac_out: int) -> np.ndarray:
    """Element-wise activation by mask recovery: fresh element-wise ownership, ``fn`` applied
    only to the opened, owned values (never to the masked zeros, so sigmoid-like functions with
    fn(0) != 0 stay exact), re-shared at ``frac_out``."""
    flat = x.reshape(-1, 1)
    own0 = ownership(seed, layer, len(flat))
    mine, vals = mask_recover(role, ch, flat, own0, frac_in)
    return reshare(mine, encode(fn(vals), frac_out), seed, layer, flat.shape).reshape(x.shape)


def avg_pool_sum(x: np.ndarray, k: int) -> np.ndarray:
    """Average pooling on shares, local and exact: the k x k window sums of (C, H, W); the 1/k^2
    belongs to the next layer's weights (or to the next opening's scale)."""
    c, h, w = x.shape
    return x[:, :h - h % k, :w - w % k].reshape(c, h // k, k, w // k, k).sum(axis=(2, 4))


def max_pool_layer(role: int, ch, seed: bytes, layer: str, x: np.ndarray, k: int,
                   frac: int) -> np.ndarray:
    """Exact max pooling by mask recovery with window-aligned masks: each k x k window belongs
    wholly to one node, which opens it, takes its max and re-shares (C, H/k, W/k)."""
    c, h, w = x.shape
    win = (x.reshape(c, h // k, k, w // k, k).transpose(0, 1, 3, 2, 4)
           .reshape(-1, k * k))
    own0 = ownership(seed, layer, len(win))
    mine, vals = mask_recover(role, ch, win, own0, frac)
    out = reshare(mine, encode(vals.max(axis=1, keepdims=True), frac), seed, layer,
                  (len(win), 1))
    return out.reshape(c, h // k, w // k)


FIG9_MASK = np.array([[1, 0, 1, 0], [0, 1, 1, 0], [1, 1, 0, 1], [0, 0, 1, 0]], bool)


def naive_max_pool_fig9(values: np.ndarray, k: int = 2) -> np.ndarray:
    """The seed's literal Fig. 9/10 max pooling, for the regression test only: each node
    max-pools its zero-masked recovery (Fig. 9 pattern, not window-aligned) and the results
    are added. Not equal to the max pool of ``values`` (4x4)."""
    m = FIG9_MASK
    pool = lambda v: v.reshape(2, k, 2, k).max(axis=(1, 3))     # noqa: E731
    return pool(np.where(m, values, 0.0)) + pool(np.where(~m, values, 0.0))


__all__ = ["ProtocolError", "Gallery", "extract", "enrol", "match_shares", "decide",
           "decide_fused", "check_sync",
           "check_step", "open_value", "mask_recover", "reshare", "ownership",
           "to_bytes", "from_bytes", "DENSE"]
