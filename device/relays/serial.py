"""Turnstile relays over a serial line, behind one small protocol.

``on(channel)``, ``off(channel)``, ``pulse(channel, ms)``, ``close()``. Channels count from 1.
Both drivers are fail-secure: every channel is switched off when the driver opens and when it
closes, and a pulse is ended by the driver's own timer, not by the caller.

- ``LcusRelay``: LCUS-style USB relay boards (CH340 + MCU), frame ``A0 ch state sum`` with
  ``sum = (0xA0 + ch + state) & 0xFF``. These boards never acknowledge a frame.
- ``ModbusRelay``: Modbus RTU relay boards, function 05 (write single coil); the echoed response
  is checked, and a line that stops answering raises ``RelayLineError``, a board that answers
  with an exception ``RelayRefused`` (both ``RelayError``, device/errors.py). With
  ``board_pulse=True`` a pulse is sent as the board's own timed "flash on" command (Waveshare-
  style: function 05 at ``flash_base + coil``, the value the time in 100 ms units), so a host
  that dies mid-pulse cannot leave the coil on (docs/relays.md).

A driver never reopens its port: :class:`device.relays.supervisor.RelaySupervisor` does, after
any failed command, and drives every channel off as soon as the line answers.
"""
from __future__ import annotations

import logging
import threading
from typing import Protocol, runtime_checkable

import serial

from device.errors import RelayError, RelayLineError, RelayRefused

log = logging.getLogger(__name__)

MAX_PULSE_MS = 60_000
try:                                    # a vanished tty fails tcflush with termios.error,
    import termios                      # which is not an OSError
    LINE_ERRORS: tuple = (serial.SerialException, OSError, termios.error)
except ImportError:                     # pragma: no cover - Windows
    LINE_ERRORS = (serial.SerialException, OSError)
__all__ = ["Relay", "RelayError", "RelayLineError", "RelayRefused", "LcusRelay", "ModbusRelay",
           "open_relay", "parse_lcus_frames", "lcus_frame", "crc16_modbus",
           "modbus_write_coil_frame", "modbus_read_coils_frame", "modbus_flash_frame"]


@runtime_checkable
class Relay(Protocol):
    def on(self, channel: int) -> None: ...

    def off(self, channel: int) -> None: ...

    def pulse(self, channel: int, ms: int) -> None: ...

    def close(self) -> None: ...


def crc16_modbus(data: bytes) -> int:
    """CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF); sent low byte first."""
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def lcus_frame(channel: int, state: bool) -> bytes:
    s = 1 if state else 0
    return bytes([0xA0, channel, s, (0xA0 + channel + s) & 0xFF])


def parse_lcus_frames(buf: bytes) -> tuple[list[bytes], list[bytes], bytes]:
    """Split a byte stream into LCUS frames ``A0 ch state sum`` as a board reads it: (valid
    frames, rejected bytes/frames -- a stray byte before a header, a bad checksum or state --,
    the incomplete tail to keep for the next read)."""
    frames, bad = [], []
    while len(buf) >= 4:
        if buf[0] != 0xA0:
            bad.append(buf[:1])
            buf = buf[1:]
            continue
        f, buf = buf[:4], buf[4:]
        if (f[0] + f[1] + f[2]) & 0xFF != f[3] or f[2] not in (0, 1):
            bad.append(f)
        else:
            frames.append(f)
    return frames, bad, buf


def modbus_write_coil_frame(unit: int, coil: int, state: bool) -> bytes:
    pdu = bytes([unit, 0x05, coil >> 8, coil & 0xFF, 0xFF if state else 0x00, 0x00])
    crc = crc16_modbus(pdu)
    return pdu + bytes([crc & 0xFF, crc >> 8])


