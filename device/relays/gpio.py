"""GPIO devices of the gate through gpiozero: the IR/X-ray illuminator, the LED strobe, a relay
on a GPIO pin, the door sensor and the exit button, and a door monitor that reports held-open
and forced-open doors.

gpiozero is imported when a device is made, never at module import. A missing gpiozero, a board
without a usable pin factory, an invalid or busy pin: each is a :class:`HardwareConfigError`
naming the device and the pin. Tests pass ``pin_factory="mock"`` (gpiozero's ``MockFactory``).

Pins are gpiozero pin specs: ``17`` / ``"GPIO17"`` (BCM numbering) or ``"BOARD11"``.
The pin factory (``pin_factory=``) is a factory object or a name: ``"lgpio"`` (Pi 5's default),
``"rpigpio"``, ``"pigpio"``, ``"native"``, ``"mock"``; None takes gpiozero's default
(``$GPIOZERO_PIN_FACTORY`` or the first that loads).

:class:`DoorMonitor` is a pure state machine (a clock you can inject, timers optional):
``grant()`` when the relay is pulsed (or the exit button pressed), ``opened()`` / ``closed()``
from the door sensor. An opening within ``grant_window_s`` of a grant uses the grant; one
without is **forced_open**. An authorised door still open ``held_open_s`` after it opened is
**held_open**. Closing clears both (a ``door_closed`` event names what was active).
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from contextlib import contextmanager
from typing import Any, Callable

from device.errors import HardwareConfigError

log = logging.getLogger(__name__)

INSTALL_HINT = ("install gpiozero (on the Pi: apt's python3-gpiozero and python3-lgpio, seen by "
                "a venv made with --system-site-packages), or leave the GPIO devices out of "
                "the configuration")


def _gpiozero():
    try:
        import gpiozero
    except ImportError as e:
        raise HardwareConfigError(f"gpiozero is not importable ({e}); {INSTALL_HINT}") from e
    return gpiozero


def make_pin_factory(spec: Any = None):
    """A gpiozero pin factory from a name (``"mock"``, ``"lgpio"``, ...), an object, or None."""
    if spec is None or not isinstance(spec, str):
        return spec
    _gpiozero()
    from importlib.metadata import entry_points
    eps = {e.name: e for e in entry_points(group="gpiozero_pin_factories")}
    if spec not in eps:
        raise HardwareConfigError(f"unknown GPIO pin factory {spec!r}; known: "
                                  f"{', '.join(sorted(eps))}")
    try:
        return eps[spec].load()()
    except Exception as e:
        raise HardwareConfigError(f"GPIO pin factory {spec!r} cannot start on this machine "
                                  f"({type(e).__name__}: {e}); {INSTALL_HINT}") from e


def _device(role: str, cls_name: str, pin, pin_factory, **kw):
    gz = _gpiozero()
    if pin is None:
        raise HardwareConfigError(f"GPIO {role}: no pin configured")
    try:
        return getattr(gz, cls_name)(pin, pin_factory=make_pin_factory(pin_factory), **kw)
    except HardwareConfigError:
        raise
    except Exception as e:          # BadPinFactory, PinInvalidPin, GPIOPinInUse, OSError, ...
        hint = ("no GPIO pin factory works on this machine (not a Pi, or lgpio missing)"
                if type(e).__name__ == "BadPinFactory" else "pin invalid or in use?")
        raise HardwareConfigError(f"GPIO {role} on pin {pin}: {type(e).__name__}: {e} "
                                  f"({hint})") from e


class _OneTimer:
    """At most one pending ``threading.Timer`` (daemon) per object, in ``self._timer``."""

    _timer: threading.Timer | None = None

    def _start_timer(self, seconds: float, fn: Callable[[], Any]) -> None:
        t = threading.Timer(seconds, fn)
        t.daemon = True
        self._timer = t
        t.start()

    def _cancel(self) -> None:
        t, self._timer = self._timer, None
        if t is not None:
            t.cancel()


class _Output(_OneTimer):
    """A digital output with an upper bound on how long it may stay on (``max_on_s``)."""

    role = "output"

    def __init__(self, pin, *, active_high: bool = True, pin_factory=None,
                 max_on_s: float | None = None, role: str | None = None):
        self.role = role or self.role
        self.pin = pin
        self.max_on_s = max_on_s
        self._dev = _device(self.role, "DigitalOutputDevice", pin, pin_factory,
                            active_high=active_high, initial_value=False)
        self._lock = threading.RLock()
        self._timer: threading.Timer | None = None
        self.closed = False

    @property
    def is_on(self) -> bool:
        return not self.closed and bool(self._dev.value)

    def on(self, max_on_s: float | None = None) -> None:
        limit = max_on_s if max_on_s is not None else self.max_on_s
        with self._lock:
            self._check()
            self._cancel()
            self._dev.on()
            if limit:
                self._arm(limit)

    def off(self) -> None:
        with self._lock:
            self._cancel()
            if not self.closed:
                self._dev.off()

    def pulse(self, ms: float) -> None:
        """On now, off after ``ms`` by this object's own timer."""
        if ms <= 0:
            raise ValueError(f"{self.role}: pulse length {ms} ms must be > 0")
        self.on(max_on_s=ms / 1000.0)

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.off()
            self.closed = True
            self._dev.close()

    def describe(self) -> dict:
        return {"role": self.role, "pin": str(self.pin), "on": self.is_on,
                "closed": self.closed}

    def _check(self) -> None:
        if self.closed:
            raise HardwareConfigError(f"GPIO {self.role} on pin {self.pin} is closed")

    def _arm(self, seconds: float) -> None:
        self._start_timer(seconds, self._expire)

    def _expire(self) -> None:
        with self._lock:
            if self._timer is not threading.current_thread():
                return
            self._timer = None
            if not self.closed:
                self._dev.off()


