"""Wiegand on two GPIO lines through gpiozero: the gate as a card reader to an access panel
(:class:`WiegandOutput`) and the gate reading a card reader wired to it (:class:`WiegandInput`).

The lines: DATA0 pulses for a 0 bit, DATA1 for a 1 bit; both idle high and a pulse pulls one
low for ``pulse_us`` (the standard: 20-100 us, 50 typical), a bit every ``interval_us`` (200 us
to 20 ms, 2 ms typical). ``active_low=True`` (default) drives the GPIO low for a pulse, for a
level shifter between the 3V3 GPIO and the panel's 5 V lines; ``False`` drives it high for a
pulse, for an open-collector transistor stage (which inverts). A frame ends with the lines idle
for longer than the interval; the receiver closes a frame after ``gap_ms`` (20 ms, the
standard's longest interval) of silence.

Timing is kept by busy-waiting on ``time.perf_counter_ns`` in the calling thread (a frame of
34 bits at 2 ms takes 68 ms); on a Pi with lgpio a pin write takes a few microseconds, well
inside the standard's window. Nothing here knows a palm or a user: frames in, frames out.
"""
from __future__ import annotations

import logging
import sys
import threading
import time

from device.relays.gpio import _device
from device.relays.keypad import KEY_BITS, decode_key
from device.relays.wiegand_codec import Card, WiegandError, decode, encode

log = logging.getLogger(__name__)

PULSE_US = 50
INTERVAL_US = 2000
MAX_GAP_MS = 20            # the standard's longest bit interval: a longer silence ends a frame


def _wait_until(t_ns: int) -> None:
    while True:
        left = t_ns - time.perf_counter_ns()
        if left <= 0:
            return
        if left > 2_000_000:
            time.sleep((left - 1_000_000) / 1e9)


class WiegandOutput:
    """Send card frames on DATA0/DATA1. ``send(fmt, facility, number)`` encodes and pulses;
    ``send_bits(bits)`` pulses a prepared frame. ``frames`` counts frames sent."""

    def __init__(self, d0_pin, d1_pin, *, pulse_us: int = PULSE_US,
                 interval_us: int = INTERVAL_US, active_low: bool = True, pin_factory=None,
                 frame_timeout_ms: float = MAX_GAP_MS):
        """``frame_timeout_ms``: the silence after which the panel ends a frame (the standard's
        longest bit interval, 20 ms, by default); frames are spaced 5 times that."""
        if not 20 <= pulse_us <= 100:
            raise WiegandError(f"wiegand pulse width {pulse_us} us is outside 20..100 us")
        if not max(200, pulse_us * 2) <= interval_us <= 20000:
            raise WiegandError(f"wiegand bit interval {interval_us} us is outside 200..20000 "
                               f"us (or under twice the pulse)")
        self.pulse_us, self.interval_us = pulse_us, interval_us
        self.frame_timeout_ms = float(frame_timeout_ms)
        kw = dict(active_high=not active_low, initial_value=False)
        self.d0 = _device("wiegand DATA0", "DigitalOutputDevice", d0_pin, pin_factory, **kw)
        try:
            self.d1 = _device("wiegand DATA1", "DigitalOutputDevice", d1_pin, pin_factory, **kw)
        except BaseException:
            self.d0.close()
            raise
        self._lock = threading.Lock()
        self.frames = 0
        self.resends = 0

    def send(self, fmt: str, facility: int, number: int) -> list[int]:
        bits = encode(fmt, facility, number)
        self.send_bits(bits)
        return bits

    def send_bits(self, bits, tries: int = 3) -> int:
        """Pulse one frame; returns the tries it took. A bit that starts more than the
        panel's frame timeout after the previous one -- this thread was held up -- has split
        the frame at the panel, which throws the pieces away (they
        fail length and parity): the whole frame goes again after the frame gap. Raises
        :class:`WiegandError` when no try went through whole."""
        bits = list(bits)
        with self._lock:                      # one frame at a time on the wire
            # other threads of the gate hold the GIL for up to the switch interval (5 ms)
            # at a time: ask for it back sooner while a frame is on the wire
            old = sys.getswitchinterval()
            sys.setswitchinterval(min(old, 0.0005))
            try:
                for attempt in range(1, tries + 1):
                    if self._pulse_frame(bits):
                        self.frames += 1
                        return attempt
                    self.resends += 1
                    log.warning("wiegand output: held up mid-frame, sending it again",
                                extra={"event": "wiegand_resend", "attempt": attempt})
            finally:
                sys.setswitchinterval(old)
        raise WiegandError(f"wiegand output: the frame was held up {tries} times (a "
                           f"loaded CPU?); not sent whole")

    def _pulse_frame(self, bits) -> bool:
        whole = True
        t = prev = time.perf_counter_ns()
        for b in bits:
            line = self.d1 if b else self.d0
            line.on()
            edge = time.perf_counter_ns()
            if edge - prev > self.frame_timeout_ms * 1_000_000:
                whole = False
            prev = edge
            _wait_until(edge + self.pulse_us * 1000)        # pulse width from the edge
            line.off()
            t += self.interval_us * 1000
            _wait_until(t)
        _wait_until(time.perf_counter_ns() + int(self.frame_timeout_ms * 5e6))  # frame ends
        return whole

    def close(self) -> None:
        for d in (getattr(self, "d0", None), getattr(self, "d1", None)):
            if d is not None:
                try:
                    d.off()
                finally:
                    d.close()

    def describe(self) -> dict:
        return {"d0": str(self.d0.pin), "d1": str(self.d1.pin), "pulse_us": self.pulse_us,
                "interval_us": self.interval_us, "frames": self.frames}


