"""Both nodes in one process (two threads over a socketpair with the real AES-GCM channel):
what the tests and the 1,000-input correctness run use. The arithmetic and the messages are
those of two processes; only the scheduling differs."""
from __future__ import annotations

import threading

import numpy as np

from device.split.cellnet import F_U, F_X
from device.split.protocol import Gallery, check_step, decide, enrol, extract, match_shares
from device.split.ring import Prg, decode, encode, fresh_seed, share
from device.split.transport import socket_pair_channels


def split_input(roi: np.ndarray, prg: Prg | None = None):
    """The terminal's split of a grey ROI: shares (x0, x1) at F_X, x0 uniform."""
    return share(encode(np.asarray(roi, np.float64), F_X), prg or Prg(fresh_seed()))


def run_pair(fn, *args_per_role):
    """Run ``fn(role, *args)`` for roles 0 and 1 concurrently; return both results."""
    out, err = [None, None], []

    def go(role):
        try:
            out[role] = fn(role, *(a[role] for a in args_per_role))
        except BaseException as e:          # surfaced to the caller
            err.append(e)

    t = threading.Thread(target=go, args=(1,))
    t.start()
    go(0)
    t.join()
    if err:
        raise err[0]
    return out


class LocalPair:
    """Two nodes with a dealer, in one process."""

    def __init__(self, dealer, seed: bytes | None = None):
        self.dealer = dealer
        self.shards = dealer.model_shards()
        self.ch = socket_pair_channels(self.shards[0]["key_peer"])
        self.galleries = [Gallery(i, self.shards[i]["gal_B"]) for i in (0, 1)]
        self.prg = Prg(seed or fresh_seed())
        self.job = 0

    def _extract(self, roi, template):
        tri = self.dealer.inference_triples()
        x = split_input(roi, self.prg)
        self.job += 1
        job = self.job

        def node(role, ch, shard, t, xs):
            check_step(ch, job, job)
            return extract(role, ch, shard, t, xs, template=template)

        return run_pair(node, self.ch, self.shards, tri, x)

    def feature(self, roi, template: bool = False) -> np.ndarray:
        """Reconstructed split feature (841, 16) or weighted template (49, 16): evaluation only,
        a gate never puts the shares together."""
        s0, s1 = self._extract(roi, template)
        return decode(s0 + s1, F_U)

    def enrol(self, uid: str, roi, reveal: bool = False):
        """Split enrolment; with ``reveal`` (evaluation only) also the reconstructed
        weighted template (49, 16)."""
        shares = self._extract(roi, True)
        run_pair(lambda r, ch, g, t: enrol(r, ch, g, uid, t), self.ch, self.galleries, shares)
        return decode(shares[0] + shares[1], F_U) if reveal else None

    def identify(self, roi, threshold: float, reveal: bool = False):
        """Node 0's (accept, index, score, scores per template); with ``reveal`` (evaluation
        only) also the reconstructed dense query feature."""
        shares = self._extract(roi, False)
        mt = self.dealer.match_triples()

        def node(role, ch, g, m, u):
            return decide(role, ch, match_shares(role, ch, g, m, u), threshold)

        res = run_pair(node, self.ch, self.galleries, mt, shares)[0]
        return (res, decode(shares[0] + shares[1], F_U)) if reveal else res

    def import_gallery(self, templates: np.ndarray, uids) -> None:
        F = self.dealer.gallery_from_plain(templates)
        for g in self.galleries:
            g.fill_from(F, uids)

    def share_template(self, t: np.ndarray):
        return share(encode(t, F_U), self.prg)