class Illuminator(_Output):
    """The IR / X-ray source. Never left on: ``max_on_s`` (default 2 s) switches it off whatever
    the caller does. ``with ill.lit(): capture...`` lights it for a burst."""

    role = "illuminator"

    def __init__(self, pin, *, active_high: bool = True, pin_factory=None,
                 max_on_s: float = 2.0, role: str | None = None):
        if not max_on_s or max_on_s <= 0:
            raise ValueError("an illuminator needs a max_on_s > 0")
        super().__init__(pin, active_high=active_high, pin_factory=pin_factory,
                         max_on_s=max_on_s, role=role)

    def lit(self):
        ill = self

        class _Lit:
            def __enter__(self):
                ill.on()
                return ill

            def __exit__(self, *exc):
                ill.off()

        return _Lit()


class Strobe(_Output):
    """The LED strobe (or any indicator): ``pulse(ms)``, ``on``/``off``."""

    role = "strobe"


class GpioRelay(_Output):
    """A relay (or turnstile input) on one GPIO pin, with the serial drivers' protocol:
    ``on(channel)``, ``off(channel)``, ``pulse(channel, ms)``, ``close()``; channel 1 only.
    Off at start and at close; a pulse ends by this object's timer; ``max_on_s`` bounds ``on``."""

    role = "relay"

    def __init__(self, pin, *, active_high: bool = True, pin_factory=None,
                 max_on_s: float | None = 60.0):
        super().__init__(pin, active_high=active_high, pin_factory=pin_factory,
                         max_on_s=max_on_s)
        self.channels = 1
        self.port = f"gpio:{pin}"
        self.errors: list[BaseException] = []

    def _ch(self, channel: int) -> None:
        if int(channel) != 1:
            raise ValueError(f"relay channel {channel} outside 1..1")

    def on(self, channel: int = 1, max_on_s: float | None = None) -> None:  # type: ignore[override]
        self._ch(channel)
        super().on(max_on_s)

    def off(self, channel: int = 1) -> None:   # type: ignore[override]
        self._ch(channel)
        super().off()

    def pulse(self, channel: int, ms: float) -> None:   # type: ignore[override]
        self._ch(channel)
        super().pulse(ms)

    def all_off(self) -> None:
        super().off()


