"""The node program (``palmgate node --role 0|1``) and the terminal's client.

A node holds its model shard and template-slot masks (``shard.npz``), a stock of inference
and match triples from the dealer (``triples.npz``, consumed in order and never reused) and
its gallery (``gallery.npz``: opened masked templates and user ids). It accepts the terminal
on one link and meets its peer on another (node 1 listens, node 0 connects; a serial port is
symmetric), both ``SecureChannel``s. Jobs from the terminal:

    enrol    {uid} + input share   -> both nodes extract a template share and open its slot
    identify {} + input share      -> shares of every score, opened to node 0, which decides
                                      (max over shifts, then over templates) and answers
                                      {accept, uid, score}; node 1 answers {ok}
    reveal   {} + input share      -> evaluation only (node started with --allow-reveal):
                                      each node returns its feature share
    bye

Any ChannelError or ProtocolError answers the terminal with a deny and ends the node (its
session with the peer is no longer in step); the terminal treats a missing answer as a deny.
"""
from __future__ import annotations

import json
import os
import struct
import sys
import time
from pathlib import Path

import numpy as np

from device.split.cellnet import F_U
from device.split.dealer import load_shard
from device.split.protocol import (Gallery, ProtocolError, check_step, decide, enrol,
                                   extract, match_shares)
from device.split.ring import Prg, fresh_seed
from device.split.transport import ChannelError, SecureChannel, open_link

DEFAULT_THRESHOLD = 0.45     # operating point of the unprotected cell score; set per gate


def pack(meta: dict, arrays: dict | None = None) -> bytes:
    arrays = arrays or {}
    spec = {k: [str(v.dtype), list(v.shape)] for k, v in arrays.items()}
    head = json.dumps({"meta": meta, "arrays": spec}).encode()
    return struct.pack(">I", len(head)) + head + b"".join(
        np.ascontiguousarray(v).tobytes() for v in arrays.values())


def unpack(b: bytes) -> tuple[dict, dict]:
    (n,) = struct.unpack(">I", b[:4])
    head = json.loads(b[4:4 + n])
    out, pos = {}, 4 + n
    for k, (dt, shape) in head["arrays"].items():
        size = int(np.prod(shape)) * np.dtype(dt).itemsize
        out[k] = np.frombuffer(b[pos:pos + size], dt).reshape(shape).copy()
        pos += size
    return head["meta"], out


def save_triples(path, inference: list[dict], match: list[dict]) -> None:
    """Stack a node's triples into one file: ``inf_<name>`` and ``match_<name>``."""
    arr = {}
    for prefix, items in (("inf_", inference), ("match_", match)):
        if not items:
            continue
        for k in items[0]:
            v = [np.frombuffer(t[k], np.uint8) if isinstance(t[k], bytes) else t[k]
                 for t in items]
            arr[prefix + k] = np.stack(v)
    with open(path, "wb") as f:
        np.savez(f, **arr)
    os.chmod(path, 0o600)


