"""``palmgate relay-test`` and the Modbus read-back it uses, against the real peers of
tests/test_relay.py on socat pseudo-terminal pairs: the LCUS board simulator and the pymodbus
RTU server."""
import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_relay import LcusSimulator  # noqa: E402

from device.cli import main  # noqa: E402
from device.relays.serial import ModbusRelay, RelayError, modbus_read_coils_frame  # noqa: E402

needs_socat = pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed")


def test_read_coils_frame():
    assert modbus_read_coils_frame(1, 0) == bytes.fromhex("01 01 00 00 00 01 FD CA")


def run_cli(args, capsys):
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, json.loads(out), err


@needs_socat
def test_modbus_read_back(modbus_peer):
    host, peer = modbus_peer
    r = ModbusRelay(host, unit=1, channels=2, timeout=0.5)
    assert (r.read(1), r.read(2)) == (False, False)
    r.on(2)
    assert (r.read(1), r.read(2)) == (False, True) and r.states == {1: False, 2: True}
    assert peer.rx[-1] == bytes.fromhex("01 01 00 01 00 01 AC 0A")     # read coil 1
    r.close()
    with pytest.raises(RelayError, match="closed"):
        r.read(1)


@needs_socat
def test_modbus_read_refused_and_silent(modbus_peer):
    host, peer = modbus_peer
    r = ModbusRelay(host, unit=1, channels=1, timeout=0.2, retries=0)
    r.coil_base = 40                                   # past the board's coils
    with pytest.raises(RelayError, match="refused to read coil 40: exception code 2"):
        r.read(1)
    r.coil_base = 0
    peer.stop()
    with pytest.raises(RelayError, match="read coil 0: no answer within 0.2 s"):
        r.read(1)


@needs_socat
def test_relay_test_modbus(modbus_peer, capsys):
    host, peer = modbus_peer
    rc, rep, err = run_cli(["relay-test", "--protocol", "modbus", "--port", host,
                            "--channel", "2", "--channels", "2", "--pulse-ms", "150"], capsys)
    assert rc == 0 and rep["ok"] and rep["confirmed"] is True, rep
    names = [c["check"] for c in rep["checks"]]
    assert "on during the pulse (read back)" in names
    assert "off after the pulse (read back)" in names
    assert "PASS  off after the pulse (read back)" in err
    assert peer.coils == {0: False, 1: False}            # left off
    on = bytes.fromhex("01 05 00 01 FF 00 DD FA")        # coil 1 (channel 2) on
    off = bytes.fromhex("01 05 00 01 00 00 9C 0A")
    writes = [f for f in peer.rx if f[1] == 5]
    assert on in writes and writes[writes.index(on) + 1] == off


@needs_socat
def test_relay_test_lcus(pty_pair, capsys):
    host, board = pty_pair
    sim = LcusSimulator(board)
    try:
        rc, rep, err = run_cli(["relay-test", "--protocol", "lcus", "--port", host,
                                "--pulse-ms", "120", "--json"], capsys)
        assert rc == 0 and rep["ok"] and rep["confirmed"] is None and "click" in rep["note"]
        frames = sim.wait_frames(4)
        assert frames == [bytes.fromhex(h) for h in
                          ("A0 01 00 A1", "A0 01 01 A2", "A0 01 00 A1", "A0 01 00 A1")]
        assert sim.state == {1: False} and not sim.bad and err == ""
    finally:
        sim.close()


@needs_socat
def test_relay_test_silent_modbus_board_fails(pty_pair, capsys):
    host, board = pty_pair                             # nobody answers on the far end
    rc, rep, _ = run_cli(["relay-test", "--protocol", "modbus", "--port", host,
                          "--timeout", "0.1"], capsys)
    assert rc == 1 and not rep["ok"] and "no answer" in rep["errors"][0]


def test_relay_test_bad_input(capsys):
    rc, rep, _ = run_cli(["relay-test", "--protocol", "lcus", "--port", "/nonexistent/tty9"],
                         capsys)
    assert rc == 1 and "cannot open relay port" in rep["errors"][0]
    assert main(["relay-test", "--protocol", "lcus", "--port", "loop://",
                 "--channel", "3", "--channels", "2"]) == 2
    assert "outside 1..2" in capsys.readouterr().err


@needs_socat
@pytest.mark.parametrize("has_flash", [True, False])
def test_relay_test_board_pulse(pty_pair, capsys, has_flash):
    """``--board-pulse``: the board's own timed command, ended by the board (a board with the
    flash function passes; one without refuses the command and the test fails)."""
    from tools.relay_peers import ModbusPeer
    host, board = pty_pair
    peer = ModbusPeer(board, flash_base=0x0200 if has_flash else None)
    try:
        n0 = len(peer.rx)
        rc, rep, err = run_cli(["relay-test", "--protocol", "modbus", "--port", host,
                                "--pulse-ms", "200", "--board-pulse", "--json"], capsys)
        if has_flash:
            assert rc == 0 and rep["ok"] and rep["board_pulse"], rep
            names = [c["check"] for c in rep["checks"]]
            assert "off after the pulse, ended by the board itself (read back)" in names
            from device.relays.serial import modbus_flash_frame
            off = bytes.fromhex("01 05 00 00 00 00 CD CA")
            writes = [f for f in peer.rx[n0:] if f[1] == 5]
            # off at open, the flash, off at close: nothing from the host ended the pulse
            assert writes == [off, modbus_flash_frame(1, 0x0200, 2), off]
        else:
            assert rc == 1 and "exception code" in rep["errors"][0]
        assert peer.coils.get(0) is False
    finally:
        peer.stop()
