"""Faults: the gate denies, logs why, keeps the relay off, and recovers when the fault goes
away -- relay serial line gone, camera that stops delivering, corrupt frames, missing or
tampered model files, a full disk (audit record cannot be written), SIGKILL mid-decision."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from conftest import ROOT, enrolled_replay_gate, gate_config, trusting_cli
from test_relay import ModbusPeer, needs_socat

from device.sources.base import FrameError
from device.sources.replay import Burst, CameraBurstSource, ReplaySource, write_burst
from device.gate.gate import Gate
from device.gate.decision import Decision
from device.gate.pipeline import Pipeline
from device.relays.factory import MemoryRelay

COIL_ON = bytes.fromhex("01 05 00 00 FF 00 8C 3A")


def _always_open(pipe):
    def decide(burst, claimed=None):
        return Decision(decision="open", reason="match", user_id="person-000", score=0.99,
                        threshold=0.98, views_used=3, burst=str(burst.meta.get("burst", "")))
    pipe.decide = decide
    return pipe


def _blank_burst(n=0):
    return Burst([np.full((480, 640, 3), 128, np.uint8)] * 3, np.full((128, 128), 128,
                                                                       np.uint8), {"burst": n})


def _audit(gate):
    return [(r.kind, r.payload) for r in gate.store.audit.records()]


# --------------------------------------------------------------------------- relay line
@needs_socat
def test_relay_line_gone_denies_and_recovers(tmp_path, pty_pair, tiny_models, caplog):
    host, board = pty_pair
    peer = ModbusPeer(board)
    cfg = gate_config(tmp_path, tiny_models,
                      relay={"kind": "modbus", "port": host, "timeout_s": 0.1,
                             "pulse_ms": 100})
    gate = Gate(cfg, pipeline=_always_open(Pipeline(cfg)))
    try:
        assert gate.present(_blank_burst()).relay == "pulsed"
        assert COIL_ON in peer.rx
        time.sleep(0.3)
        peer.stop()                                     # the board stops answering
        d = gate.present(_blank_burst(1))
        assert (d.decision, d.reason, d.relay) == ("deny", "relay_error", "error")
        assert "relay pulse failed" in caplog.text
        assert ("relay_error", ) == tuple(k for k, _ in _audit(gate)[-1:])
        d = gate.present(_blank_burst(2))               # still gone: still a deny
        assert d.reason == "relay_error"
        peer = ModbusPeer(board)                        # the line comes back
        n0 = peer.rx.count(COIL_ON)
        d = gate.present(_blank_burst(3))
        assert d.relay == "pulsed" and d.decision == "open"
        assert peer.rx.count(COIL_ON) == n0 + 1
    finally:
        gate.close()
        peer.stop()
    assert peer.coils.get(0) is False                   # closed: off


# --------------------------------------------------------------------------- cameras
class _Camera:
    """A FrameSource that hangs while ``alive`` is cleared."""

    def __init__(self, alive):
        self.alive = alive

    def start(self):
        pass

    def capture(self):
        while not self.alive.is_set():
            time.sleep(0.01)
            if getattr(self, "_stop", False):
                break
        return np.full((480, 640, 3), 128, np.uint8), {}

    def stop(self):
        self._stop = True


def test_camera_that_stops_delivering(tmp_path, tiny_models, caplog):
    cfg = gate_config(tmp_path, tiny_models)
    relay = MemoryRelay()
    gate = Gate(cfg, pipeline=_always_open(Pipeline(cfg)), relay=relay)
    alive = threading.Event()
    src = CameraBurstSource([_Camera(alive) for _ in range(3)], _Camera(alive), timeout_s=0.1)
    seen = []
    try:
        gate.run(src, limit=2, on_decision=lambda b, d: seen.append(d))
        assert [d.reason for d in seen] == ["camera_timeout", "camera_timeout"]
        assert relay.events == [] and "camera_timeout" in caplog.text
        alive.set()                                     # frames come again
        gate.run(src, limit=1, on_decision=lambda b, d: seen.append(d))
        assert seen[-1].opened and relay.state[1] is True
        assert [p["reason"] for k, p in _audit(gate)][:2] == ["camera_timeout"] * 2
    finally:
        alive.set()
        gate.close()


# --------------------------------------------------------------------------- frames
def test_corrupt_frames_are_denied(tmp_path, tiny_models, synthetic_bursts):
    cfg = gate_config(tmp_path, tiny_models)
    relay = MemoryRelay()
    gate = Gate(cfg, relay=relay)
    try:
        # a view that is not an image
        b = synthetic_bursts["genuine"][0]
        bad = Burst([b.views[0], np.zeros((10, 10), np.float32), b.views[2]], b.sensor, {})
        d = gate.present(bad)
        assert (d.decision, d.reason) == ("deny", "corrupt_frame")
        d = gate.present(Burst(b.views, None, {}))      # no sensor frame
        assert d.reason == "corrupt_frame"
        # a recorded file that does not decode
        root = tmp_path / "replay"
        write_burst(root / "0", b)
        write_burst(root / "1", b)
        (root / "0" / "view_1.png").write_bytes(b"\x89PNG garbage")
        seen = []
        gate.run(ReplaySource(root, views=3), on_decision=lambda bu, dd: seen.append(dd))
        assert seen[0].reason == "corrupt_frame"
        assert seen[1].reason != "corrupt_frame" and seen[1].p_live is not None   # recovered
        assert relay.events == []
    finally:
        gate.close()
    with pytest.raises(FrameError, match="corrupt frame"):
        src = ReplaySource(root / "0")
        src.start()
        src.capture_burst()


# --------------------------------------------------------------------------- models
@pytest.mark.parametrize("fault", ["missing", "tampered"])
def test_missing_or_tampered_model(tmp_path, tiny_models, synthetic_bursts, caplog, fault):
    cfg = gate_config(tmp_path, tiny_models)
    lv = tiny_models / "liveness_nir.onnx"
    good = lv.read_bytes()
    if fault == "missing":
        lv.unlink()
    else:
        lv.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    relay = MemoryRelay()
    gate = Gate(cfg, relay=relay)
    try:
        b = synthetic_bursts["genuine"][0]
        d = gate.present(b)
        assert (d.decision, d.reason) == ("deny", "liveness_unavailable")
        assert ("not found" if fault == "missing" else "sha256") in caplog.text
        assert _audit(gate)[-1][1]["reason"] == "liveness_unavailable"
        lv.write_bytes(good)                            # a good file is back
        d = gate.present(b)
        assert d.reason != "liveness_unavailable" and d.p_live is not None
        assert relay.events == []
    finally:
        gate.close()


# --------------------------------------------------------------------------- disk
def test_full_disk_denies_and_recovers(tmp_path, tiny_models, monkeypatch, caplog):
    cfg = gate_config(tmp_path, tiny_models)
    relay = MemoryRelay()
    gate = Gate(cfg, pipeline=_always_open(Pipeline(cfg)), relay=relay)
    try:
        real = gate.store.audit.append

        def full(*a, **k):
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(gate.store.audit, "append", full)
        d = gate.present(_blank_burst())
        assert (d.decision, d.reason, d.relay) == ("deny", "audit_unavailable", "none")
        assert relay.events == [] and "disk is full" in caplog.text
        monkeypatch.setattr(gate.store.audit, "append", real)
        d = gate.present(_blank_burst(1))
        assert d.opened and d.relay == "pulsed"
    finally:
        gate.close()


def test_stage_error_and_timeout_deny(tmp_path, tiny_models, synthetic_bursts):
    cfg = gate_config(tmp_path, tiny_models, timeouts={"regions": 1})
    relay = MemoryRelay()
    gate = Gate(cfg, relay=relay)
    try:
        d = gate.present(synthetic_bursts["genuine"][0])
        assert (d.decision, d.reason) == ("deny", "timeout:regions")
    finally:
        gate.close()
    cfg = gate_config(tmp_path, tiny_models)
    relay = MemoryRelay()
    gate = Gate(cfg, relay=relay)
    try:
        def boom(rois):
            raise MemoryError("simulated")
        gate.pipeline.features = boom
        d = gate.present(synthetic_bursts["genuine"][0])
        assert (d.decision, d.reason) == ("deny", "error:feature")
        assert relay.events == []
    finally:
        gate.close()


# --------------------------------------------------------------------------- SIGKILL
@needs_socat
def test_sigkill_mid_decision_then_restart(tmp_path, pty_pair, tiny_models, synthetic_bursts,
                                           signing_key):
    host, board = pty_pair
    peer = ModbusPeer(board)
    cfg, f = enrolled_replay_gate(tmp_path, tiny_models, synthetic_bursts, 6,
                                  {"kind": "modbus", "port": host, "pulse_ms": 5000,
                                   "timeout_s": 0.2})
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [*trusting_cli(signing_key), "run", "--config", str(f), "--plain-log"]
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                env=env, cwd=str(tmp_path), text=True)
        first = json.loads(proc.stdout.readline())
        assert first["decision"] == "open"
        time.sleep(0.2)                                 # inside the next decision
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        # the coil is on (a 5 s pulse never ended by the killed driver) until the restart
        assert peer.coils.get(0) is True
        out = subprocess.run(cmd + ["--limit", "1"], capture_output=True, text=True, env=env,
                             cwd=str(tmp_path), timeout=120)
        assert out.returncode == 0, out.stderr
        assert COIL_ON in peer.rx and peer.coils.get(0) is False   # off at start and close
        d = json.loads(out.stdout.splitlines()[0])
        assert d["decision"] == "open"                  # recovered: the store opens, matches
        chk = subprocess.run([sys.executable, "-m", "device.cli", "audit", "verify-chain",
                              "--config", str(f)], capture_output=True, text=True, env=env,
                             cwd=str(tmp_path), timeout=60)
        assert json.loads(chk.stdout)["ok"] is True
    finally:
        if proc.poll() is None:
            proc.kill()
        peer.stop()


def test_attempt_limiter_locks_out_after_failures(tmp_path, tiny_models):
    cfg = gate_config(tmp_path, tiny_models, attempts={"max_failures": 2, "base_delay_s": 30,
                                                       "terminal_max_failures": 2})
    relay = MemoryRelay()
    pipe = Pipeline(cfg)
    pipe.decide = lambda burst, claimed=None: Decision(reason="no_match", score=0.97,
                                                       threshold=0.98)
    with Gate(cfg, pipeline=pipe, relay=relay) as gate:
        assert [gate.present(_blank_burst(k)).reason for k in range(3)] == \
            ["no_match", "no_match", "locked_out"]
        d = gate.present(_blank_burst(3))
        assert d.reason == "locked_out" and "wait" in d.prompt
        kinds = [k for k, _ in _audit(gate)]
        assert "lockout" in kinds and kinds.count("decision") == 4
    assert relay.events == [] or not any(e[2] for e in relay.events)


def test_database_full_for_real(tmp_path, tiny_models):
    """SQLite's own "database or disk is full" (max_page_count pinned to the file's size):
    the presentation that cannot be recorded does not open; raising the limit recovers."""
    cfg = gate_config(tmp_path, tiny_models)
    relay = MemoryRelay()
    with Gate(cfg, pipeline=_always_open(Pipeline(cfg)), relay=relay) as gate:
        c = gate.store.conn
        c.execute(f"PRAGMA max_page_count={c.execute('PRAGMA page_count').fetchone()[0]}")
        for k in range(200):
            d = gate.present(_blank_burst(k))
            if d.reason != "match":
                break
        assert (d.decision, d.reason, d.relay) == ("deny", "audit_unavailable", "none")
        pulses = sum(1 for e in relay.events if e[2])
        assert pulses == k                              # one per recorded open, none after
        c.execute("PRAGMA max_page_count=1000000")
        assert gate.present(_blank_burst(999)).relay == "pulsed"


class _HungDriver:
    """A camera driver whose capture never returns while ``hang`` is set (a stuck V4L2 read):
    the late frame it returns afterwards is numbered, so a stale one can be told apart."""

    def __init__(self):
        self.hang = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def start(self):
        pass

    def capture(self):
        self.calls += 1
        n = self.calls
        if self.hang.is_set():
            self.release.wait()
        return np.full((48, 64, 3), n % 256, np.uint8), {"n": n}

    def stop(self):
        pass


def test_stuck_camera_driver_does_not_leak_threads(tmp_path, tiny_models):
    """12 faults of a driver call that never returns: one capture thread per camera at most
    (before: one new thread per fault, 3 -> 15), each fault still denied as camera_timeout
    through the loop, and the late frame is never handed to a later presentation."""
    from device.errors import CaptureTimeout
    cams = [_HungDriver() for _ in range(3)]
    sensor = _HungDriver()
    src = CameraBurstSource(cams, sensor, timeout_s=0.05)
    src.start()
    src.capture_burst()                               # healthy: one thread per camera now
    base = threading.active_count()
    cams[0].hang.set()
    try:
        for _ in range(12):
            with pytest.raises(CaptureTimeout):
                src.capture_burst()
        assert threading.active_count() <= base
        assert cams[0].calls == 2                     # the stuck call is never doubled
        assert "camera 0" in src.stuck()
        # through the gate loop as well: denied, audited, nothing pulsed, still no new thread
        cfg = gate_config(tmp_path, tiny_models)
        relay = MemoryRelay()
        with Gate(cfg, pipeline=_always_open(Pipeline(cfg)), relay=relay) as gate:
            gate._wait = lambda s: None               # no fault back-off in a test
            seen = []
            gate.run(src, limit=3, on_decision=lambda b, d: seen.append(d))
            assert [d.reason for d in seen] == ["camera_timeout"] * 3
            assert relay.events == []
            assert threading.active_count() <= base + 1   # + the gate's own (GPIO, store)
        # the driver returns at last: its late frame is dropped, the next burst is fresh
        cams[0].hang.clear()
        cams[0].release.set()
        b = src.capture_burst()
        assert int(b.views[0][0, 0, 0]) == cams[0].calls == 3
        assert src.stuck() == {}
    finally:
        for c in cams + [sensor]:
            c.release.set()
        src.stop()