def modbus_flash_frame(unit: int, address: int, units: int) -> bytes:
    """A vendor "flash on" command: function 05 at ``address`` whose value field is the time
    the board keeps the coil on, in 100 ms units (Waveshare Modbus RTU Relay: address
    0x0200 + relay index; the board switches the coil off by itself when the time is up)."""
    if not 1 <= units <= 0xFFFF:
        raise ValueError(f"flash time {units} x 100 ms outside 1..65535")
    pdu = bytes([unit, 0x05, address >> 8, address & 0xFF, units >> 8, units & 0xFF])
    crc = crc16_modbus(pdu)
    return pdu + bytes([crc & 0xFF, crc >> 8])


def modbus_read_coils_frame(unit: int, coil: int, count: int = 1) -> bytes:
    pdu = bytes([unit, 0x01, coil >> 8, coil & 0xFF, count >> 8, count & 0xFF])
    crc = crc16_modbus(pdu)
    return pdu + bytes([crc & 0xFF, crc >> 8])


class _SerialRelay:
    """Shared plumbing: port ownership, a lock for the line, pulse timers, fail-secure open/close."""

    def __init__(self, port: str | serial.SerialBase, baudrate: int, channels: int,
                 timeout: float):
        if channels < 1:
            raise ValueError("a relay board has at least one channel")
        self.channels = channels
        self._lock = threading.RLock()
        self._timers: dict[int, threading.Timer] = {}
        self.errors: list[BaseException] = []     # failures inside pulse timers, newest last
        self.states: dict[int, bool] = {}         # last state each channel was switched to
        # on_error(exc): called from a pulse timer whose "off" failed (nobody else would hear
        # of it); the supervisor sets it to start reconnecting at once. Must not block.
        self.on_error = None
        if isinstance(port, str):
            try:
                self._ser = serial.serial_for_url(port, baudrate=baudrate, timeout=timeout,
                                                  write_timeout=timeout)
            except LINE_ERRORS as e:
                raise RelayLineError(f"cannot open relay port {port}: {e}") from e
        else:
            self._ser = port
        self.port = getattr(self._ser, "port", None) or str(port)
        self._closed = False
        try:
            self.all_off()
        except BaseException:
            self._ser.close()
            raise

    # -- the protocol ---------------------------------------------------------------------
    def on(self, channel: int) -> None:
        self._set(self._check(channel), True)

    def off(self, channel: int) -> None:
        ch = self._check(channel)
        self._cancel_timer(ch)
        self._set(ch, False)

    def pulse(self, channel: int, ms: int) -> None:
        """Switch ``channel`` on now and off after ``ms`` milliseconds, by the driver's timer.
        A new pulse on the same channel restarts the timer."""
        ch = self._check(channel)
        if not 0 < ms <= MAX_PULSE_MS:
            raise ValueError(f"pulse length {ms} ms outside (0, {MAX_PULSE_MS}]")
        with self._lock:
            self._cancel_timer(ch)
            self._set(ch, True)
            t = threading.Timer(ms / 1000.0, self._end_pulse, args=(ch,))
            t.daemon = True
            self._timers[ch] = t
            t.start()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            for ch in list(self._timers):
                self._cancel_timer(ch)
            try:
                self.all_off()
            finally:
                self._closed = True
                self._ser.close()

    def abandon(self) -> None:
        """Close the port without sending anything (a line known to be dead: the off frames
        would only wait out their timeouts); pulse timers are cancelled."""
        with self._lock:
            for ch in list(self._timers):
                self._cancel_timer(ch)
            self._closed = True
            try:
                self._ser.close()
            except Exception:       # noqa: BLE001 - a vanished device may fail to close
                pass

    # -- helpers --------------------------------------------------------------------------
    def all_off(self) -> None:
        for ch in range(1, self.channels + 1):
            self._set(ch, False)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check(self, channel: int) -> int:
        if not 1 <= int(channel) <= self.channels:
            raise ValueError(f"relay channel {channel} outside 1..{self.channels}")
        return int(channel)

    def _cancel_timer(self, ch: int) -> None:
        with self._lock:
            t = self._timers.pop(ch, None)
        if t is not None:
            t.cancel()

    def _end_pulse(self, ch: int) -> None:
        with self._lock:
            if self._timers.get(ch) is not threading.current_thread():
                return                            # cancelled or superseded by a newer pulse
            del self._timers[ch]
            if self._closed:
                return
            try:
                self._set(ch, False)
            except Exception as e:                # nobody to raise to: keep it and log it
                self.errors.append(e)
                log.error("relay %s: could not end pulse on channel %d: %s", self.port, ch, e)
                if self.on_error is not None:
                    try:
                        self.on_error(e)
                    except Exception:   # noqa: BLE001
                        log.exception("relay on_error callback failed")

    def _set(self, ch: int, state: bool) -> None:
        with self._lock:
            if self._closed:
                raise RelayError(f"relay on {self.port} is closed")
            try:
                self._transact(ch, state)
            except LINE_ERRORS as e:
                raise RelayLineError(f"relay line {self.port} failed: {e}") from e
            self.states[ch] = state

    def _transact(self, ch: int, state: bool) -> None:
        raise NotImplementedError


