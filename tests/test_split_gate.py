"""The gate in split mode (``[split] mode = "split"``, seed 003) with two real node processes
on loopback: enrolment and decisions through the real gate path equal the plaintext gate's on
the same bursts; a node killed mid-run is a deny with the relay off, and the gate recovers
when the node is back; a tampered answer is a deny; configuration errors name the key."""
import multiprocessing as mp
import socket
import threading
import time

import numpy as np
import pytest
from conftest import gate_config

from device.config import ConfigError, load_config
from device.gate.enrol import enrol_user
from device.gate.gate import Gate
from device.relays.factory import MemoryRelay
from device.gate.split_stage import SYNTHETIC_THRESHOLD
from device.eval.split_bench import _free_port
from device.split.provision import provision_dir


def _node(role, d, peer, term, threshold, ev):
    from device.split.node import run_node
    run_node(role, d, peer, term, threshold=threshold, timeout=20, ready=ev.set)


class Nodes:
    """Two ``run_node`` processes (spawned, as ``palmgate node`` runs them)."""

    def __init__(self, d, threshold=SYNTHETIC_THRESHOLD):
        self.d, self.threshold = str(d), threshold
        self.peer = f"unix:{d / 'peer.sock'}"
        self.term = [f"127.0.0.1:{_free_port()}" for _ in (0, 1)]
        self.ctx = mp.get_context("spawn")
        self.procs = [None, None]
        self.ready = [None, None]
        for r in (0, 1):
            self.start(r, wait=False)
        for r in (0, 1):
            assert self.ready[r].wait(90), f"node {r} did not start"

    def start(self, role, wait=True):
        ev = self.ctx.Event()
        p = self.ctx.Process(target=_node, args=(role, self.d, self.peer,
                                                  f"tcp:{self.term[role]}", self.threshold,
                                                  ev), daemon=True)
        p.start()
        self.procs[role], self.ready[role] = p, ev
        if wait:
            assert ev.wait(90), f"node {role} did not come back"

    def kill(self, role):
        self.procs[role].kill()
        self.procs[role].join(10)

    def stop(self):
        for p in self.procs:
            if p is not None and p.is_alive():
                p.kill()
                p.join(10)

    def section(self, **kw):
        s = {"mode": "split", "transport": "tcp", "node0": self.term[0],
             "node1": self.term[1], "dir": self.d, "connect_timeout_s": 2.0,
             "reply_timeout_s": 60.0}
        s.update(kw)
        return s


def provisioned_nodes(tmp_path, seed: bytes):
    """Generator for a fixture: a dealer folder provisioned with ``seed`` and its two node
    processes, stopped afterwards."""
    d = tmp_path / "split"
    provision_dir(d, mode="shared", capacity=64, inferences=120, matches=80, seed=seed)
    n = Nodes(d)
    try:
        yield n
    finally:
        n.stop()


@pytest.fixture
def nodes(tmp_path):
    yield from provisioned_nodes(tmp_path, b"g" * 32)


def _enrol_both(gate, bursts):
    for i, bs in bursts["enrol"].items():
        r = enrol_user(gate.pipeline, gate.store, f"person-{i:03d}", bs)
        assert r["templates"] >= 2


def _decisions(gate, bursts):
    out = []
    for kind in ("genuine", "impostor"):
        for b in bursts[kind]:
            d = gate.present(b)
            out.append((kind, d.decision, d.user_id, d.reason))
    return out