class _Input:
    role = "input"

    def __init__(self, pin, *, pull_up: bool = True, bounce_s: float | None = 0.02,
                 pin_factory=None, cls: str = "DigitalInputDevice"):
        self.pin = pin
        self._dev = _device(self.role, cls, pin, pin_factory, pull_up=pull_up,
                            bounce_time=bounce_s)

    @property
    def active(self) -> bool:
        return bool(self._dev.is_active)

    def close(self) -> None:
        self._dev.close()


class DoorSensor(_Input):
    """A door contact. ``closed_when_active``: the usual reed switch to ground with the pull-up
    reads active (low) while the door is shut. ``on_open`` / ``on_close`` callbacks."""

    role = "door sensor"

    def __init__(self, pin, *, closed_when_active: bool = True, pull_up: bool = True,
                 bounce_s: float | None = 0.05, pin_factory=None,
                 on_open: Callable[[], None] | None = None,
                 on_close: Callable[[], None] | None = None):
        super().__init__(pin, pull_up=pull_up, bounce_s=bounce_s, pin_factory=pin_factory)
        self.closed_when_active = closed_when_active
        self.on_open, self.on_close = on_open, on_close      # read when the edge comes
        if closed_when_active:
            self._dev.when_activated, self._dev.when_deactivated = self._closed, self._opened
        else:
            self._dev.when_activated, self._dev.when_deactivated = self._opened, self._closed

    @property
    def is_open(self) -> bool:
        return self.active != self.closed_when_active

    def _opened(self):
        if self.on_open:
            self.on_open()

    def _closed(self):
        if self.on_close:
            self.on_close()


class ExitButton(_Input):
    """The request-to-exit button (``Button``: pull-up, active when pressed). ``on_press``."""

    role = "exit button"

    def __init__(self, pin, *, pull_up: bool = True, bounce_s: float | None = 0.05,
                 pin_factory=None, on_press: Callable[[], None] | None = None):
        super().__init__(pin, pull_up=pull_up, bounce_s=bounce_s, pin_factory=pin_factory,
                         cls="Button")
        self.on_press = on_press
        self._dev.when_pressed = self._fire

    def _fire(self):
        if self.on_press:
            self.on_press()


class DoorMonitor(_OneTimer):
    """Held-open and forced-open detection (see the module docstring).

    ``on_event(event: dict)`` gets every event; ``events`` keeps the last ``keep`` of them.
    Events: ``{"kind": "forced_open" | "held_open" | "door_opened" | "door_closed", "at": t,
    ...}``. ``timers``: when True, a timer checks held-open on its own; otherwise call
    ``check()`` (the gate loop does every iteration)."""

    def __init__(self, held_open_s: float = 10.0, grant_window_s: float = 5.0,
                 on_event: Callable[[dict], None] | None = None, *,
                 clock: Callable[[], float] = time.monotonic, timers: bool = True,
                 keep: int = 100):
        if held_open_s <= 0 or grant_window_s <= 0:
            raise ValueError("held_open_s and grant_window_s must be > 0")
        self.held_open_s, self.grant_window_s = held_open_s, grant_window_s
        self.on_event = on_event
        self.clock = clock
        self.timers = timers
        self.events: deque = deque(maxlen=keep)
        self._lock = threading.RLock()
        self._grant_at: float | None = None
        self._grant_source: str | None = None
        self.is_open = False
        self.opened_at: float | None = None
        self.authorised = False
        self.forced = False
        self.held = False
        self._timer: threading.Timer | None = None

    # -- inputs ---------------------------------------------------------------------------
    def grant(self, source: str = "access") -> None:
        """A person may pass now (relay pulsed, exit button): the next opening within
        ``grant_window_s`` is authorised."""
        with self._lock:
            self._grant_at, self._grant_source = self.clock(), source

    def opened(self) -> None:
        with self._lock:
            if self.is_open:
                return
            now = self.clock()
            self.is_open, self.opened_at = True, now
            g = self._grant_at
            self.authorised = g is not None and now - g <= self.grant_window_s
            source, self._grant_at = self._grant_source, None      # a grant opens once
            if self.authorised:
                self._emit("door_opened", authorised=True, grant=source)
                if self.timers:
                    self._arm()
            else:
                self.forced = True
                self._emit("forced_open", since_grant_s=None if g is None else now - g)

    def closed(self) -> None:
        with self._lock:
            if not self.is_open:
                return
            self._cancel()
            now = self.clock()
            open_s = now - self.opened_at
            self._emit("door_closed", open_s=open_s, was_forced=self.forced,
                       was_held=self.held)
            self.is_open, self.opened_at = False, None
            self.authorised = self.forced = self.held = False

    def check(self) -> list[dict]:
        """New events due now (held-open); call it often when ``timers`` is False."""
        with self._lock:
            if (self.is_open and self.authorised and not self.held
                    and self.clock() - self.opened_at >= self.held_open_s):
                self.held = True
                return [self._emit("held_open", open_s=self.clock() - self.opened_at)]
            return []

    # -- state ----------------------------------------------------------------------------
    @property
    def alarm(self) -> str | None:
        """The active alarm: "forced_open", "held_open" or None."""
        return "forced_open" if self.forced else "held_open" if self.held else None

    def status(self) -> dict:
        with self._lock:
            return {"open": self.is_open, "alarm": self.alarm,
                    "open_s": None if not self.is_open else self.clock() - self.opened_at,
                    "held_open_s": self.held_open_s, "grant_window_s": self.grant_window_s}

    def close(self) -> None:
        self._cancel()

    def _emit(self, kind: str, **kw) -> dict:
        ev = {"kind": kind, "at": self.clock(), **kw}
        self.events.append(ev)
        level = logging.WARNING if kind in ("forced_open", "held_open") else logging.INFO
        log.log(level, "door %s", kind,
                extra={"event": kind if kind.startswith("door_") else "door_" + kind,
                       "door": ev})
        if self.on_event:
            try:
                self.on_event(ev)
            except Exception:
                log.exception("door event callback failed")
        return ev

    def _arm(self) -> None:
        self._cancel()
        self._start_timer(self.held_open_s, self.check)


