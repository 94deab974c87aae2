"""Turnstile relays over a serial line, behind one small protocol.

``on(channel)``, ``off(channel)``, ``pulse(channel, ms)``, ``close()``. Channels count from 1.
Both drivers are fail-secure: every channel is switched off when the driver opens and when it
closes, and a pulse is ended by the driver's own timer, not by the caller.

- ``LcusRelay``: LCUS-style USB relay boards (CH340 + MCU), frame ``A0 ch state sum`` with
  ``sum = (0xA0 + ch + state) & 0xFF``. These boards never acknowledge a frame.
- ``ModbusRelay``: Modbus RTU relay boards, function 05 (write single coil); the echoed response
  is checked, and a line that stops answering raises ``RelayError``.
"""
from __future__ import annotations

import logging
import threading
from typing import Protocol, runtime_checkable

import serial

log = logging.getLogger(__name__)

MAX_PULSE_MS = 60_000


class RelayError(RuntimeError):
    """The relay line failed: no answer, a wrong answer, an exception response, a closed port."""


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
        if isinstance(port, str):
            try:
                self._ser = serial.serial_for_url(port, baudrate=baudrate, timeout=timeout,
                                                  write_timeout=timeout)
            except (serial.SerialException, OSError) as e:
                raise RelayError(f"cannot open relay port {port}: {e}") from e
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

    def _set(self, ch: int, state: bool) -> None:
        with self._lock:
            if self._closed:
                raise RelayError(f"relay on {self.port} is closed")
            try:
                self._transact(ch, state)
            except (serial.SerialException, OSError) as e:
                raise RelayError(f"relay line {self.port} failed: {e}") from e
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
    response, a bad CRC or silence (``timeout`` seconds, after ``retries`` repeats) raises
    ``RelayError``.
    """

    def __init__(self, port: str | serial.SerialBase, unit: int = 1, channels: int = 1,
                 coil_base: int = 0, baudrate: int = 9600, timeout: float = 0.5,
                 retries: int = 1):
        if not 1 <= unit <= 247:
            raise ValueError(f"Modbus unit id {unit} outside 1..247")
        self.unit, self.coil_base, self.retries, self.timeout = unit, coil_base, retries, timeout
        super().__init__(port, baudrate, channels, timeout)

    def _transact(self, ch: int, state: bool) -> None:
        req = modbus_write_coil_frame(self.unit, self.coil_base + ch - 1, state)
        last = ""
        for _ in range(self.retries + 1):
            self._ser.reset_input_buffer()
            self._ser.write(req)
            self._ser.flush()
            resp = self._ser.read(5)       # an exception response is 5 bytes, the echo 8
            if len(resp) == 5 and resp[0] == self.unit and resp[1] == 0x85:
                if crc16_modbus(resp[:3]) == resp[3] | resp[4] << 8:
                    raise RelayError(f"Modbus unit {self.unit} on {self.port} refused coil "
                                     f"{self.coil_base + ch - 1}: exception code {resp[2]}")
            elif len(resp) == 5:
                resp += self._ser.read(3)
            if resp == req:
                return
            last = (f"no answer within {self.timeout} s" if not resp
                    else f"bad answer {resp.hex(' ')} to {req.hex(' ')}")
        raise RelayError(f"Modbus unit {self.unit} on {self.port}: {last} "
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
                            raise RelayError(f"Modbus unit {self.unit} on {self.port} refused "
                                             f"to read coil {coil}: exception code {resp[2]}")
                    elif len(resp) == 5:
                        resp += self._ser.read(1)
                except (serial.SerialException, OSError) as e:
                    raise RelayError(f"relay line {self.port} failed: {e}") from e
                if (len(resp) == 6 and resp[:3] == bytes([self.unit, 0x01, 1])
                        and crc16_modbus(resp[:4]) == resp[4] | resp[5] << 8):
                    return bool(resp[3] & 1)
                last = (f"no answer within {self.timeout} s" if not resp
                        else f"bad answer {resp.hex(' ')} to {req.hex(' ')}")
        raise RelayError(f"Modbus unit {self.unit} on {self.port}: read coil {coil}: {last} "
                         f"({self.retries + 1} tries)")


def open_relay(protocol: str, port: str, **kw) -> Relay:
    """``open_relay('lcus'|'modbus', '/dev/ttyUSB0', ...)``."""
    if protocol == "lcus":
        return LcusRelay(port, **kw)
    if protocol == "modbus":
        return ModbusRelay(port, **kw)
    raise ValueError(f"unknown relay protocol {protocol!r} (lcus or modbus)")