class WiegandInput:
    """Read card frames from a reader's DATA0/DATA1 (a pulse = a falling edge with
    ``active_low``). Each complete frame is decoded (parity checked): ``on_card(card)`` for a
    good one, ``on_error(message, bits)`` for a bad one; ``cards`` and ``errors`` keep them.
    With ``on_key``, a 4- or 8-bit frame is a keypad key (``device.relays.keypad``):
    ``on_key(key)`` with ``"0"``-``"9"``, ``"*"`` or ``"#"``."""

    def __init__(self, d0_pin, d1_pin, *, on_card=None, on_error=None, on_key=None,
                 gap_ms: float = MAX_GAP_MS,
                 active_low: bool = True, pin_factory=None, pull_up: bool | None = None):
        self.on_card, self.on_error, self.on_key = on_card, on_error, on_key
        self.keys = 0
        self.gap_s = gap_ms / 1000.0
        kw = dict(pull_up=active_low if pull_up is None else pull_up, bounce_time=None)
        self.d0 = _device("wiegand input DATA0", "DigitalInputDevice", d0_pin, pin_factory, **kw)
        try:
            self.d1 = _device("wiegand input DATA1", "DigitalInputDevice", d1_pin, pin_factory,
                              **kw)
        except BaseException:
            self.d0.close()
            raise
        self._bits: list[int] = []
        self._last = 0.0
        self._lock = threading.Lock()
        self.cards: list[Card] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self.d0.when_activated = lambda: self._bit(0)
        self.d1.when_activated = lambda: self._bit(1)
        self._thread = threading.Thread(target=self._watch, name="wiegand-in", daemon=True)
        self._thread.start()

    def _bit(self, b: int) -> None:
        now = time.monotonic()
        with self._lock:
            split = bool(self._bits) and now - self._last > self.gap_s
        if split:                            # a silence longer than the gap ended a frame
            self.flush()
        with self._lock:
            self._bits.append(b)
            self._last = now

    def _watch(self) -> None:
        while not self._stop.wait(min(self.gap_s / 4, 0.005)):
            self.flush(only_if_idle=True)

    def flush(self, only_if_idle: bool = False) -> Card | None:
        """Close the frame in hand (after ``gap_ms`` of silence when ``only_if_idle``)."""
        with self._lock:
            if not self._bits or (only_if_idle and time.monotonic() - self._last < self.gap_s):
                return None
            bits, self._bits = self._bits, []
        if self.on_key is not None and len(bits) in KEY_BITS:
            return self._key(bits)
        try:
            card = decode(bits)
        except WiegandError as e:
            return self._bad(e, bits)
        self.cards.append(card)
        if self.on_card is not None:
            self.on_card(card)
        return card

    def _key(self, bits) -> None:
        try:
            key = decode_key(bits)
        except WiegandError as e:
            return self._bad(e, bits)
        self.keys += 1
        self.on_key(key)
        return None

    def _bad(self, e: Exception, bits) -> None:
        """A frame that does not decode: kept, logged, reported; never a card or a key."""
        self.errors.append(str(e))
        log.warning("wiegand input: %s", e, extra={"event": "wiegand_error", "bits": len(bits)})
        if self.on_error is not None:
            self.on_error(str(e), bits)
        return None

    def wait_cards(self, n: int, timeout: float = 2.0) -> list[Card]:
        """Block until ``n`` frames (good or bad) came in or ``timeout``; the good cards."""
        end = time.monotonic() + timeout
        while len(self.cards) + len(self.errors) < n and time.monotonic() < end:
            time.sleep(0.005)
        return list(self.cards)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1.0)
        for d in (self.d0, self.d1):
            d.close()