class GateIO:
    """The gate's GPIO devices from one configuration mapping (a TOML ``[gpio]`` table):

    ``pin_factory``; ``illuminator_pin`` (+ ``illuminator_active_high``,
    ``illuminator_max_on_s``); ``strobe_pin`` (+ ``strobe_active_high``); ``door_pin`` (+
    ``door_closed_when_active``, ``door_pull_up``, ``held_open_s``, ``grant_window_s``);
    ``exit_pin`` (+ ``exit_pull_up``); ``relay_pin`` (+ ``relay_active_high``) for a GPIO relay.
    Every pin is optional; an unknown key is a ``HardwareConfigError`` naming it. With a door
    pin the door sensor drives a :class:`DoorMonitor`; the exit button grants an exit."""

    KEYS = {"pin_factory", "illuminator_pin", "illuminator_active_high", "illuminator_max_on_s",
            "strobe_pin", "strobe_active_high", "door_pin", "door_closed_when_active",
            "door_pull_up", "held_open_s", "grant_window_s", "exit_pin", "exit_pull_up",
            "relay_pin", "relay_active_high", "bounce_s", "enabled"}

    def __init__(self, config: dict | None = None, *, pin_factory=None,
                 on_door_event: Callable[[dict], None] | None = None,
                 on_exit: Callable[[], None] | None = None,
                 monitor_timers: bool = True):
        cfg = dict(config or {})
        bad = sorted(set(cfg) - self.KEYS)
        if bad:
            raise HardwareConfigError(f"unknown gpio option(s) {', '.join(bad)}; known: "
                                      f"{', '.join(sorted(self.KEYS))}")
        self.illuminator = self.strobe = self.relay = None
        self.door = self.exit_button = self.monitor = None
        self.on_exit = on_exit
        # a failure names the [gpio] key of the device (the gate's TOML uses these names)
        if any(cfg.get(k) is not None for k in self.KEYS if k.endswith("_pin")):
            try:
                _gpiozero()
            except HardwareConfigError as e:
                raise HardwareConfigError(f"gpio.enabled: {e}") from e
        key = "pin_factory"
        try:
            pf = make_pin_factory(pin_factory if pin_factory is not None
                                  else cfg.get("pin_factory"))
        except HardwareConfigError as e:
            raise HardwareConfigError(f"gpio.{key}: {e}") from e
        self.pin_factory = pf
        bounce = cfg.get("bounce_s", 0.05) or None          # 0: no debounce
        try:
            if cfg.get("illuminator_pin") is not None:
                key = "illuminator_pin"
                self.illuminator = Illuminator(
                    cfg["illuminator_pin"], pin_factory=pf,
                    active_high=cfg.get("illuminator_active_high", True),
                    max_on_s=cfg.get("illuminator_max_on_s", 2.0))
            if cfg.get("strobe_pin") is not None:
                key = "strobe_pin"
                self.strobe = Strobe(cfg["strobe_pin"], pin_factory=pf, max_on_s=5.0,
                                     active_high=cfg.get("strobe_active_high", True))
            if cfg.get("relay_pin") is not None:
                key = "relay_pin"
                self.relay = GpioRelay(cfg["relay_pin"], pin_factory=pf,
                                       active_high=cfg.get("relay_active_high", True))
            if cfg.get("door_pin") is not None:
                key = "door_pin"
                self.monitor = DoorMonitor(cfg.get("held_open_s", 10.0),
                                           cfg.get("grant_window_s", 5.0),
                                           on_event=on_door_event, timers=monitor_timers)
                self.door = DoorSensor(cfg["door_pin"], pin_factory=pf, bounce_s=bounce,
                                       closed_when_active=cfg.get("door_closed_when_active",
                                                                  True),
                                       pull_up=cfg.get("door_pull_up", True),
                                       on_open=self.monitor.opened,
                                       on_close=self.monitor.closed)
                if self.door.is_open:            # open already at start: nobody granted it
                    self.monitor.opened()
            if cfg.get("exit_pin") is not None:
                key = "exit_pin"
                self.exit_button = ExitButton(cfg["exit_pin"], pin_factory=pf, bounce_s=bounce,
                                              pull_up=cfg.get("exit_pull_up", True),
                                              on_press=self._exit_pressed)
        except HardwareConfigError as e:
            self.close()
            raise HardwareConfigError(f"gpio.{key}: {e}") from e
        except BaseException:
            self.close()
            raise

    @contextmanager
    def lit(self):
        """Illuminator and strobe on for a burst capture, off after it (whatever happens)."""
        lit = []
        try:
            for dev in (self.illuminator, self.strobe):
                if dev is not None:
                    try:
                        dev.on()
                        lit.append(dev)
                    except Exception as e:      # a light that fails never stops the capture
                        log.error("GPIO %s did not switch on: %s", dev.role, e,
                                  extra={"event": "gpio_error", "device": dev.role})
            yield self
        finally:
            for dev in lit:
                try:
                    dev.off()
                except Exception as e:
                    log.error("GPIO %s did not switch off: %s", dev.role, e,
                              extra={"event": "gpio_error", "device": dev.role})

    def outputs_off(self) -> None:
        """Every GPIO output off (illuminator, strobe, GPIO relay)."""
        for dev in (self.illuminator, self.strobe, self.relay):
            if dev is not None:
                dev.off()

    def _exit_pressed(self) -> None:
        if self.monitor is not None:
            self.monitor.grant("exit_button")
        if self.on_exit is not None:
            self.on_exit()

    def granted(self, source: str = "access") -> None:
        """Tell the door monitor that the relay was pulsed for a person."""
        if self.monitor is not None:
            self.monitor.grant(source)

    def close(self) -> None:
        for dev in (self.illuminator, self.strobe, self.relay, self.door, self.exit_button):
            if dev is not None:
                try:
                    dev.close()
                except Exception as e:
                    log.warning("closing GPIO %s: %s", getattr(dev, "role", dev), e)
        if self.monitor is not None:
            self.monitor.close()

    def describe(self) -> dict:
        d: dict[str, Any] = {}
        for name in ("illuminator", "strobe", "relay"):
            dev = getattr(self, name)
            d[name] = None if dev is None else dev.describe()
        d["door"] = None if self.monitor is None else self.monitor.status()
        d["exit_button"] = None if self.exit_button is None else {"pin": str(
            self.exit_button.pin), "pressed": self.exit_button.active}
        return d
