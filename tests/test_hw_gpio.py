"""GPIO devices through gpiozero's MockFactory, the door monitor's state machine with a fake
clock, and the configuration errors for absent libraries and hardware."""
import sys
import time

import pytest

from device.errors import HardwareConfigError
from device.relays.gpio import (DoorMonitor, DoorSensor, ExitButton, GateIO, GpioRelay, Illuminator,
                            Strobe, make_pin_factory)

gpiozero = pytest.importorskip("gpiozero", reason="gpiozero is in the test extra")
from gpiozero.pins.mock import MockFactory  # noqa: E402

from device.relays.serial import Relay  # noqa: E402


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def wait_for(pred, timeout=3.0):
    end = time.monotonic() + timeout
    while not pred() and time.monotonic() < end:
        time.sleep(0.01)
    return pred()


@pytest.fixture
def pf():
    f = MockFactory()
    yield f
    f.reset()


# -- outputs ------------------------------------------------------------------------------------
def test_illuminator_on_off_and_max_on(pf):
    ill = Illuminator(17, pin_factory=pf, max_on_s=0.15)
    pin = pf.pin(17)
    assert pin.state is False and not ill.is_on             # off at start
    with ill.lit():
        assert pin.state is True and ill.is_on
    assert pin.state is False
    ill.on()                                                # forgotten: max_on_s ends it
    assert pin.state is True
    assert wait_for(lambda: pin.state is False)
    ill.close()
    assert ill.describe() == {"role": "illuminator", "pin": "17", "on": False, "closed": True}
    with pytest.raises(HardwareConfigError, match="closed"):
        ill.on()
    with pytest.raises(ValueError):
        Illuminator(18, pin_factory=pf, max_on_s=0)


def test_active_low_strobe_pulse(pf):
    s = Strobe("GPIO22", active_high=False, pin_factory=pf)
    pin = pf.pin(22)
    assert pin.state is True                                 # active low: idle high
    s.pulse(80)
    assert pin.state is False
    assert wait_for(lambda: pin.state is True)
    s.close()


def test_gpio_relay_follows_the_relay_protocol(pf):
    r = GpioRelay(27, pin_factory=pf)
    assert isinstance(r, Relay)
    pin = pf.pin(27)
    r.pulse(1, 100)
    assert pin.state is True
    assert wait_for(lambda: pin.state is False)
    r.on(1)
    r.pulse(1, 5000)                                         # a long pulse cut by close
    r.close()
    assert pin.state is False
    with pytest.raises(ValueError, match="channel 2"):
        GpioRelay(26, pin_factory=pf).on(2)


# -- inputs -------------------------------------------------------------------------------------
def test_door_sensor_and_exit_button_callbacks(pf):
    events = []
    door = DoorSensor(5, pin_factory=pf, bounce_s=None, on_open=lambda: events.append("open"),
                      on_close=lambda: events.append("close"))
    pin = pf.pin(5)
    pin.drive_low()                     # reed switch closed to ground: door shut
    assert not door.is_open
    pin.drive_high()
    assert door.is_open and events == ["close", "open"]
    btn = ExitButton(6, pin_factory=pf, bounce_s=None, on_press=lambda: events.append("exit"))
    pf.pin(6).drive_low()
    assert events[-1] == "exit"
    door.close()
    btn.close()


# -- door monitor -------------------------------------------------------------------------------
def test_forced_open_without_grant():
    clock, got = Clock(), []
    m = DoorMonitor(held_open_s=10, grant_window_s=5, on_event=got.append, clock=clock,
                    timers=False)
    m.opened()
    assert m.alarm == "forced_open" and got[-1]["kind"] == "forced_open"
    assert got[-1]["since_grant_s"] is None
    clock.t += 30
    assert m.check() == []                      # a forced door is not also "held"
    m.closed()
    assert m.alarm is None
    assert got[-1] == {"kind": "door_closed", "at": clock.t, "open_s": 30.0,
                       "was_forced": True, "was_held": False}


