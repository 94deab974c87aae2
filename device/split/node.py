"""The node program (``palmgate node --role 0|1``) and the terminal's client.

A node holds its model shard and template-slot masks (``shard.npz``), a stock of inference
and match triples from the dealer (``triples.npz``, consumed in order and never reused) and
its gallery (``gallery.npz``: opened masked templates and user ids). It accepts the terminal
on one link and meets its peer on another (node 1 listens, node 0 connects; a serial port is
symmetric), both ``SecureChannel``s. Jobs from the terminal:

    enrol    {uid} + input share   -> both nodes extract a template share and open its slot
                                      (always a fresh slot: slots are never reused)
    delete   {uid}                 -> the node tombstones every slot of the user (F3 column
                                      zeroed, slot marked dead, gallery fsynced) and answers
                                      {ok, uid, killed, already, slots}; no peer round, so
                                      it also works as the retry of a delete that reached
                                      one node only (the nodes then refuse every job until
                                      ``check_sync`` at the next pairing has applied it on
                                      both)
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
from device.split.protocol import (Gallery, ProtocolError, check_step, enrol,
                                   extract, match_shares)
from device.split.ring import Prg, fresh_seed
from device.split.transport import ChannelError, SecureChannel, open_link

DEFAULT_THRESHOLD = 0.45     # operating point of the unprotected cell score; set per gate
# per split feature (the shard names its feature; a shard without one is "gabor"): node 0's
# threshold when ``palmgate node`` gets no --threshold.  Tongji validation palms (60,
# session 1 vs 2): gabor's highest impostor score 0.386, its FAR 1e-5 point 0.377, and 0.45
# sits 0.073 above it (FRR 4.6 %); the unit feature's FAR 1e-5 point is 0.417, so 0.49
# (highest impostor 0.428; FRR 3.3 %)
DEFAULT_THRESHOLDS = {"gabor": DEFAULT_THRESHOLD, "unit": 0.49}


def shard_threshold(shard: dict) -> float:
    """The default accept threshold of the feature a shard was provisioned with."""
    return DEFAULT_THRESHOLDS[str(shard.get("feature", "gabor"))]


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
        # the folder too: a rename lost in a power cut would hand out used triples again
        _write_text_durably(self._used, f"{i} {m}\n", tmp=self._used.with_suffix(".tmp"),
                            sync_dir=True)

    def _inference(self, i: int) -> dict:
        if i in self._ready:
            return self._ready.pop(i)
        t = {k: v[i] for k, v in self.inf.items()}
        t["seed"] = t["seed"].tobytes()
        return t

    def prepare(self, shard: dict, gallery: Gallery, ahead: int = 1) -> None:
        """Offline phase, between jobs: the input-independent terms of the next ``ahead``
        triples (one per view of a presentation)."""
        from device.split.protocol import match_offline_term, offline_terms
        n_inf = len(self.inf["seed"]) if self.inf else 0
        for i in range(self.i, min(self.i + ahead, n_inf)):
            if i not in self._ready:
                t = self._inference(i)
                if shard["mode"] == "shared":
                    offline_terms(shard, t)
                self._ready[i] = t
        n_m = len(self.match["A3"]) if self.match else 0
        if len(gallery.live()):
            ready = {}
            for m in range(self.m, min(self.m + ahead, n_m)):
                mt = self._ready_m.get(m) or {k: v[m] for k, v in self.match.items()}
                match_offline_term(gallery, mt)
                ready[m] = mt
            self._ready_m = ready

    def skip_to(self, i: int, m: int) -> None:
        """Move on to indices (i, m) (the peer has used triples this node has not)."""
        if (i, m) != (self.i, self.m):
            self._commit(max(i, self.i), max(m, self.m))
            self.i, self.m = max(i, self.i), max(m, self.m)

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


def _fsync_dir(path: Path) -> None:
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_text_durably(path: Path, text: str, tmp: Path | None = None,
                        sync_dir: bool = False) -> None:
    """Replace ``path`` with ``text`` atomically: written to ``tmp`` (default path + .tmp),
    fsynced, renamed over it; ``sync_dir`` also fsyncs the folder (the rename survives a
    power cut)."""
    tmp = tmp or Path(str(path) + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    if sync_dir:
        _fsync_dir(path)


def save_gallery(path: Path, gallery: Gallery) -> None:
    """Atomically and durably write the node's masked templates, user ids and tombstones
    (the file, then its folder, fsynced: a delete survives a power cut once answered).
    A tombstoned slot's F3 column is written as zeros."""
    path = Path(path)
    tmp = Path(str(path) + ".tmp")
    n = gallery.n
    with open(tmp, "wb") as f:
        np.savez(f, F=gallery.F[:, :n], uids=np.array(gallery.uids, dtype=str),
                 dead=gallery.dead[:n].copy())
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    _fsync_dir(path)


