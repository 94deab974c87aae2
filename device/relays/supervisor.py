"""A relay whose line comes back: the Relay protocol over a driver that the supervisor reopens.

``RelaySupervisor(opener, channels)`` holds the driver ``opener()`` returns (a serial driver
switches every channel off when it opens). After any command fails on the line
(``RelayLineError``: silence, a dead port, a pulse whose "off" did not go through) it drops the
driver without sending anything and reopens the line on a timer, ``backoff_s[0]`` doubling to
``backoff_s[1]``; the reopen drives every channel off before anything else is sent, so a coil a
cut line left on ends as soon as the line answers. A command that arrives while the line is down
tries one reopen at once (and a command that fails on a stale handle is retried once on a
reopened line): the first presentation after the line returns works.

A board that answers "no" (``RelayRefused``: a Modbus exception) is not a line fault: the error
goes to the caller and nothing is reopened.

``on_event(kind, info)`` hears ``relay_fault`` (``info``: error, what) and ``relay_recovered``
(``info``: down_s, attempts) from whichever thread saw it (the gate posts them to its loop, which
writes the audit records); both are logged here as well. Relays know nothing of biometrics.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Callable

from device.errors import RelayError, RelayLineError

log = logging.getLogger(__name__)

DEFAULT_BACKOFF_S = (0.5, 2.0)


class RelaySupervisor:
    def __init__(self, opener: Callable[[], object], channels: int, *, port: str | None = None,
                 backoff_s: tuple[float, float] = DEFAULT_BACKOFF_S,
                 on_event: Callable[[str, dict], None] | None = None,
                 driver_name: str | None = None,
                 clock: Callable[[], float] = time.monotonic):
        if not 0 < backoff_s[0] <= backoff_s[1]:
            raise ValueError(f"reconnect back-off {backoff_s} must be 0 < first <= last")
        self._opener = opener
        self.channels = int(channels)
        self.port = port
        self.backoff_s = (float(backoff_s[0]), float(backoff_s[1]))
        self.on_event = on_event
        self.clock = clock
        self.errors: deque = deque(maxlen=20)     # RelayErrors seen, newest last
        self.faults = 0                           # times the line was lost
        self.recoveries = 0                       # times it came back
        self.fault: str | None = None             # the current fault; None while the line is up
        self._fault_since: float | None = None
        self._attempts = 0                        # reopen tries in the current fault
        self._driver = None
        self.driver_name: str | None = driver_name
        self._lock = threading.RLock()            # one command or reopen at a time
        self._wake = threading.Condition(threading.Lock())
        self._timer_errors: list = []             # from the driver's pulse timers (on_error)
        self._closed = False
        self._thread: threading.Thread | None = None
        try:
            self._reopen()
        except RelayLineError as e:
            self._lost(e, "open")                 # the timer keeps trying from here

    # -- the Relay protocol ---------------------------------------------------------------
    def on(self, channel: int) -> None:
        self._command("on", lambda d: d.on(channel))

    def off(self, channel: int) -> None:
        self._command("off", lambda d: d.off(channel))

    def pulse(self, channel: int, ms: int) -> None:
        self._command("pulse", lambda d: d.pulse(channel, ms))

    def all_off(self) -> None:
        self._command("all_off", lambda d: d.all_off())

    def read(self, channel: int) -> bool:
        def rd(d):
            if not hasattr(d, "read"):
                raise RelayError(f"{type(d).__name__} cannot read its channels back")
            return d.read(channel)
        return self._command("read", rd)

    def close(self) -> None:
        """Every channel off and the port closed; while the line is down, one last reopen is
        tried for the off (``RelayError`` if it fails: the caller logs it)."""
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        t, self._thread = self._thread, None
        if t is not None and t is not threading.current_thread():
            t.join(5.0)
        with self._lock:
            d, self._driver = self._driver, None
            if d is None:
                d = self._opener()                # sends every channel off
            d.close()                             # and again

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- state ----------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._driver is not None

    @property
    def driver(self):
        return self._driver

    @property
    def states(self) -> dict:
        d = self._driver
        return dict(getattr(d, "states", {}) or {}) if d is not None else {}

    @property
    def closed(self) -> bool:
        return self._closed

    def describe(self) -> dict:
        d = self._driver
        return {"driver": self.driver_name, "port": self.port,
                "channels": self.channels, "connected": d is not None, "fault": self.fault,
                "down_s": None if self._fault_since is None
                else round(self.clock() - self._fault_since, 3),
                "faults": self.faults, "recoveries": self.recoveries,
                "reconnect_attempts": self._attempts}

    # -- inside ---------------------------------------------------------------------------
    def _command(self, what: str, fn):
        with self._lock:
            if self._closed:
                raise RelayError(f"relay on {self.port} is closed")
            self._take_timer_errors()
            fresh = self._driver is None
            if fresh:
                self._reopen()                    # RelayLineError: still down
            try:
                return fn(self._driver)
            except RelayLineError as e:
                self._lost(e, what)
                if fresh:
                    raise
            self._reopen()                        # a stale handle after the line came back
            try:
                return fn(self._driver)
            except RelayLineError as e:
                self._lost(e, what)
                raise

    def _reopen(self) -> None:
        """Open the line (the driver switches every channel off first); under the lock."""
        with self._lock:
            if self._driver is not None:
                return
            self._attempts += 1
            try:
                d = self._opener()
            except RelayLineError as e:
                self.errors.append(e)
                raise
            d.on_error = lambda err, d=d: self._timer_error(d, err)
            self._driver = d
            self.driver_name = type(d).__name__
            if self.fault is not None:
                down = self.clock() - self._fault_since
                info = {"down_s": round(down, 3), "attempts": self._attempts,
                        "fault": self.fault}
                self.recoveries += 1
                self.fault, self._fault_since = None, None
                log.warning("relay line %s back after %.1f s (%d tries): every channel "
                            "switched off", self.port, down, info["attempts"],
                            extra={"event": "relay_recovered", **info})
                self._emit("relay_recovered", info)
            self._attempts = 0

    def _lost(self, err: BaseException, what: str) -> None:
        """The line failed: drop the driver silently and let the timer reopen it."""
        with self._lock:
            self.errors.append(err)
            d, self._driver = self._driver, None
            if d is not None:
                d.on_error = None
                if hasattr(d, "abandon"):
                    d.abandon()                   # no off frames into a dead line
            first = self.fault is None
            if first:
                self.faults += 1
                self.fault = f"{what}: {err}"[:200]
                self._fault_since = self.clock()
                self._attempts = 0
        if first:
            log.error("relay line %s lost (%s failed: %s): reconnecting, every channel off as "
                      "soon as it answers", self.port, what, err,
                      extra={"event": "relay_fault", "what": what})
            self._emit("relay_fault", {"error": f"{type(err).__name__}: {err}"[:200],
                                       "what": what})
        self._start_thread()

    def _timer_error(self, driver, err: BaseException) -> None:
        """A driver's pulse timer could not send its "off" (called with the driver's lock
        held: only note it and wake the supervisor thread)."""
        if isinstance(err, RelayLineError):
            with self._wake:
                self._timer_errors.append((driver, err))
            self._start_thread()

    def _take_timer_errors(self) -> None:
        with self._wake:
            errs, self._timer_errors = self._timer_errors, []
        errs = [e for d, e in errs if d is self._driver]    # not an abandoned driver's
        if errs and self._driver is not None:
            self._lost(errs[-1], "pulse end")

    def _emit(self, kind: str, info: dict) -> None:
        if self.on_event is not None:
            try:
                self.on_event(kind, dict(info))
            except Exception:       # noqa: BLE001 - never stops the relay
                log.exception("relay %s callback failed", kind)

    def _start_thread(self) -> None:
        """Start the reconnect thread (once) and wake it."""
        with self._wake:
            if self._closed:
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="relay-supervisor",
                                                daemon=True)
                self._thread.start()
            self._wake.notify_all()

    def _run(self) -> None:
        """Sleep while the line is up; while it is down, reopen it every ``delay`` seconds
        (``backoff_s[0]`` doubling to ``backoff_s[1]``)."""
        delay = self.backoff_s[0]
        while True:
            with self._wake:
                if self._closed:
                    return
                if self._timer_errors:
                    pass                          # a pulse end failed: handle it now
                elif self._driver is not None:
                    delay = self.backoff_s[0]
                    self._wake.wait(60.0)         # healthy: until woken by a fault
                    continue
                else:
                    self._wake.wait(delay)
                    if self._closed:
                        return
            with self._lock:
                self._take_timer_errors()
                if self._driver is not None or self._closed:
                    continue
                try:
                    self._reopen()
                except RelayLineError as e:
                    delay = min(self.backoff_s[0] * 2 ** max(0, self._attempts - 1),
                                self.backoff_s[1])
                    if self._attempts % 30 == 0:
                        log.error("relay line %s still down after %d tries: %s", self.port,
                                  self._attempts, e, extra={"event": "relay_down"})
                except Exception as e:  # noqa: BLE001 - keep trying whatever the opener says
                    delay = self.backoff_s[1]
                    self.errors.append(e)
                    log.error("relay line %s: reopen failed: %s", self.port, e)
