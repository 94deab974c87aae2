"""[gpio] wired into the gate: configuration errors that name the key, hardware errors at start
(not a crash), illuminator and strobe on during the burst capture only, the exit button pulsing
the relay (seen by the pymodbus relay board) with an audit record, door forced-open and
held-open as JSON log events, audit records and status. GPIO through gpiozero's MockFactory."""
import json
import logging
import sys
import time

import numpy as np
import pytest
from conftest import gate_config, write_toml
from test_relay import needs_socat

from device.sources.base import EndOfFrames
from device.sources.replay import Burst
from device.config import ConfigError, load_config
from device.gate.gate import Gate
from device.gate.decision import Decision
from device.gate.pipeline import Pipeline
from device.relays.factory import MemoryRelay

gpiozero = pytest.importorskip("gpiozero", reason="gpiozero is in the test extra")
from gpiozero.pins.mock import MockFactory  # noqa: E402

COIL_ON = bytes.fromhex("01 05 00 00 FF 00 8C 3A")
ILL, STROBE, DOOR, EXIT = 17, 22, 5, 6
GPIO = {"enabled": True, "illuminator_pin": ILL, "strobe_pin": f"GPIO{STROBE}",
        "door_pin": DOOR, "exit_pin": EXIT, "bounce_s": 0.0, "held_open_s": 0.5,
        "grant_window_s": 3.0}


@pytest.fixture
def pf():
    f = MockFactory()
    yield f
    f.reset()


def _shut(gate, pf):
    """The mock door pin reads high (open) once its pull-up is set, so the gate starts with a
    forced-open door: shut it and drop those start-up events and records from the test."""
    pf.pin(DOOR).drive_low()                     # reed switch closed: the door is shut
    gate.process_events()
    gate.door_events.clear()
    return len(gate.store.audit.records())


def _always_open(pipe):
    pipe.decide = lambda burst, claimed=None: Decision(
        decision="open", reason="match", user_id="person-000", score=0.99, threshold=0.98,
        views_used=3, burst=str(burst.meta.get("burst", "")))
    return pipe


def _blank(n=0):
    return Burst([np.full((48, 64, 3), 128, np.uint8)] * 3, np.full((32, 32), 128, np.uint8),
                 {"burst": n})


def _audit(gate):
    return [(r.kind, r.payload) for r in gate.store.audit.records()]


def _press(pf, pin=EXIT):
    pf.pin(pin).drive_low()
    pf.pin(pin).drive_high()


# --------------------------------------------------------------------------- configuration
def test_gpio_defaults_are_off_and_pins_normalised():
    cfg = load_config(None)
    assert cfg.gpio.enabled is False and cfg.gpio.exit_pin is None
    cfg = load_config(None, gpio={"enabled": True, "exit_pin": "gpio6", "door_pin": "BOARD11",
                                  "illuminator_pin": 17})
    assert (cfg.gpio.exit_pin, cfg.gpio.door_pin, cfg.gpio.illuminator_pin) == \
        ("GPIO6", "BOARD11", 17)


@pytest.mark.parametrize("toml, key", [
    ("[gpio]\nenabled = true\n", "gpio.enabled"),                     # on, but no pin
    ("[gpio]\nenabled = true\nexit_pin = \"GPIOX\"\n", "gpio.exit_pin"),
    ("[gpio]\nenabled = true\ndoor_pin = 60\n", "gpio.door_pin"),
    ("[gpio]\nexit_pin = true\n", "gpio.exit_pin"),
    ("[gpio]\nenabled = true\ndoor_pin = 5\nexit_pin = \"GPIO5\"\n", "gpio.exit_pin"),   # twice
    ("[gpio]\npin_factory = \"wiringpi\"\n", "gpio.pin_factory"),
    ("[gpio]\nheld_open_s = 0\n", "gpio.held_open_s"),
    ("[gpio]\nenabled = \"yes\"\n", "gpio.enabled"),
    ("[gpio]\ndoor_pn = 5\n", "gpio.door_pn"),
])
def test_gpio_config_errors_name_the_key(tmp_path, toml, key):
    p = tmp_path / "c.toml"
    p.write_text(toml)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(p)


