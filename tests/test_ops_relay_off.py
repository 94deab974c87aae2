"""Fail secure after SIGKILL mid-pulse: the real gate loop (``palmgate run``, a subprocess)
pulses a pymodbus relay board for 60 s and is killed with SIGKILL; the coil stays on, because
nothing in the dead process can end the pulse. ``palmgate relay-off`` -- what the systemd unit
runs as ``ExecStopPost=`` after the main process exits for any reason -- switches it off, and the
board reads back off."""
import json
import os
import signal
import subprocess
import sys
import time

from conftest import ROOT, enrolled_replay_gate, gate_config, trusting_cli, write_toml
from test_relay import needs_socat


COIL_ON = bytes.fromhex("01 05 00 00 FF 00 8C 3A")
COIL_OFF = bytes.fromhex("01 05 00 00 00 00 CD CA")


def _cli(*args, cfg, cwd, timeout=60):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "device.cli", *args, "--config", str(cfg)],
                          capture_output=True, text=True, env=env, cwd=str(cwd),
                          timeout=timeout)


@needs_socat
def test_sigkill_mid_pulse_then_relay_off(tmp_path, modbus_peer, tiny_models,
                                          synthetic_bursts, signing_key):
    host, peer = modbus_peer
    cfg, f = enrolled_replay_gate(tmp_path, tiny_models, synthetic_bursts, 4,
                                  {"kind": "modbus", "port": host, "pulse_ms": 60000,
                                   "timeout_s": 0.3})
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([*trusting_cli(signing_key), "run", "--config", str(f),
                             "--plain-log"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env, cwd=str(tmp_path), text=True)
    try:
        first = json.loads(proc.stdout.readline())
        assert (first["decision"], first["relay"]) == ("open", "pulsed")
        assert peer.coils.get(0) is True                 # mid-pulse: 60 s to go
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
        time.sleep(0.5)
        assert peer.coils.get(0) is True                 # the dead gate left it on
        n_rx = len(peer.rx)
        t0 = time.monotonic()
        out = _cli("relay-off", cfg=f, cwd=tmp_path)
        took = time.monotonic() - t0
        assert out.returncode == 0, out.stdout + out.stderr
        rep = json.loads(out.stdout)
        assert rep["ok"] and rep["confirmed"] is True and rep["read_back"] == {"1": False}
        assert peer.coils.get(0) is False                # the board itself is off
        assert COIL_OFF in peer.rx[n_rx:] and COIL_ON not in peer.rx[n_rx:]
        assert took < 30
        print(f"relay-off: {took * 1000:.0f} ms wall (process start to exit), "
              f"{rep['elapsed_ms']} ms inside")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@needs_socat
def test_relay_off_fails_when_the_board_is_silent(tmp_path, pty_pair):
    host, _board = pty_pair                              # nobody answers on the other end
    cfg = gate_config(tmp_path, relay={"kind": "modbus", "port": host, "timeout_s": 0.05})
    f = write_toml(tmp_path / "p.toml", cfg)
    out = _cli("relay-off", "--attempts", "2", "--pause", "0.05", cfg=f, cwd=tmp_path)
    assert out.returncode == 1
    rep = json.loads(out.stdout)
    assert rep["ok"] is False and rep["relay_off"] is False and len(rep["errors"]) == 2
    assert "no answer" in rep["errors"][-1]


def test_relay_off_sim_and_gpio_outputs(tmp_path, monkeypatch):
    """relay.kind sim: nothing outside the process to switch (ok); [gpio] outputs are driven
    to their off level (active-low illuminator: high)."""
    import pytest
    pytest.importorskip("gpiozero")
    from gpiozero.pins.mock import MockFactory

    from device.relays import gpio
    from device.ops.relayoff import relay_off
    pf = MockFactory()
    seen = {}
    close = gpio.GateIO.close

    def snapshot_then_close(io):                 # closing a mock pin resets it
        seen.update({n: getattr(io, n)._dev.pin.state for n in ("illuminator", "strobe")})
        close(io)

    monkeypatch.setattr(gpio.GateIO, "close", snapshot_then_close)
    try:
        cfg = gate_config(tmp_path, gpio={"enabled": True, "illuminator_pin": 17,
                                          "illuminator_active_high": False,
                                          "strobe_pin": 22, "pin_factory": "mock"})
        rep = relay_off(cfg)
        assert rep["ok"] and rep["gpio_off"] and rep["relay"] == "sim"
        assert seen == {"illuminator": True, "strobe": False}   # both at their off level
    finally:
        pf.reset()