def test_split_gate_decides_as_the_plaintext_gate(tmp_path, tiny_models, synthetic_bursts,
                                                  nodes):
    plain_cfg = gate_config(tmp_path / "plain", tiny_models)
    relay_p = MemoryRelay()
    with Gate(plain_cfg, relay=relay_p) as g:
        _enrol_both(g, synthetic_bursts)
        g.reload()
        plain = _decisions(g, synthetic_bursts)
    split_cfg = gate_config(tmp_path / "split-gate", tiny_models, split=nodes.section())
    relay = MemoryRelay()
    with Gate(split_cfg, relay=relay) as g:
        _enrol_both(g, synthetic_bursts)
        # no template of any kind on the terminal: only the audit records of the enrolments
        assert g.store.count()["templates"] == 0
        split = _decisions(g, synthetic_bursts)
        # 1:1 through the same nodes: the claimed person only
        gen0 = synthetic_bursts["genuine"][0]
        assert g.pipeline.decide(gen0, "person-000").opened
        d = g.pipeline.decide(gen0, "person-001")
        assert d.decision == "deny" and d.reason == "no_match"
        assert g.pipeline.decide(gen0, "nobody").reason == "unknown_user"
    assert [x[:3] for x in split] == [x[:3] for x in plain], (split, plain)
    assert sum(x[1] == "open" for x in split) == len(synthetic_bursts["genuine"])
    assert all(x[1] == "deny" and x[3] == "no_match" for x in split if x[0] == "impostor")
    ons = lambda r: sum(1 for _, _, on in r.events if on)       # noqa: E731
    assert ons(relay) == ons(relay_p) == len(synthetic_bursts["genuine"])
    g0 = np.load(nodes.d + "/node0_gallery.npz")
    g1 = np.load(nodes.d + "/node1_gallery.npz")
    assert list(g0["uids"]) == list(g1["uids"]) and len(g0["uids"]) >= 8
    assert set(g0["uids"]) == {"person-000", "person-001"}


def test_node_killed_mid_run_denies_and_the_gate_recovers(tmp_path, tiny_models,
                                                          synthetic_bursts, nodes):
    cfg = gate_config(tmp_path, tiny_models, split=nodes.section(reply_timeout_s=20.0))
    relay = MemoryRelay()
    gen = synthetic_bursts["genuine"]
    with Gate(cfg, relay=relay) as g:
        _enrol_both(g, synthetic_bursts)
        assert g.present(gen[0]).opened
        n_on = len([e for e in relay.events if e[2]])
        # node 1 dies while the gate is working: during or just before a presentation
        killer = threading.Timer(0.3, nodes.kill, args=(1,))
        killer.start()
        d = g.present(gen[1])
        killer.join()
        if d.opened:                          # the job finished before the kill landed
            n_on += 1
            d = g.present(gen[1])
        assert d.decision == "deny" and d.reason.startswith("split:"), d.summary()
        assert d.relay == "none"
        d = g.present(gen[2])                  # node 1 still down
        assert d.decision == "deny" and d.reason in ("split:node_unavailable",
                                                     "split:link_error"), d.summary()
        assert len([e for e in relay.events if e[2]]) == n_on      # the relay stayed off
        assert relay.state[1] is False
        nodes.start(1)                         # node 1 is back: the nodes pair again
        deadline, d = time.monotonic() + 30, None
        while time.monotonic() < deadline:
            d = g.present(gen[2])
            if d.opened or not d.reason.startswith("split:"):
                break
            time.sleep(0.5)
        assert d.opened and d.user_id == "person-000", d.summary()