def _slots_path(gpath: Path) -> Path:
    return Path(str(gpath) + ".slots")


def reserve_slots(gpath: Path, n: int) -> None:
    """Record (fsynced) that slots below ``n`` have been used, before a slot is opened."""
    _write_text_durably(_slots_path(gpath), f"{n}\n", sync_dir=True)


def load_gallery(gpath: Path, gallery: Gallery) -> bool:
    """Fill ``gallery`` from the node's file; slots reserved but never saved (the node
    stopped during an enrolment) become tombstones. Returns True when that changed it."""
    gpath = Path(gpath)
    if gpath.exists():
        z = np.load(gpath)
        gallery.fill_from(z["F"], [str(u) for u in z["uids"]],
                          z["dead"] if "dead" in z.files else None)
    sp = _slots_path(gpath)
    if sp.exists():
        hwm = int(sp.read_text().split()[0])
        if hwm > gallery.n:
            gallery.extend_dead(hwm)
            return True
    return False


def delete_user(gallery: Gallery, uid: str) -> dict:
    """Tombstone every slot of ``uid``; the caller saves the gallery before answering."""
    slots = gallery.slots_of(uid)
    killed = gallery.kill(slots)
    return {"ok": True, "uid": uid, "slots": slots, "killed": killed,
            "already": [k for k in slots if k not in killed], "unknown": not slots,
            "n_slots": gallery.n, "live": int(len(gallery.live()))}


def _views(x: np.ndarray) -> list[np.ndarray]:
    """A job's input shares: one ROI (128, 128) or K views (K, 128, 128)."""
    x = np.asarray(x)
    if x.ndim == 2:
        return [x]
    if x.ndim == 3 and 1 <= len(x) <= 16:
        return list(x)
    raise ProtocolError(f"input share of shape {x.shape}: expected (128, 128) or (K, 128, 128)")


def _accept(addr: str, timeout: float | None, peer=None, ready=None,
            link_timeout: float = 30.0):
    """Accept the terminal's link. Sockets: wait (``timeout`` None: however long), but give
    up when the paired peer's link closes meanwhile (the session is then re-paired); the
    accepted link reads with the node's time limit. Serial: open the port."""
    import select
    from device.split.transport import SocketLink, listen_socket, parse_address
    kind, where = parse_address(addr)
    if kind == "serial":
        return open_link(addr, listen=True, timeout=link_timeout, ready=ready)
    srv = listen_socket(kind, where)
    try:
        if ready:
            ready()
        watch = [srv] + ([peer.link.sock] if isinstance(getattr(peer, "link", None),
                                                        SocketLink) else [])
        while True:
            r, _, _ = select.select(watch, [], [], timeout)
            if not r:
                raise ChannelError(f"no terminal on {addr} within {timeout} s")
            if srv in r:
                conn, _ = srv.accept()
                return SocketLink(conn, link_timeout)
            if _peer_closed(watch[1]):
                raise ChannelError("peer link closed while waiting for the terminal")
            watch = [srv]
    finally:
        srv.close()


