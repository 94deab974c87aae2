"""Relay drivers against real peers on a socat pseudo-terminal pair: a byte-exact LCUS board
simulator, and a pymodbus RTU server (tools/relay_peers.py, shared with tools.relay_faults)."""
import shutil
import threading
import time

import pytest
import serial

from device.relays.serial import (LcusRelay, ModbusRelay, Relay, RelayError, crc16_modbus, lcus_frame,
                          modbus_write_coil_frame, open_relay, parse_lcus_frames)
from tools.relay_peers import ModbusPeer  # noqa: F401 - the Modbus peer of every relay test

needs_socat = pytest.mark.skipif(shutil.which("socat") is None,
                                 reason="socat is not installed (apt-get install socat): the "
                                        "serial peers run on a socat pseudo-terminal pair")


# -- pure frames -------------------------------------------------------------------------------
def test_modbus_coil_frame_and_crc():
    assert modbus_write_coil_frame(1, 0, True) == bytes.fromhex("01 05 00 00 FF 00 8C 3A")
    assert modbus_write_coil_frame(1, 0, False) == bytes.fromhex("01 05 00 00 00 00 CD CA")
    assert crc16_modbus(b"123456789") == 0x4B37          # CRC-16/MODBUS check value


def test_lcus_frame():
    assert lcus_frame(1, True) == bytes.fromhex("A0 01 01 A2")
    assert lcus_frame(1, False) == bytes.fromhex("A0 01 00 A1")
    assert lcus_frame(4, True) == bytes.fromhex("A0 04 01 A5")


def test_modbus_over_loopback_echo_and_protocol():
    # pyserial's loop:// echoes every byte: exactly what a healthy Modbus coil write returns
    r = ModbusRelay("loop://", unit=1, channels=2)
    assert isinstance(r, Relay)
    r.on(2)
    r.close()
    r.close()                                            # idempotent
    with pytest.raises(RelayError, match="closed"):
        r.on(1)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown relay protocol"):
        open_relay("gpio9", "loop://")
    r = LcusRelay("loop://", channels=2)
    with pytest.raises(ValueError, match="channel 3"):
        r.on(3)
    with pytest.raises(ValueError, match="pulse length"):
        r.pulse(1, 0)
    r.close()
    with pytest.raises(RelayError, match="cannot open relay port"):
        LcusRelay("/nonexistent/ttyUSB9")


# -- socat peers -------------------------------------------------------------------------------


class LcusSimulator(threading.Thread):
    """Reads 4-byte frames from the board's end, checks the checksum, keeps relay states."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.ser = serial.Serial(port, 9600, timeout=0.05)
        self.frames: list[tuple[float, bytes]] = []
        self.state: dict[int, bool] = {}
        self.bad: list[bytes] = []
        self._halt = threading.Event()
        self.start()

    def run(self):
        buf = b""
        while not self._halt.is_set():
            buf += self.ser.read(64)
            frames, bad, buf = parse_lcus_frames(buf)
            self.bad += bad
            for f in frames:
                self.frames.append((time.monotonic(), f))
                self.state[f[1]] = bool(f[2])

    def wait_frames(self, n, timeout=2.0):
        end = time.monotonic() + timeout
        while len(self.frames) < n and time.monotonic() < end:
            time.sleep(0.005)
        return [f for _, f in self.frames]

    def close(self):
        self._halt.set()
        self.join(2)
        self.ser.close()


@needs_socat
def test_lcus_exact_bytes_pulse_and_fail_secure(pty_pair):
    host, board = pty_pair
    sim = LcusSimulator(board)
    try:
        r = LcusRelay(host, channels=2)
        # fail secure on open: every channel off
        assert sim.wait_frames(2) == [bytes.fromhex("A0 01 00 A1"), bytes.fromhex("A0 02 00 A2")]
        r.on(1)
        assert sim.wait_frames(3)[-1] == bytes.fromhex("A0 01 01 A2")
        assert sim.state[1] is True
        t0 = time.monotonic()
        r.pulse(2, 150)                                  # ended by the driver's own timer
        got = sim.wait_frames(5)
        assert got[3:5] == [bytes.fromhex("A0 02 01 A3"), bytes.fromhex("A0 02 00 A2")]
        dt = sim.frames[4][0] - t0
        assert 0.13 <= dt <= 0.6, dt
        r.pulse(2, 5000)                                 # a long pulse cut short by close()
        sim.wait_frames(6)
        r.close()
        got = sim.wait_frames(8)
        assert got[6:8] == [bytes.fromhex("A0 01 00 A1"), bytes.fromhex("A0 02 00 A2")]
        assert sim.state == {1: False, 2: False}
        time.sleep(0.1)
        assert len(sim.frames) == 8 and not sim.bad
    finally:
        sim.close()


@needs_socat
def test_modbus_relay_against_pymodbus_server(modbus_peer):
    host, peer = modbus_peer
    r = ModbusRelay(host, unit=1, channels=2, timeout=0.5)
    assert peer.coils == {0: False, 1: False}            # switched off on open
    r.on(1)
    assert peer.rx[-1] == bytes.fromhex("01 05 00 00 FF 00 8C 3A")
    assert peer.coils[0] is True
    r.pulse(2, 150)
    assert peer.coils[1] is True
    time.sleep(0.45)
    assert peer.coils[1] is False and not r.errors       # ended by the driver's timer
    r.close()
    assert peer.coils == {0: False, 1: False}


@needs_socat
def test_modbus_exception_response_is_a_relay_error(modbus_peer):
    host, peer = modbus_peer
    with pytest.raises(RelayError, match="exception code 2"):
        ModbusRelay(host, unit=1, channels=1, coil_base=40)   # no such coil on this board


@needs_socat
def test_modbus_line_that_stops_answering(modbus_peer):
    host, peer = modbus_peer
    r = ModbusRelay(host, unit=1, channels=1, timeout=0.2, retries=1)
    r.on(1)
    peer.stop()
    t0 = time.monotonic()
    with pytest.raises(RelayError, match="no answer within 0.2 s"):
        r.off(1)
    assert time.monotonic() - t0 < 2.0
    with pytest.raises(RelayError, match="no answer"):
        r.close()                           # the fail-secure "off" cannot be confirmed: say so


@needs_socat
def test_modbus_pulse_end_failure_is_recorded(modbus_peer):
    host, peer = modbus_peer
    r = ModbusRelay(host, unit=1, channels=1, timeout=0.2, retries=0)
    r.pulse(1, 200)
    peer.stop()                             # the line dies while the relay is on
    time.sleep(0.8)
    assert r.errors and isinstance(r.errors[-1], RelayError)   # nobody to raise to: kept


@needs_socat
def test_modbus_wrong_unit_id_fails(modbus_peer):
    # a real board stays silent for another unit id; pymodbus' simulator answers "device
    # failure" (exception 4): either way the driver must refuse, naming the unit
    host, peer = modbus_peer
    with pytest.raises(RelayError, match="unit 7"):
        ModbusRelay(host, unit=7, channels=1, timeout=0.2, retries=0)


def test_parse_lcus_frames_keeps_the_tail_and_rejects_noise():
    good = lcus_frame(1, True) + lcus_frame(2, False)
    frames, bad, rest = parse_lcus_frames(b"\x00" + good + bytes([0xA0, 1, 1, 0]) + b"\xA0\x01")
    assert frames == [lcus_frame(1, True), lcus_frame(2, False)]
    assert bad == [b"\x00", bytes([0xA0, 1, 1, 0])] and rest == b"\xA0\x01"