@pytest.mark.parametrize("fault, key", [("no_gpiozero", "gpio.enabled"),
                                        ("not_a_pi", "gpio.pin_factory")])
def test_absent_gpio_hardware_stops_run_with_a_config_error(tmp_path, monkeypatch, capsys,
                                                             fault, key):
    from device.cli import main
    gpio = {"enabled": True, "exit_pin": EXIT}
    if fault == "no_gpiozero":
        monkeypatch.setitem(sys.modules, "gpiozero", None)
    else:
        gpio["pin_factory"] = "native"           # off a Pi: cannot find the board
    f = write_toml(tmp_path / "g.toml", gate_config(tmp_path, gpio=gpio))
    try:
        rc = main(["run", "--config", str(f), "--plain-log"])
    finally:
        logging.getLogger().handlers[:] = [h for h in logging.getLogger().handlers
                                           if not getattr(h, "_palmgate", False)]
    err = capsys.readouterr().err
    if fault == "not_a_pi" and rc == 0:          # running on a real Pi: fine too
        return
    assert rc == 2
    assert f"palmgate: error: {key}:" in err and "Traceback" not in err


def test_start_switches_relay_off_before_anything_else(tmp_path, monkeypatch):
    """Start-up order: relay (all channels off) -> GPIO -> store -> models; a failure on the
    way closes the relay again."""
    import device.gate.gate as gate_mod
    import device.relays.factory as relays
    order = []
    relay = MemoryRelay()
    relay.state[1] = True                        # left on by a killed gate

    def fake_open(cfg, on_event=None):
        order.append("relay")
        relay.off(1)                             # what the real drivers do when they open
        return relay, None

    def fake_store(cfg):
        order.append("store")
        raise OSError("disk gone")

    monkeypatch.setattr(relays, "open_gate_relay", fake_open)
    monkeypatch.setattr(gate_mod, "open_store", fake_store)
    monkeypatch.setattr(gate_mod, "Pipeline", lambda cfg: order.append("pipeline"))
    with pytest.raises(OSError, match="disk gone"):
        Gate(gate_config(tmp_path))
    assert order == ["relay", "store"]
    assert relay.state[1] is False and relay.events[-1][2] is False


# --------------------------------------------------------------------------- the loop
class _Source:
    """Two bursts; records the illuminator and strobe pins while each is captured; the door is
    forced open during the second capture."""

    def __init__(self, pf):
        self.pf, self.n, self.lit = pf, 0, []

    def start(self):
        pass

    def stop(self):
        pass

    def capture_burst(self):
        if self.n == 2:
            raise EndOfFrames()
        self.lit.append((self.pf.pin(ILL).state, self.pf.pin(STROBE).state))
        if self.n == 1:
            self.pf.pin(DOOR).drive_high()       # nobody was granted anything just now
        self.n += 1
        return _blank(self.n)


