"""Relays for the gate: the real drivers (device/relays/serial.py) and simulators for the demo.

- :class:`LcusBoardSim` -- a byte-exact LCUS board on the far end of a pseudo-terminal pair
  made with ``os.openpty()`` (no socat needed): the gate drives it through the real
  :class:`device.relays.serial.LcusRelay` over a real serial line and the simulator records every
  frame it receives and the resulting relay state.
- :class:`MemoryRelay` -- the Relay protocol in memory (when no pty is available).

``open_gate_relay(cfg)`` opens what ``[relay]`` names under a
:class:`device.relays.supervisor.RelaySupervisor` (a lost line is reopened, every channel off as
soon as it answers); ``sim`` is an LCUS board simulator on a pty where the OS has them, else
:class:`MemoryRelay`.
"""
from __future__ import annotations

import os
import threading
import time

from device.relays.serial import parse_lcus_frames


class MemoryRelay:
    """The relay protocol, recorded in memory (``events``: (monotonic, channel, state))."""

    def __init__(self, channels: int = 1):
        self.channels = channels
        self.events: list = []
        self.state = {c: False for c in range(1, channels + 1)}
        self._timers: dict = {}
        self._lock = threading.Lock()
        self.port = "memory"

    def _set(self, ch, on):
        with self._lock:
            self.state[ch] = on
            self.events.append((time.monotonic(), ch, on))

    def on(self, channel):
        self._set(channel, True)

    def off(self, channel):
        t = self._timers.pop(channel, None)
        if t:
            t.cancel()
        self._set(channel, False)

    def pulse(self, channel, ms):
        self.off(channel)
        self._set(channel, True)
        t = threading.Timer(ms / 1000.0, self._set, args=(channel, False))
        t.daemon = True
        self._timers[channel] = t
        t.start()

    def close(self):
        for c in list(self._timers):
            self.off(c)
        for c in self.state:
            self._set(c, False)


class LcusBoardSim(threading.Thread):
    """A simulated LCUS relay board behind a pty; ``port`` is the path the gate opens."""

    def __init__(self):
        super().__init__(daemon=True, name="lcus-sim")
        import tty
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.port = os.ttyname(slave)
        self._slave = slave                    # kept open so the line stays up
        self.frames: list = []                 # (monotonic, bytes)
        self.state: dict = {}
        self.bad: list = []
        self._halt = threading.Event()
        self.start()

    def run(self):
        import select
        buf = b""
        while not self._halt.is_set():
            r, _, _ = select.select([self.master], [], [], 0.05)
            if not r:
                continue
            try:
                buf += os.read(self.master, 64)
            except OSError:
                break
            frames, bad, buf = parse_lcus_frames(buf)
            self.bad += bad
            for f in frames:
                self.frames.append((time.monotonic(), f))
                self.state[f[1]] = bool(f[2])

    def pulses(self, channel: int = 1) -> int:
        """Number of off->on transitions seen on ``channel``."""
        n, on = 0, False
        for _, f in self.frames:
            if f[1] == channel:
                if f[2] and not on:
                    n += 1
                on = bool(f[2])
        return n

    def close(self):
        self._halt.set()
        self.join(1)
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


def relay_opener(cfg, port: str | None = None):
    """A function that opens the driver ``[relay]`` names (every channel switched off as it
    opens); ``port`` overrides ``relay.port`` (the simulator's pty). ``sim`` opens an LCUS
    driver. Used by the gate (through :class:`RelaySupervisor`) and by ``palmgate relay-off``."""
    from device.relays.serial import open_relay
    r = cfg.relay
    kw = {"channels": r.channels, "baudrate": r.baudrate}
    if r.kind == "modbus":
        kw.update(unit=r.unit, timeout=r.timeout_s, board_pulse=r.board_pulse,
                  flash_base=r.flash_base)
    protocol = "lcus" if r.kind == "sim" else r.kind
    port = port or r.port
    return lambda: open_relay(protocol, port, **kw)


def open_gate_relay(cfg, on_event=None):
    """(relay, simulator or None) for the ``[relay]`` section: the driver under a
    :class:`RelaySupervisor`, which reopens a lost line and switches every channel off as soon
    as it answers (``on_event(kind, info)``: ``relay_fault`` / ``relay_recovered``). A line
    that is down at start is not an error here: the supervisor keeps trying."""
    from device.relays.supervisor import RelaySupervisor
    r = cfg.relay
    sim = None
    if r.kind == "sim":
        try:
            sim = LcusBoardSim()
        except (OSError, ImportError, AttributeError):   # no ptys (Windows, sandbox)
            return MemoryRelay(r.channels), None
    port = sim.port if sim is not None else r.port
    try:
        relay = RelaySupervisor(relay_opener(cfg, port), r.channels, port=port,
                                backoff_s=(r.reconnect_min_s, r.reconnect_max_s),
                                on_event=on_event,
                                driver_name="ModbusRelay" if r.kind == "modbus" else "LcusRelay")
    except Exception:
        if sim is not None:
            sim.close()
        raise
    return relay, sim