def _peer_closed(sock) -> bool:
    """True when a readable socket is at its end (not when the peer has sent data: it may
    start the next job before this node has read the terminal's)."""
    import socket as _socket
    try:
        return sock.recv(1, _socket.MSG_PEEK | _socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _wait_job(tch: SecureChannel, pch: SecureChannel) -> bytes:
    """The terminal's next job, however long the gate is idle; a peer link that closes
    meanwhile ends the session (it is re-paired)."""
    import select
    from device.split.transport import SocketLink
    tl, pl = tch.link, pch.link
    if isinstance(tl, SocketLink) and isinstance(pl, SocketLink):
        watch = [tl.sock, pl.sock]
        while True:
            r, _, _ = select.select(watch, [], [])
            if tl.sock in r:
                break
            if _peer_closed(pl.sock):
                raise ChannelError("peer link closed between jobs")
            watch = [tl.sock]          # the peer is ahead: its job's data waits for ours
    return tch.recv()


def serve(role: int, directory: str | Path, peer: str, terminal: str,
          threshold: float | None = None, allow_reveal: bool = False,
          timeout: float = 60.0, ready=None, log=None, state: dict | None = None) -> int:
    """One session of node ``role``: pair with the peer (node 1 listens, node 0 connects),
    bring the two into step (``check_sync``), accept the terminal and run its jobs until it
    says bye. Returns 0, or 1 after a deny (the session is over; ``run_node`` starts the
    next). ``state`` carries the offline look-ahead (views per job) across sessions."""
    from device.split.protocol import check_sync, decide_fused
    state = state if state is not None else {}
    d = Path(directory)
    shard = load_shard(d / f"node{role}_shard.npz")
    if int(shard["role"]) != role:
        raise ValueError(f"{d} holds the shard of node {shard['role']}, not {role}")
    if threshold is None:
        threshold = shard_threshold(shard)
    stock = TripleStock(d / f"node{role}_triples.npz")
    gallery = Gallery(role, shard["gal_B"])
    gpath = d / f"node{role}_gallery.npz"
    log = log or (lambda *_: None)
    if load_gallery(gpath, gallery):
        log(f"node {role}: slots up to {gallery.n} were reserved and never saved: tombstones")
        save_gallery(gpath, gallery)
    gallery.reserve_hook = lambda n: reserve_slots(gpath, n)
    pch = SecureChannel(open_link(peer, listen=(role == 1), timeout=timeout),
                        shard["key_peer"], role, "peer")
    tch = None
    try:
        i, m, sync = check_sync(pch, stock.i, stock.m, gallery)
        stock.skip_to(i, m)
        if sync["added"] or sync["killed"]:
            log(f"node {role}: in step with the peer: tombstoned slot(s) "
                f"{sorted(set(sync['added']) | set(sync['killed']))}")
            save_gallery(gpath, gallery)
        stock.prepare(shard, gallery, state.get("ahead", 1))
        tch = SecureChannel(_accept(terminal, None, pch, ready, timeout), shard["key_terminal"],
                            1, "terminal")
        job = 0
        while True:
            meta, arrays = unpack(_wait_job(tch, pch))
            op = meta.get("op")
            if op == "bye":
                tch.send(pack({"ok": True}))
                return 0
            if op == "delete":
                uid = meta.get("uid")
                if not isinstance(uid, str) or not uid:
                    tch.send(pack({"deny": True, "error": "delete needs a user id"}))
                    return 1
                reply = delete_user(gallery, uid)
                if reply["killed"]:
                    save_gallery(gpath, gallery)
                    log(f"node {role}: deleted {uid!r}: slot(s) {reply['killed']} tombstoned")
                tch.send(pack(reply))
                stock.prepare(shard, gallery, state.get("ahead", 1))
                continue
            s0, b0, r0 = pch.bytes_sent, pch.bytes_received, pch.rounds
            t0 = time.perf_counter()
            try:
                views = _views(arrays["x"])
                state["ahead"] = len(views)
                feats = []
                for x in views:
                    job += 1
                    idx, tri = stock.next_inference()
                    check_step(pch, job, idx, gallery)
                    if op == "enrol":
                        feats.append(extract(role, pch, shard, tri, x, template=True))
                    elif op == "identify":
                        u = extract(role, pch, shard, tri, x)
                        _, mt = stock.next_match()
                        feats.append(match_shares(role, pch, gallery, mt, u))
                    elif op == "reveal" and allow_reveal:
                        feats.append(extract(role, pch, shard, tri, x,
                                             template=bool(meta.get("template"))))
                    else:
                        raise ProtocolError(f"unknown or forbidden job {op!r}")
                out = {}
                if op == "enrol":
                    slots = [enrol(role, pch, gallery, str(meta["uid"]), t) for t in feats]
                    save_gallery(gpath, gallery)
                    reply = {"ok": True, "slot": slots[0], "slots": slots}
                elif op == "identify":
                    res = decide_fused(role, pch, np.stack(feats), gallery.live_uids(),
                                       threshold, meta.get("claimed"))
                    reply = res if role == 0 else {"ok": True}
                else:
                    reply = {"ok": True}
                    out = {"share": feats[0] if len(feats) == 1 else np.stack(feats)}
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
            stock.prepare(shard, gallery, state.get("ahead", 1))
    finally:
        pch.close()
        if tch is not None:
            tch.close()


def run_node(role: int, directory: str | Path, peer: str, terminal: str,
             threshold: float | None = None, allow_reveal: bool = False,
             timeout: float = 30.0, ready=None, log=None, stop=None) -> int:
    """The node as a service: sessions one after another, so that after a deny, a broken
    link, a peer that restarted or a terminal that went away the two nodes pair again and
    the gate recovers at its next presentation. ``stop``: a threading.Event (tests)."""
    log = log or (lambda *_: None)
    state: dict = {}
    while stop is None or not stop.is_set():
        try:
            rc = serve(role, directory, peer, terminal, threshold, allow_reveal, timeout,
                       ready, log, state)
            log(f"node {role}: session ended ({'bye' if rc == 0 else 'deny'})")
        except (ChannelError, ProtocolError, OSError) as e:
            log(f"node {role}: session failed: {e}")
            time.sleep(0.2)
    return 0


class Terminal:
    """The terminal side: splits each ROI with fresh OS randomness, sends one share to each
    node and reads the answers. Any broken link or deny is a deny. ``timeout`` bounds the
    connection (and the pairing hello); ``reply_timeout`` each answer (default: the same)."""

    def __init__(self, addr0: str, addr1: str, key0: bytes, key1: bytes, timeout: float = 60.0,
                 reply_timeout: float | None = None):
        self.ch = []
        try:
            for a, k in ((addr0, key0), (addr1, key1)):
                link = open_link(a, listen=False, timeout=timeout)
                self.ch.append(SecureChannel(link, k, 0, "terminal"))
                _set_timeout(link, reply_timeout or timeout)
        except BaseException:
            self.close(polite=False)
            raise

    def _job(self, meta: dict, roi) -> list[tuple[dict, dict]]:
        from device.split.local import split_input
        x0, x1 = split_input(roi, Prg(fresh_seed()))
        for ch, x in zip(self.ch, (x0, x1)):
            ch.send(pack(meta, {"x": x}))
        del x0, x1
        return [unpack(ch.recv()) for ch in self.ch]

    def identify(self, roi, claimed: str | None = None) -> dict:
        """One ROI (128, 128) or K views (K, 128, 128); ``claimed``: 1:1 against that user.
        Node 0's answer {accept, uid, score, ...}, or {accept: False, deny: True, error}."""
        meta = {"op": "identify"}
        if claimed is not None:
            meta["claimed"] = str(claimed)
        try:
            (m0, _), (m1, _) = self._job(meta, roi)
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

    def delete(self, uid: str) -> list[dict]:
        """Tombstone ``uid``'s slots on both nodes. One answer per node: the node's reply
        ({ok, killed, already, unknown, ...}) or {ok: False, error} when its link failed
        (the other node may have applied it: the caller keeps the delete pending for the
        node that did not answer and the two nodes refuse every job until they agree)."""
        out = []
        for r, ch in enumerate(self.ch):
            try:
                ch.send(pack({"op": "delete", "uid": str(uid)}))
                m, _ = unpack(ch.recv())
                if m.get("deny"):
                    m = {"ok": False, "error": m.get("error") or "node denied the delete"}
            except ChannelError as e:
                m = {"ok": False, "error": f"link to node {r}: {e}"}
            out.append(m)
        return out

    def reveal(self, roi, template: bool = False) -> tuple[np.ndarray, dict]:
        """Evaluation only: the reconstructed split feature (and node 0's link stats)."""
        from device.split.ring import decode
        (m0, a0), (m1, a1) = self._job({"op": "reveal", "template": template}, roi)
        if m0.get("deny") or m1.get("deny"):
            raise ProtocolError(m0.get("error") or m1.get("error"))
        return decode(a0["share"] + a1["share"], F_U), m0

    def close(self, polite: bool = True) -> None:
        for ch in self.ch:
            if polite:
                try:
                    ch.send(pack({"op": "bye"}))
                    ch.recv()
                except ChannelError:
                    pass
            ch.close()
        self.ch = []


def _set_timeout(link, seconds: float) -> None:
    if hasattr(link, "sock"):
        link.sock.settimeout(seconds)
    elif hasattr(link, "ser"):
        link.ser.timeout = seconds


def main_node(role: int, directory: str, peer: str, terminal: str, threshold: float | None,
              allow_reveal: bool) -> int:
    return run_node(role, directory, peer, terminal, threshold=threshold,
                    allow_reveal=allow_reveal, log=lambda m: print(m, file=sys.stderr,
                                                                   flush=True))


__all__ = ["serve", "run_node", "Terminal", "pack", "unpack", "save_triples", "save_gallery",
           "load_gallery", "reserve_slots", "delete_user",
           "TripleStock"]