def test_loop_lights_capture_and_audits_forced_open(tmp_path, tiny_models, pf, caplog):
    # the cool-down outlasts the grant of the first open: the second opening is not covered
    cfg = gate_config(tmp_path, tiny_models, gpio=dict(GPIO, grant_window_s=0.5),
                      gate={"cooldown_s": 0.8})
    relay = MemoryRelay()
    caplog.set_level(logging.INFO)
    with Gate(cfg, pipeline=_always_open(Pipeline(cfg)), relay=relay, pin_factory=pf) as gate:
        n0 = _shut(gate, pf)
        assert pf.pin(ILL).state is False and pf.pin(STROBE).state is False
        src = _Source(pf)
        seen = []
        gate.run(src, on_decision=lambda b, d: seen.append(d))
        assert src.lit == [(True, True), (True, True)]          # lit while capturing
        assert pf.pin(ILL).state is False and pf.pin(STROBE).state is False   # and only then
        assert [d.relay for d in seen] == ["pulsed", "pulsed"]
        gate.process_events()
        recs = _audit(gate)[n0:]
        forced = [p for k, p in recs if k == "door_forced_open"]
        assert forced and forced[0]["reason"] == "forced_open"
        assert forced[0]["terminal"] == cfg.gate.terminal
        st = gate.io_status()
        assert st["door"]["alarm"] == "forced_open" and st["events"][-1]["kind"] == \
            "forced_open"
        # the JSON log event (device/ops/jsonlog renders extra= fields as they are)
        from device.ops.jsonlog import JsonFormatter
        ev = [json.loads(JsonFormatter().format(r)) for r in caplog.records
              if getattr(r, "event", None) == "door_forced_open"]
        assert ev and ev[0]["level"] == "WARNING" and ev[0]["door"]["kind"] == "forced_open"
        # the health report carries the alarm
        from device.ops import health
        rep = health.build_status(door=gate.io.monitor.status(),
                                  extra={"gpio": gate.io_status()})
        assert rep["ok"] is False and "door: forced_open" in rep["problems"]
        json.dumps(rep, default=str)
        pf.pin(DOOR).drive_low()                 # shut again: the alarm clears, on record
        gate.process_events()
        assert _audit(gate)[-1][0] == "door_closed"
        assert "closed after forced_open" in _audit(gate)[-1][1]["reason"]
        assert gate.io_status()["door"]["alarm"] is None
    assert pf.pin(ILL).state is False


def test_held_open_after_access(tmp_path, tiny_models, pf, caplog):
    cfg = gate_config(tmp_path, tiny_models, gpio=GPIO)
    caplog.set_level(logging.INFO)
    with Gate(cfg, pipeline=_always_open(Pipeline(cfg)), relay=MemoryRelay(),
              pin_factory=pf) as gate:
        n0 = _shut(gate, pf)
        assert gate.present(_blank()).relay == "pulsed"          # grants the door
        pf.pin(DOOR).drive_high()                                # opens: authorised
        end = time.monotonic() + 5
        while time.monotonic() < end and gate.io.monitor.alarm is None:
            time.sleep(0.05)
        gate._wait(0.05)                                         # the loop's idle wait
        kinds = [k for k, _ in _audit(gate)[n0:]]
        assert "door_held_open" in kinds and "door_forced_open" not in kinds
        held = [p for k, p in _audit(gate)[n0:] if k == "door_held_open"][0]
        assert held["window_s"] == 0.5
        assert any(getattr(r, "event", None) == "door_held_open" for r in caplog.records)
        pf.pin(DOOR).drive_low()


# --------------------------------------------------------------------------- exit button
@needs_socat
def test_exit_button_pulses_the_modbus_relay_and_audits(tmp_path, tiny_models, pf,
                                                        modbus_peer):
    host, peer = modbus_peer
    cfg = gate_config(tmp_path, tiny_models, gpio=GPIO,
                      relay={"kind": "modbus", "port": host, "timeout_s": 0.3,
                             "pulse_ms": 300})
    with Gate(cfg, pipeline=Pipeline(cfg), pin_factory=pf) as gate:
        _shut(gate, pf)
        assert peer.coils.get(0) is False and COIL_ON not in peer.rx   # off at start
        _press(pf)
        assert peer.rx[-1] == COIL_ON and peer.coils[0] is True   # pulsed from the callback
        end = time.monotonic() + 3
        while peer.coils[0] and time.monotonic() < end:
            time.sleep(0.02)
        assert peer.coils[0] is False                            # ended by the driver
        done = gate.process_events()
        assert [k for k, _ in done] == ["egress"] and done[0][1]["relay"] == "pulsed"
        kind, p = _audit(gate)[-1]
        assert kind == "egress" and (p["decision"], p["reason"]) == ("open", "exit_button")
        pf.pin(DOOR).drive_high()                                # the person walks out
        assert gate.io.monitor.alarm is None                     # authorised by the button
        pf.pin(DOOR).drive_low()
        # the line goes away: the press is still recorded, as a deny with the reason
        peer.stop()
        _press(pf)
        gate.process_events()
        kind, p = _audit(gate)[-1]
        assert kind == "egress" and p["decision"] == "deny" and "relay_error" in p["reason"]
        assert gate.store.audit.verify() == len(_audit(gate))