class TripleStock:
    """Triples consumed in order; each index is used once, also across restarts: the next
    indices are written (and fsynced) to ``<path>.used`` before a triple is handed out."""

    def __init__(self, path):
        z = np.load(path)
        self.inf = {k[4:]: z[k] for k in z.files if k.startswith("inf_")}
        self.match = {k[6:]: z[k] for k in z.files if k.startswith("match_")}
        self._used = Path(str(path) + ".used")
        self.i = self.m = 0
        self._ready: dict = {}
        self._ready_m: dict = {}
        if self._used.exists():
            self.i, self.m = (int(v) for v in self._used.read_text().split())

    def _commit(self, i: int, m: int) -> None:
        tmp = self._used.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write(f"{i} {m}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._used)

    def _inference(self, i: int) -> dict:
        if i in self._ready:
            return self._ready.pop(i)
        t = {k: v[i] for k, v in self.inf.items()}
        t["seed"] = t["seed"].tobytes()
        return t

    def prepare(self, shard: dict, gallery: Gallery) -> None:
        """Offline phase, between jobs: the input-independent terms of the next triples."""
        from device.split.protocol import match_offline_term, offline_terms
        if self.inf and self.i < len(self.inf["seed"]) and self.i not in self._ready:
            t = self._inference(self.i)
            if shard["mode"] == "shared":
                offline_terms(shard, t)
            self._ready[self.i] = t
        if self.match and self.m < len(self.match["A3"]) and gallery.uids:
            mt = self._ready_m.get(self.m) or {k: v[self.m] for k, v in self.match.items()}
            match_offline_term(gallery, mt)
            self._ready_m = {self.m: mt}

    def next_inference(self) -> tuple[int, dict]:
        if not self.inf or self.i >= len(self.inf["seed"]):
            raise ProtocolError("out of inference triples: provision more")
        t = self._inference(self.i)
        self._commit(self.i + 1, self.m)
        self.i += 1
        return self.i - 1, t

    def next_match(self) -> tuple[int, dict]:
        if not self.match or self.m >= len(self.match["A3"]):
            raise ProtocolError("out of match triples: provision more")
        self._commit(self.i, self.m + 1)
        self.m += 1
        mt = self._ready_m.pop(self.m - 1, None)
        return self.m - 1, mt or {k: v[self.m - 1] for k, v in self.match.items()}


def save_gallery(path: Path, gallery: Gallery) -> None:
    """Atomically write the node's masked templates and user ids."""
    tmp = Path(str(path) + ".tmp")
    n = len(gallery.uids)
    with open(tmp, "wb") as f:
        np.savez(f, F=gallery.F[:, :n], uids=np.array(gallery.uids, dtype=str))
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def serve(role: int, directory: str | Path, peer: str, terminal: str,
          threshold: float = DEFAULT_THRESHOLD, allow_reveal: bool = False,
          timeout: float = 60.0, ready=None, log=None) -> int:
    """Run node ``role`` until the terminal says bye. Returns 0, or 1 after a deny."""
    d = Path(directory)
    shard = load_shard(d / f"node{role}_shard.npz")
    if int(shard["role"]) != role:
        raise ValueError(f"{d} holds the shard of node {shard['role']}, not {role}")
    stock = TripleStock(d / f"node{role}_triples.npz")
    gallery = Gallery(role, shard["gal_B"])
    gpath = d / f"node{role}_gallery.npz"
    if gpath.exists():
        z = np.load(gpath)
        gallery.fill_from(z["F"], [str(u) for u in z["uids"]])
    log = log or (lambda *_: None)
    # node 1 listens for its peer; the terminal link is always accepted by the node
    tlink = open_link(terminal, listen=True, timeout=timeout, ready=ready)
    tch = SecureChannel(tlink, shard["key_terminal"], 1, "terminal")
    pch = SecureChannel(open_link(peer, listen=(role == 1), timeout=timeout),
                        shard["key_peer"], role, "peer")
    job = 0
    stock.prepare(shard, gallery)
    try:
        while True:
            meta, arrays = unpack(tch.recv())
            op = meta.get("op")
            if op == "bye":
                tch.send(pack({"ok": True}))
                return 0
            job += 1
            s0, b0, r0 = pch.bytes_sent, pch.bytes_received, pch.rounds
            t0 = time.perf_counter()
            try:
                x = arrays["x"]
                idx, tri = stock.next_inference()
                check_step(pch, job, idx)
                if op == "enrol":
                    t = extract(role, pch, shard, tri, x, template=True)
                    slot = enrol(role, pch, gallery, str(meta["uid"]), t)
                    save_gallery(gpath, gallery)
                    reply, out = {"ok": True, "slot": slot}, {}
                elif op == "identify":
                    u = extract(role, pch, shard, tri, x)
                    _, mt = stock.next_match()
                    res = decide(role, pch, match_shares(role, pch, gallery, mt, u), threshold)
                    if role == 0:
                        acc, k, score, _ = res
                        reply = {"accept": acc, "uid": gallery.uids[k] if k >= 0 else None,
                                 "score": score}
                    else:
                        reply = {"ok": True}
                    out = {}
                elif op == "reveal" and allow_reveal:
                    u = extract(role, pch, shard, tri, x, template=bool(meta.get("template")))
                    reply, out = {"ok": True}, {"share": u}
                else:
                    raise ProtocolError(f"unknown or forbidden job {op!r}")
            except (ChannelError, ProtocolError) as e:
                log(f"node {role}: deny: {e}")
                try:
                    tch.send(pack({"deny": True, "error": str(e)}))
                except ChannelError:
                    pass
                return 1
            reply["link"] = {"bytes": pch.bytes_sent - s0 + pch.bytes_received - b0,
                             "sent": pch.bytes_sent - s0, "received": pch.bytes_received - b0,
                             "rounds": pch.rounds - r0,
                             "ms": 1e3 * (time.perf_counter() - t0)}
            tch.send(pack(reply, out))
            stock.prepare(shard, gallery)
    finally:
        pch.close()
        tch.close()


class Terminal:
    """The terminal side: splits each ROI with fresh OS randomness, sends one share to each
    node and reads the answers. Any broken link or deny is a deny."""

    def __init__(self, addr0: str, addr1: str, key0: bytes, key1: bytes, timeout: float = 60.0):
        self.ch = [SecureChannel(open_link(a, listen=False, timeout=timeout), k, 0, "terminal")
                   for a, k in ((addr0, key0), (addr1, key1))]

    def _job(self, meta: dict, roi) -> list[tuple[dict, dict]]:
        from device.split.local import split_input
        x0, x1 = split_input(roi, Prg(fresh_seed()))
        for ch, x in zip(self.ch, (x0, x1)):
            ch.send(pack(meta, {"x": x}))
        del x0, x1
        return [unpack(ch.recv()) for ch in self.ch]

    def identify(self, roi) -> dict:
        try:
            (m0, _), (m1, _) = self._job({"op": "identify"}, roi)
        except ChannelError as e:
            return {"accept": False, "deny": True, "error": str(e)}
        if m0.get("deny") or m1.get("deny"):
            return {"accept": False, "deny": True, "error": m0.get("error") or m1.get("error")}
        return m0

    def enrol(self, uid: str, roi) -> dict:
        (m0, _), (m1, _) = self._job({"op": "enrol", "uid": uid}, roi)
        if m0.get("deny") or m1.get("deny"):
            raise ProtocolError(m0.get("error") or m1.get("error"))
        return m0

    def reveal(self, roi, template: bool = False) -> tuple[np.ndarray, dict]:
        """Evaluation only: the reconstructed split feature (and node 0's link stats)."""
        from device.split.ring import decode
        (m0, a0), (m1, a1) = self._job({"op": "reveal", "template": template}, roi)
        if m0.get("deny") or m1.get("deny"):
            raise ProtocolError(m0.get("error") or m1.get("error"))
        return decode(a0["share"] + a1["share"], F_U), m0

    def close(self) -> None:
        for ch in self.ch:
            try:
                ch.send(pack({"op": "bye"}))
                ch.recv()
            except ChannelError:
                pass
            ch.close()


def main_node(role: int, directory: str, peer: str, terminal: str, threshold: float,
              allow_reveal: bool) -> int:
    return serve(role, directory, peer, terminal, threshold=threshold,
                 allow_reveal=allow_reveal, log=lambda m: print(m, file=sys.stderr))


__all__ = ["serve", "Terminal", "pack", "unpack", "save_triples", "save_gallery",
           "TripleStock"]