def test_grant_expires_and_is_used_once():
    clock, got = Clock(), []
    m = DoorMonitor(held_open_s=10, grant_window_s=5, on_event=got.append, clock=clock,
                    timers=False)
    m.grant("palm")
    clock.t += 6                                 # too late
    m.opened()
    assert m.alarm == "forced_open" and got[-1]["since_grant_s"] == 6
    m.closed()
    m.grant("palm")
    clock.t += 1
    m.opened()
    assert m.alarm is None and got[-1]["kind"] == "door_opened" and got[-1]["grant"] == "palm"
    m.closed()
    clock.t += 1
    m.opened()                                   # tailgating on the same grant: forced
    assert m.alarm == "forced_open"


def test_held_open_after_grant():
    clock, got = Clock(), []
    m = DoorMonitor(held_open_s=10, grant_window_s=5, on_event=got.append, clock=clock,
                    timers=False)
    m.grant()
    m.opened()
    clock.t += 9.9
    assert m.check() == [] and m.alarm is None
    clock.t += 0.2
    ev = m.check()
    assert [e["kind"] for e in ev] == ["held_open"] and m.alarm == "held_open"
    assert m.check() == []                       # reported once
    assert m.status()["open"] is True
    m.closed()
    assert got[-1]["was_held"] is True and m.alarm is None


def test_gate_io_wires_door_exit_and_real_timer(pf):
    got = []
    io = GateIO({"door_pin": 5, "exit_pin": 6, "held_open_s": 0.2, "grant_window_s": 2,
                 "illuminator_pin": 17, "relay_pin": 27, "bounce_s": None},
                pin_factory=pf, on_door_event=got.append)
    door = pf.pin(5)
    door.drive_low()                             # shut
    pf.pin(6).drive_low()                        # exit button: grants an exit
    pf.pin(6).drive_high()
    door.drive_high()                            # opens: authorised
    assert got[-1]["kind"] == "door_opened" and got[-1]["grant"] == "exit_button"
    assert wait_for(lambda: got[-1]["kind"] == "held_open")   # the monitor's own timer
    door.drive_low()
    assert got[-1]["kind"] == "door_closed"
    door.drive_high()                            # nobody granted this one
    assert got[-1]["kind"] == "forced_open" and io.describe()["door"]["alarm"] == "forced_open"
    d = io.describe()
    assert d["illuminator"]["on"] is False and d["relay"]["pin"] == "27" and d["strobe"] is None
    io.granted("palm")
    io.close()


def test_door_open_at_start_is_forced(pf):
    got = []
    pf.pin(5).drive_high()                       # door already open when the gate starts
    io = GateIO({"door_pin": 5, "bounce_s": None}, pin_factory=pf, on_door_event=got.append)
    assert got and got[0]["kind"] == "forced_open"
    io.close()


# -- configuration errors -----------------------------------------------------------------------
def test_unknown_option_and_busy_pin_are_config_errors(pf):
    with pytest.raises(HardwareConfigError, match="unknown gpio option.*door_pn"):
        GateIO({"door_pn": 5}, pin_factory=pf)
    ill = Illuminator(17, pin_factory=pf)
    with pytest.raises(HardwareConfigError, match="GPIO strobe on pin 17"):
        GateIO({"strobe_pin": 17}, pin_factory=pf)
    ill.close()
    with pytest.raises(HardwareConfigError, match="GPIO door sensor on pin 99"):
        DoorSensor(99, pin_factory=pf)
    with pytest.raises(HardwareConfigError, match="unknown GPIO pin factory 'gpio9'"):
        make_pin_factory("gpio9")
    with pytest.raises(HardwareConfigError, match="no pin configured"):
        Illuminator(None, pin_factory=pf)


def test_no_pi_is_a_config_error(monkeypatch):
    # off a Pi, gpiozero's default factories all fail: BadPinFactory becomes a config error
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "native")
    monkeypatch.setattr(gpiozero.Device, "pin_factory", None)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            dev = Illuminator(17)
        except HardwareConfigError as e:
            assert "GPIO illuminator on pin 17" in str(e)
        else:                                    # running on a real Pi: fine too
            dev.close()
    monkeypatch.setattr(gpiozero.Device, "pin_factory", None)


def test_missing_gpiozero_is_a_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "gpiozero", None)
    with pytest.raises(HardwareConfigError, match="gpiozero is not importable"):
        Illuminator(17)
    with pytest.raises(HardwareConfigError, match="leave the GPIO devices out"):
        GateIO({"door_pin": 5})
