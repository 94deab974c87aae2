"""A relay that always ends off (issue 18, item 5), against real peers: a pymodbus RTU board on a
serial line that is cut and restored under it while the board stays powered
(tools/relay_peers.py: SerialLine, two socat processes), and the board's own timed coil.

- after a failed command the supervisor reopens the line on a timer and switches every channel
  off as soon as it answers; the next presentation after the line returns opens;
- ``[relay] board_pulse``: the pulse is the board's timed "flash on" command, so a process
  killed mid-pulse (SIGKILL, no systemd ExecStopPost) cannot leave the coil on.
"""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import ROOT, gate_config, write_toml
from test_relay import needs_socat

from device.config import ConfigError, load_config
from device.errors import RelayLineError, RelayRefused
from device.gate.decision import Decision
from device.gate.gate import Gate
from device.gate.pipeline import Pipeline
from device.relays.serial import ModbusRelay, modbus_flash_frame
from device.relays.supervisor import RelaySupervisor
from tools.relay_peers import ModbusPeer, SerialLine

COIL_ON = bytes.fromhex("01 05 00 00 FF 00 8C 3A")
COIL_OFF = bytes.fromhex("01 05 00 00 00 00 CD CA")


def wait_for(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while not pred() and time.monotonic() < end:
        time.sleep(0.01)
    return pred()


@pytest.fixture
def line(tmp_path):
    ln = SerialLine(tmp_path / "line")
    try:
        yield ln
    finally:
        ln.close()


def _modbus(port, **kw):
    return lambda: ModbusRelay(port, unit=1, channels=1, timeout=0.15, retries=0, **kw)


# --------------------------------------------------------------------------- frames
def test_flash_frame_is_the_vendors_example():
    # Waveshare Modbus RTU Relay: "relay 0 flash on for 7 x 100 ms"
    assert modbus_flash_frame(1, 0x0200, 7) == bytes.fromhex("01 05 02 00 00 07 8D B0")
    with pytest.raises(ValueError):
        modbus_flash_frame(1, 0x0200, 0)


def test_board_pulse_config():
    cfg = load_config(None, relay={"kind": "modbus", "port": "/dev/ttyUSB0",
                                   "board_pulse": True})
    assert cfg.relay.board_pulse is True and cfg.relay.flash_base == 0x0200
    with pytest.raises(ConfigError, match="relay.board_pulse"):
        load_config(None, relay={"kind": "lcus", "port": "/dev/ttyUSB0", "board_pulse": True})
    with pytest.raises(ConfigError, match="reconnect_min_s"):
        load_config(None, relay={"reconnect_min_s": 3.0, "reconnect_max_s": 1.0})


# --------------------------------------------------------------------------- board pulse
@needs_socat
def test_board_timed_pulse_ends_on_the_board(pty_pair):
    host, board = pty_pair
    peer = ModbusPeer(board, flash_base=0x0200)
    try:
        r = ModbusRelay(host, unit=1, channels=1, timeout=0.3, board_pulse=True)
        t0 = time.monotonic()
        r.flash(1, 250)                                  # the board alone ends this one
        assert peer.rx[-1] == modbus_flash_frame(1, 0x0200, 3)
        assert peer.coils[0] is True
        assert wait_for(lambda: peer.coils[0] is False, 2.0)
        dt = peer.off_after(0, t0)
        assert 0.28 <= dt <= 0.8, dt                     # 3 x 100 ms, by the board
        assert COIL_OFF not in peer.rx[-1:]              # nothing from the host ended it
        n = len(peer.rx)
        r.pulse(1, 200)                                  # the gate's pulse: flash + own off
        assert peer.rx[n] == modbus_flash_frame(1, 0x0200, 2)
        assert wait_for(lambda: peer.coils[0] is False, 2.0)
        r.close()
    finally:
        peer.stop()


@needs_socat
def test_board_without_flash_refuses_and_the_line_stays_up(pty_pair):
    host, board = pty_pair
    peer = ModbusPeer(board)                             # no timed coil on this board
    try:
        sup = RelaySupervisor(_modbus(host, board_pulse=True), 1, port=host)
        with pytest.raises(RelayRefused, match="exception code"):
            sup.pulse(1, 200)
        assert sup.connected and sup.faults == 0         # an answer is not a line fault
        sup.close()
    finally:
        peer.stop()


@needs_socat
@pytest.mark.parametrize("board_pulse", [False, True])
def test_sigkill_mid_pulse_without_execstoppost(tmp_path, pty_pair, board_pulse):
    """The gate's own relay (config -> open_gate_relay) pulses 1.5 s and is SIGKILLed mid-pulse;
    nothing runs after it. Host-timed: the coil stays on. Board-timed: the board ends it."""
    host, board = pty_pair
    peer = ModbusPeer(board, flash_base=0x0200)
    cfg = gate_config(tmp_path, relay={"kind": "modbus", "port": host, "pulse_ms": 1500,
                                       "timeout_s": 0.3, "board_pulse": board_pulse})
    f = write_toml(tmp_path / "p.toml", cfg)
    script = textwrap.dedent(f"""
        import sys, time
        from device.config import load_config
        from device.relays.factory import open_gate_relay
        cfg = load_config({str(f)!r})
        relay, _ = open_gate_relay(cfg)
        relay.pulse(cfg.relay.channel, cfg.relay.pulse_ms)
        print("pulsed", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=str(tmp_path))
    try:
        assert proc.stdout.readline().strip() == "pulsed"
        t0 = time.monotonic()
        assert peer.coils.get(0) is True
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        time.sleep(1.5 + 0.5 - (time.monotonic() - t0))
        assert peer.coils.get(0) is (not board_pulse)
    finally:
        if proc.poll() is None:
            proc.kill()
        peer.stop()


# --------------------------------------------------------------------------- line lost
@needs_socat
def test_line_cut_mid_pulse_offs_as_soon_as_it_answers(line):
    peer = ModbusPeer(line.board)
    events = []
    try:
        sup = RelaySupervisor(_modbus(line.host), 1, port=line.host, backoff_s=(0.1, 0.4),
                              on_event=lambda k, i: events.append((k, i)))
        sup.pulse(1, 800)
        assert peer.coils[0] is True
        line.cut()                                       # the pulse's "off" cannot go out
        assert wait_for(lambda: not sup.connected, 3.0)
        # the supervisor marks the line down, then reports it: wait for the report too
        assert wait_for(lambda: [k for k, _ in events] == ["relay_fault"], 3.0), events
        assert "pulse end" in events[0][1]["what"]
        time.sleep(0.6)
        assert peer.coils[0] is True                     # the powered board keeps it on
        n = len(peer.rx)
        line.restore()
        t0 = time.monotonic()
        assert wait_for(lambda: peer.coils[0] is False, 3.0)
        took = time.monotonic() - t0
        assert took < 1.0, took                          # within the back-off (0.4 s) + open
        assert peer.rx[n] == COIL_OFF                    # the first frame after the line
        assert wait_for(lambda: [k for k, _ in events] == ["relay_fault", "relay_recovered"],
                        3.0), events
        assert events[1][1]["down_s"] > 0.5 and sup.connected
        sup.pulse(1, 100)                                # and it works again
        assert COIL_ON in peer.rx[n:]
        sup.close()
    finally:
        peer.stop()


@needs_socat
def test_line_down_at_start_is_switched_off_when_it_appears(line):
    peer = ModbusPeer(line.board)
    try:
        line.cut()
        sup = RelaySupervisor(_modbus(line.host), 1, port=line.host, backoff_s=(0.1, 0.3))
        assert not sup.connected and sup.faults == 1
        with pytest.raises(RelayLineError):
            sup.pulse(1, 200)                            # still down: an error, at once
        line.restore()
        assert wait_for(lambda: sup.connected, 3.0)
        assert peer.rx and peer.rx[0] == COIL_OFF        # off before anything else
        sup.close()
    finally:
        peer.stop()


@needs_socat
def test_stale_handle_is_reopened_by_the_command(line):
    """The line went and came back while idle (no command failed meanwhile): the next command
    fails on the dead handle, and is retried once on a reopened line, which is switched off
    first."""
    peer = ModbusPeer(line.board)
    try:
        sup = RelaySupervisor(_modbus(line.host), 1, port=line.host, backoff_s=(5.0, 5.0))
        line.cut()
        line.restore()
        n = len(peer.rx)
        sup.pulse(1, 100)
        assert peer.rx[n:n + 2] == [COIL_OFF, COIL_ON]
        assert sup.faults == 1 and sup.recoveries == 1
        sup.close()
    finally:
        peer.stop()


# --------------------------------------------------------------------------- the gate
def _always_open(pipe):
    def decide(burst, claimed=None):
        return Decision(decision="open", reason="match", user_id="person-000", score=0.99,
                        threshold=0.98, views_used=3, burst=str(burst.meta.get("burst", "")))
    pipe.decide = decide
    return pipe


@needs_socat
def test_gate_after_the_line_returns(tmp_path, line, tiny_models, caplog):
    from test_gate_faults import _audit, _blank_burst
    peer = ModbusPeer(line.board)
    cfg = gate_config(tmp_path, tiny_models,
                      relay={"kind": "modbus", "port": line.host, "timeout_s": 0.15,
                             "pulse_ms": 800, "reconnect_min_s": 0.2, "reconnect_max_s": 0.5})
    gate = Gate(cfg, pipeline=_always_open(Pipeline(cfg)))
    try:
        assert gate.present(_blank_burst(0)).relay == "pulsed"
        line.cut()                                       # mid-pulse
        assert wait_for(lambda: not gate.relay.connected, 3.0)
        d = gate.present(_blank_burst(1))                # while it is down: denied
        assert (d.decision, d.reason) == ("deny", "relay_error")
        assert peer.coils[0] is True
        line.restore()
        assert wait_for(lambda: peer.coils[0] is False, 3.0)   # off, with nobody presenting
        d = gate.present(_blank_burst(2))                # the first presentation: opens
        assert (d.decision, d.relay) == ("open", "pulsed")
        # and again without waiting for the timer: cut, restore, present at once
        line.cut()
        line.restore()
        n = len(peer.rx)
        d = gate.present(_blank_burst(3))
        assert (d.decision, d.relay) == ("open", "pulsed")
        assert peer.rx[n:n + 2] == [COIL_OFF, COIL_ON]
        gate.process_events()
        kinds = [k for k, _ in _audit(gate)]
        assert kinds.count("relay_fault") == 2 and kinds.count("relay_recovered") == 2
        rec = [p for k, p in _audit(gate) if k == "relay_recovered"][0]
        assert rec["status"] == "up" and rec["delay_s"] > 0
        assert "lost (pulse end failed" in caplog.text and "back after" in caplog.text
        from device.ops.health import relay_report
        rep = relay_report(gate.relay)
        assert rep["ok"] and rep["driver"] == "ModbusRelay" and rep["recoveries"] == 2
    finally:
        gate.close()
        peer.stop()
    assert peer.coils[0] is False


@needs_socat
def test_gate_pulses_board_timed(tmp_path, pty_pair, tiny_models):
    from test_gate_faults import _blank_burst
    host, board = pty_pair
    peer = ModbusPeer(board, flash_base=0x0200)
    cfg = gate_config(tmp_path, tiny_models,
                      relay={"kind": "modbus", "port": host, "timeout_s": 0.3,
                             "pulse_ms": 200, "board_pulse": True})
    gate = Gate(cfg, pipeline=_always_open(Pipeline(cfg)))
    try:
        assert gate.present(_blank_burst(0)).relay == "pulsed"
        assert modbus_flash_frame(1, 0x0200, 2) in peer.rx
    finally:
        gate.close()
        peer.stop()


@needs_socat
def test_watchdog_over_the_supervisor(line):
    """The loop stops while the line is down: the watchdog's off fails (and is retried), the
    coil goes off when the line answers, by the reopen, without the watchdog's help."""
    from device.ops.watchdog import RelayWatchdog
    peer = ModbusPeer(line.board)
    try:
        sup = RelaySupervisor(_modbus(line.host), 1, port=line.host, backoff_s=(0.1, 0.3))
        sup.on(1)
        line.cut()
        wd = RelayWatchdog(sup, timeout_s=0.2).start()
        try:
            assert wait_for(lambda: wd.off_failures >= 1, 3.0)
            assert peer.coils[0] is True
            line.restore()
            assert wait_for(lambda: peer.coils[0] is False, 3.0)
            assert wait_for(lambda: wd.tripped and wd._off_done, 3.0)
        finally:
            wd.stop()
        sup.close()
        assert json.dumps(sup.describe())
    finally:
        peer.stop()


@needs_socat
def test_relay_faults_tool_runs(tmp_path):
    """``python -m tools.relay_faults`` (the before/after figures of docs/relays.md), briefly."""
    from tools.relay_faults import measure_kills, measure_threads
    th = measure_threads(faults=3)
    assert th["camera_timeouts"] == 3
    assert th["after_stuck_captures"] <= th["after_one_good_burst"]
    k = measure_kills(1, True, tmp_path, pulse_ms=300)
    assert k["available"] and k["left_on"] == 0 and len(k["off_after_s"]) == 1