class LcusRelay(_SerialRelay):
    """LCUS-style USB relay (1, 2, 4 or 8 channels, 9600 baud). No acknowledgement exists, so a
    write that the port accepted is all the driver can know."""

    def __init__(self, port: str | serial.SerialBase, channels: int = 1, baudrate: int = 9600,
                 timeout: float = 1.0):
        super().__init__(port, baudrate, channels, timeout)

    def _transact(self, ch: int, state: bool) -> None:
        self._ser.write(lcus_frame(ch, state))
        self._ser.flush()


class ModbusRelay(_SerialRelay):
    """Modbus RTU relay board: channel ``n`` is coil ``coil_base + n - 1`` of ``unit``.

    Each switch is a function-05 request whose echo is checked byte for byte; an exception
    response raises ``RelayRefused``, a bad CRC or silence (``timeout`` seconds, after
    ``retries`` repeats) ``RelayLineError``.

    ``board_pulse``: ``pulse()`` sends the board's timed "flash on" command (function 05 at
    ``flash_base + coil``, the time in 100 ms units, rounded up) instead of a plain "on": the
    board ends the pulse by itself even if this process is killed. The driver's timer still
    sends the "off" after ``ms`` as well, so a healthy gate keeps the exact pulse length.
    A board without the function answers with an exception (``RelayRefused``).
    """

    def __init__(self, port: str | serial.SerialBase, unit: int = 1, channels: int = 1,
                 coil_base: int = 0, baudrate: int = 9600, timeout: float = 0.5,
                 retries: int = 1, board_pulse: bool = False, flash_base: int = 0x0200):
        if not 1 <= unit <= 247:
            raise ValueError(f"Modbus unit id {unit} outside 1..247")
        self.unit, self.coil_base, self.retries, self.timeout = unit, coil_base, retries, timeout
        self.board_pulse, self.flash_base = bool(board_pulse), int(flash_base)
        super().__init__(port, baudrate, channels, timeout)

    def pulse(self, channel: int, ms: int) -> None:
        if not self.board_pulse:
            return super().pulse(channel, ms)
        ch = self._check(channel)
        with self._lock:
            self.flash(ch, ms)
            t = threading.Timer(ms / 1000.0, self._end_pulse, args=(ch,))
            t.daemon = True
            self._timers[ch] = t
            t.start()

    def flash(self, channel: int, ms: int) -> None:
        """Only the board's timed "flash on" (no timer here: the board alone ends it after
        ``ms`` rounded up to 100 ms). ``RelayRefused`` from a board without the function."""
        ch = self._check(channel)
        if not 0 < ms <= MAX_PULSE_MS:
            raise ValueError(f"pulse length {ms} ms outside (0, {MAX_PULSE_MS}]")
        units = -(-int(ms) // 100)                  # never shorter than asked
        req = modbus_flash_frame(self.unit, self.flash_base + self.coil_base + ch - 1, units)
        with self._lock:
            self._cancel_timer(ch)
            if self._closed:
                raise RelayError(f"relay on {self.port} is closed")
            try:
                self._write_checked(req, f"flash coil {self.coil_base + ch - 1}")
            except LINE_ERRORS as e:
                raise RelayLineError(f"relay line {self.port} failed: {e}") from e
            self.states[ch] = True

    def _transact(self, ch: int, state: bool) -> None:
        self._write_checked(modbus_write_coil_frame(self.unit, self.coil_base + ch - 1, state),
                            f"coil {self.coil_base + ch - 1}")

    def _write_checked(self, req: bytes, what: str) -> None:
        """Send a function-05 request and wait for its echo (``retries`` repeats)."""
        last = ""
        for _ in range(self.retries + 1):
            self._ser.reset_input_buffer()
            self._ser.write(req)
            self._ser.flush()
            resp = self._ser.read(5)       # an exception response is 5 bytes, the echo 8
            if len(resp) == 5 and resp[0] == self.unit and resp[1] == 0x85:
                if crc16_modbus(resp[:3]) == resp[3] | resp[4] << 8:
                    raise RelayRefused(f"Modbus unit {self.unit} on {self.port} refused "
                                       f"{what}: exception code {resp[2]}")
            elif len(resp) == 5:
                resp += self._ser.read(3)
            if resp == req:
                return
            last = (f"no answer within {self.timeout} s" if not resp
                    else f"bad answer {resp.hex(' ')} to {req.hex(' ')}")
        raise RelayLineError(f"Modbus unit {self.unit} on {self.port}: {last} "
                             f"({self.retries + 1} tries)")

    def read(self, channel: int) -> bool:
        """Read the channel's coil back from the board (function 01): the state the board
        reports, not the one last sent. ``RelayError`` on silence or a wrong answer."""
        ch = self._check(channel)
        coil = self.coil_base + ch - 1
        req = modbus_read_coils_frame(self.unit, coil)
        last = ""
        with self._lock:
            if self._closed:
                raise RelayError(f"relay on {self.port} is closed")
            for _ in range(self.retries + 1):
                try:
                    self._ser.reset_input_buffer()
                    self._ser.write(req)
                    self._ser.flush()
                    resp = self._ser.read(5)
                    if len(resp) == 5 and resp[0] == self.unit and resp[1] == 0x81:
                        if crc16_modbus(resp[:3]) == resp[3] | resp[4] << 8:
                            raise RelayRefused(f"Modbus unit {self.unit} on {self.port} "
                                               f"refused to read coil {coil}: exception code "
                                               f"{resp[2]}")
                    elif len(resp) == 5:
                        resp += self._ser.read(1)
                except LINE_ERRORS as e:
                    raise RelayLineError(f"relay line {self.port} failed: {e}") from e
                if (len(resp) == 6 and resp[:3] == bytes([self.unit, 0x01, 1])
                        and crc16_modbus(resp[:4]) == resp[4] | resp[5] << 8):
                    return bool(resp[3] & 1)
                last = (f"no answer within {self.timeout} s" if not resp
                        else f"bad answer {resp.hex(' ')} to {req.hex(' ')}")
        raise RelayLineError(f"Modbus unit {self.unit} on {self.port}: read coil {coil}: "
                             f"{last} ({self.retries + 1} tries)")


def open_relay(protocol: str, port: str, **kw) -> Relay:
    """``open_relay('lcus'|'modbus', '/dev/ttyUSB0', ...)``."""
    if protocol == "lcus":
        return LcusRelay(port, **kw)
    if protocol == "modbus":
        return ModbusRelay(port, **kw)
    raise ValueError(f"unknown relay protocol {protocol!r} (lcus or modbus)")