class _TamperProxy(threading.Thread):
    """TCP relay between the terminal and node 0 that flips one byte of the node's
    ``n``-th answer frame (after the hello)."""

    def __init__(self, target_port, flip_frame=2):
        super().__init__(daemon=True)
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(4)
        self.port = self.srv.getsockname()[1]
        self.target, self.flip_frame, self.flipped = target_port, flip_frame, False

    def run(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            # node 0 listens for the terminal again once it has re-paired with node 1 after
            # the previous session: retry for a while, as the terminal itself would
            deadline = time.monotonic() + 20
            while True:
                try:
                    u = socket.create_connection(("127.0.0.1", self.target))
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        c.close()
                        raise
                    time.sleep(0.1)
            threading.Thread(target=self._pipe, args=(c, u, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c, True), daemon=True).start()

    def _pipe(self, a, b, from_node):
        import struct
        from device.split.transport import HELLO_BYTES
        buf, frames, hello = b"", 0, HELLO_BYTES
        try:
            while True:
                data = a.recv(1 << 16)
                if not data:
                    break
                if not from_node:
                    b.sendall(data)
                    continue
                buf += data
                out = b""
                if hello:                              # the node's hello (nonce + X25519)
                    take = min(hello, len(buf))
                    out, buf, hello = buf[:take], buf[take:], hello - take
                while len(buf) >= 12:
                    n = struct.unpack(">I", buf[:4])[0]
                    if len(buf) < 12 + n:
                        break
                    f = bytearray(buf[:12 + n])
                    buf = buf[12 + n:]
                    frames += 1
                    if frames == self.flip_frame and not self.flipped:
                        f[-1] ^= 0x01                  # one bit of the GCM tag
                        self.flipped = True
                    out += bytes(f)
                b.sendall(out)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.srv.close()


def test_tampered_answer_is_a_deny(tmp_path, tiny_models, synthetic_bursts, nodes):
    cfg = gate_config(tmp_path, tiny_models, split=nodes.section())
    relay = MemoryRelay()
    with Gate(cfg, relay=relay) as g:
        _enrol_both(g, synthetic_bursts)               # answer frames 1 and 2 of node 0
    proxy = _TamperProxy(int(nodes.term[0].rpartition(":")[2]), flip_frame=2)
    proxy.start()
    cfg = gate_config(tmp_path / "t", tiny_models,
                      split=nodes.section(node0=f"127.0.0.1:{proxy.port}"),
                      # the same terminal: its device key sealed the link keys
                      paths={"device_key": cfg.paths.device_key})
    relay = MemoryRelay()
    try:
        with Gate(cfg, relay=relay) as g:
            assert g.present(synthetic_bursts["genuine"][0]).opened   # frame 1: intact
            t_end = time.monotonic() + 5                  # the first pulse ends on its own
            while relay.state[1] and time.monotonic() < t_end:
                time.sleep(0.02)
            d = g.present(synthetic_bursts["genuine"][0])             # frame 2: one bit off
            assert d.decision == "deny" and d.reason == "split:link_error", d.summary()
            assert d.relay == "none" and relay.state[1] is False
            assert len([e for e in relay.events if e[2]]) == 1
    finally:
        proxy.close()


# ------------------------------------------------------------------ configuration
@pytest.mark.parametrize("split, key", [
    ({"mode": "split"}, "split.node0"),
    ({"mode": "split", "node0": "127.0.0.1:7010"}, "split.node1"),
    ({"mode": "split", "node0": "127.0.0.1:7010", "node1": "127.0.0.1:7011"}, "split.dir"),
    ({"mode": "split", "node0": "127.0.0.1", "node1": "127.0.0.1:7011", "dir": "x"},
     "split.node0"),
    ({"mode": "split", "node0": "h:1", "node1": "h:99999", "dir": "x"}, "split.node1"),
    ({"mode": "split", "node0": "h:1", "node1": "h:1", "dir": "x"}, "split.node1"),
    ({"mode": "split", "transport": "serial", "node0": "/dev/ttyS0@9600",
      "node1": "/dev/ttyS1", "dir": "x"}, "split.node0"),
    ({"mode": "on"}, "split.mode"),
    ({"transport": "udp"}, "split.transport"),
    ({"reply_timeout_s": 0}, "split.reply_timeout_s"),
    ({"baudrate": 300}, "split.baudrate"),
    ({"nodes": 2}, "split.nodes"),
])
def test_split_config_errors_name_the_key(split, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, split=split)


def test_split_config_defaults_off_and_missing_keys_stop_the_start(tmp_path, tiny_models):
    cfg = load_config(None)
    assert cfg.split.mode == "off"
    ok = load_config(None, split={"mode": "split", "transport": "unix", "node0": "/run/a",
                                  "node1": "/run/b", "dir": str(tmp_path)})
    from device.config import split_address
    assert split_address(ok.split, "node0") == "unix:/run/a"
    s = load_config(None, split={"mode": "split", "transport": "serial",
                                 "node0": "/dev/ttyAMA1", "node1": "/dev/ttyUSB1",
                                 "baudrate": 460800, "dir": "x"})
    assert split_address(s.split, "node1") == "serial:/dev/ttyUSB1@460800"
    cfg = gate_config(tmp_path, tiny_models,
                      split={"mode": "split", "node0": "127.0.0.1:1", "node1": "127.0.0.1:2",
                             "dir": str(tmp_path / "nowhere")})
    with pytest.raises(ConfigError, match=r"split\.dir"):
        Gate(cfg, relay=MemoryRelay())
