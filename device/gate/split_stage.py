"""The gate's split-mode stages (``[split] mode = "split"``, seed 003): the terminal side of
``device.split``.

The pipeline's feature stage (:meth:`SplitStage.send`) splits every usable view's palm
region into two additive shares in Z_2^64 with a fresh ``os.urandom`` seed, sends one share
to each node and drops the regions (the decision's in-memory ``rois`` too); its match stage
(:meth:`SplitStage.match`) waits for the two nodes, which extract the feature and score every
template on shares; node 0 sums the score shares, fuses the views as the plaintext gate does
(best shift, mean over views, best template of each user, best user; 1:1: the claimed
user only) and decides with its threshold. Enrolment (:meth:`SplitStage.enrol`) leaves each
node its share of every view's template and the terminal nothing but the audit record.

Faults are denies with a reason and never open the relay:

    split:node_unavailable   a node cannot be reached (connect / pairing timeout)
    split:link_error         no answer within reply_timeout_s, a closed link, or a tampered,
                             replayed or dropped frame on the terminal-node link
    split:node_deny          a node aborted the job (its peer link failed authentication or
                             sequencing, the nodes were out of step, triples ran out ...)
    no_match / unknown_user  as in the plaintext gate

After any fault the terminal drops both links; the next presentation connects again, so the
gate recovers by itself once both nodes are back and paired (``device.split.node.run_node``).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from device.gate.config import ConfigError, split_address
from device.gate.pipeline import Deny

log = logging.getLogger("palmgate.gate")

# Node 0's threshold (palmgate node --threshold) for the synthetic hands of the tests and the
# bench. Split mode decides on the unprotected importance-weighted cell score (the protected
# score of seed 002 is a plaintext-side transform), so the demo's DEMO_THRESHOLD, which is on
# the protected scale, does not apply. Synthetic people of another seed (100; 8 enrolled with
# 2 bursts, 16 genuine and 16 impostor presentations, K=3): genuine fused cell scores
# 0.30..0.58, best impostor 0.18, best score against another enrolled person 0.21.
SYNTHETIC_THRESHOLD = 0.25


class SplitUnavailable(RuntimeError):
    """Enrolment could not be done on the nodes (the message says why)."""


class SplitStage:
    def __init__(self, cfg):
        sp = cfg.split
        self.sp = sp
        self.addr = (split_address(sp, "node0"), split_address(sp, "node1"))
        kp = Path(sp.dir) / "terminal_keys.npz"
        try:
            from device.split.provision import terminal_keys
            self.keys = terminal_keys(sp.dir)
        except FileNotFoundError:
            raise ConfigError(f"split.dir: {kp} not found (python -m device.split provision "
                              f"--out DIR writes it)") from None
        except Exception as e:     # noqa: BLE001 - a damaged npz
            raise ConfigError(f"split.dir: {kp} is not a terminal key file: {e}") from None
        if any(len(k) != 32 for k in self.keys):
            raise ConfigError(f"split.dir: {kp} does not hold two 32-byte link keys")
        self.terminal = None
        self.pending = False            # a job was sent whose answers were not read
        self.last: dict = {}            # node 0's last answer (link statistics), for benches

    # ------------------------------------------------------------------ links
    def _connect(self):
        if self.terminal is None:
            from device.split.node import Terminal
            from device.split.transport import ChannelError
            try:
                self.terminal = Terminal(*self.addr, *self.keys,
                                         timeout=self.sp.connect_timeout_s,
                                         reply_timeout=self.sp.reply_timeout_s)
            except (ChannelError, OSError) as e:
                raise Deny("split:node_unavailable", "please present your palm again",
                           str(e)) from None
        return self.terminal

    def drop(self):
        """Forget both links (after any fault): the next presentation connects again."""
        t, self.terminal, self.pending = self.terminal, None, False
        if t is not None:
            t.close(polite=False)

    def close(self):
        t, self.terminal = self.terminal, None
        if t is not None:
            t.close()

    @staticmethod
    def _stack(rois) -> np.ndarray:
        x = np.stack([np.asarray(r, np.float64) for r in rois])
        if x.shape[1:] != (128, 128):
            raise ValueError(f"split mode needs 128x128 palm regions, got {x.shape[1:]}")
        return x

    # ------------------------------------------------------------------ presentation
    def send(self, rois, claimed, out):
        """Feature stage: split the views' regions and send one share to each node."""
        from device.split.local import split_input
        from device.split.node import pack
        from device.split.transport import ChannelError
        if self.pending:                # the last job's answers were never read (a stage
            self.drop()                 # limit ran out between send and match): start afresh
        t = self._connect()
        x0, x1 = split_input(self._stack(rois))       # fresh os.urandom seed per call
        out.rois = []                                  # the terminal keeps no palm region
        meta = {"op": "identify"}
        if claimed is not None:
            meta["claimed"] = str(claimed)
        try:
            self.pending = True
            for ch, x in zip(t.ch, (x0, x1)):
                ch.send(pack(meta, {"x": x}))
        except ChannelError as e:
            self.drop()
            raise Deny("split:link_error", "please present your palm again", str(e)) from None
        finally:
            del x0, x1
        return claimed

    def match(self, claimed, out):
        """Match stage: the nodes' answers; node 0's decision."""
        from device.split.node import unpack
        from device.split.transport import ChannelError
        t = self.terminal
        try:
            (m0, _), (m1, _) = [unpack(ch.recv()) for ch in t.ch]
            self.pending = False
        except ChannelError as e:
            self.drop()
            raise Deny("split:link_error", "please present your palm again", str(e)) from None
        if m0.get("deny") or m1.get("deny"):
            self.drop()
            raise Deny("split:node_deny", "please present your palm again",
                       m0.get("error") or m1.get("error") or "")
        self.last = m0
        out.score, out.threshold = m0.get("score"), m0.get("threshold")
        if m0.get("unknown"):
            raise Deny("unknown_user", "", f"claimed id {claimed!r} is not enrolled")
        if m0.get("uid") is None:
            raise Deny("no_match", "", "nobody is enrolled on the nodes")
        if not m0.get("accept"):
            raise Deny("no_match")
        out.user_id = m0["uid"]
        return m0

    # ------------------------------------------------------------------ enrolment
    def enrol(self, user_id: str, rois) -> dict:
        """Each view's template share to each node (one slot per view). Returns node 0's
        answer ({slots, ...}); raises SplitUnavailable."""
        from device.split.protocol import ProtocolError
        from device.split.transport import ChannelError
        if self.pending:
            self.drop()
        try:
            t = self._connect()
        except Deny as d:
            raise SplitUnavailable(f"{d.reason}: {d.detail}") from None
        try:
            return t.enrol(user_id, self._stack(rois))
        except (ChannelError, ProtocolError) as e:
            self.drop()
            raise SplitUnavailable(f"split enrolment failed: {e}") from None


def split_stage(cfg):
    """The SplitStage of a configuration in split mode, else None."""
    sp = getattr(cfg, "split", None)
    return SplitStage(cfg) if sp is not None and sp.mode == "split" else None
