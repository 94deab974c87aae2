"""Relays for the gate: the real drivers (device/relays/serial.py) and simulators for the demo.

- :class:`LcusBoardSim` -- a byte-exact LCUS board on the far end of a pseudo-terminal pair
  made with ``os.openpty()`` (no socat needed): the gate drives it through the real
  :class:`device.relays.serial.LcusRelay` over a real serial line and the simulator records every
  frame it receives and the resulting relay state.
- :class:`MemoryRelay` -- the Relay protocol in memory (when no pty is available).

``open_gate_relay(cfg)`` opens what ``[relay]`` names; ``sim`` is an LCUS board simulator on a
pty where the OS has them, else :class:`MemoryRelay`.
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


def open_gate_relay(cfg):
    """(relay, simulator or None) for the ``[relay]`` section."""
    from device.relays.serial import open_relay
    r = cfg.relay
    if r.kind == "sim":
        try:
            sim = LcusBoardSim()
        except (OSError, ImportError, AttributeError):   # no ptys (Windows, sandbox)
            return MemoryRelay(r.channels), None
        try:
            return open_relay("lcus", sim.port, channels=r.channels, baudrate=r.baudrate), sim
        except Exception:
            sim.close()
            raise
    kw = {"channels": r.channels, "baudrate": r.baudrate}
    if r.kind == "modbus":
        kw.update(unit=r.unit, timeout=r.timeout_s)
    return open_relay(r.kind, r.port, **kw), None
