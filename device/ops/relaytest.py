"""``palmgate relay-test``: pulse the relay once, read it back where the board can say, leave
every channel off.

Modbus boards answer: each switch is echo-checked by the driver, and the coil is read back
(function 01) during the pulse (expect on) and after it (expect off). LCUS-style boards never
answer, so all the software can know is that the port took the bytes: the report says
``confirmed: null`` and the installer listens for the click (or watches the LED).

``board_pulse=True`` (Modbus): the pulse is the board's own timed "flash on" command and nothing
here switches it off: the coil read back off after the pulse proves the board ends a pulse by
itself (what ``[relay] board_pulse`` relies on when the gate is killed mid-pulse).
"""
from __future__ import annotations

import time

from device.relays.serial import LcusRelay, ModbusRelay, RelayError


def relay_test(protocol: str, port: str, *, channel: int = 1, pulse_ms: int = 200,
               channels: int | None = None, unit: int = 1, coil_base: int = 0,
               baudrate: int = 9600, timeout: float = 0.5, settle_ms: int = 150,
               board_pulse: bool = False, flash_base: int = 0x0200) -> dict:
    """Run the test; returns the report (``ok``: every check passed)."""
    if pulse_ms <= 0:
        raise ValueError(f"--pulse-ms {pulse_ms} must be > 0")
    channels = channels or channel
    if not 1 <= channel <= channels:
        raise ValueError(f"--channel {channel} outside 1..{channels}")
    if board_pulse and protocol != "modbus":
        raise ValueError("--board-pulse needs a Modbus board with a flash command")
    rep: dict = {"protocol": protocol, "port": port, "channel": channel, "pulse_ms": pulse_ms,
                 "board_pulse": board_pulse, "checks": [], "errors": []}

    def check(name, ok, detail=None):
        rep["checks"].append({"check": name, "ok": ok, **({"detail": detail} if detail else {})})

    relay = None
    t0 = time.monotonic()
    try:
        if protocol == "lcus":
            relay = LcusRelay(port, channels=channels, baudrate=baudrate, timeout=timeout)
        elif protocol == "modbus":
            relay = ModbusRelay(port, unit=unit, channels=channels, coil_base=coil_base,
                                baudrate=baudrate, timeout=timeout, board_pulse=board_pulse,
                                flash_base=flash_base)
        else:
            raise ValueError(f"unknown relay protocol {protocol!r} (lcus or modbus)")
        check("open: every channel switched off", True)
        readable = hasattr(relay, "read")
        if readable:
            check("off before the pulse (read back)", relay.read(channel) is False)
        if board_pulse:
            relay.flash(channel, pulse_ms)            # the board alone ends this one
            check("board-timed pulse started (flash command accepted)", True)
        else:
            relay.pulse(channel, pulse_ms)
            check("pulse started", True)
        if readable:
            during = relay.read(channel)
            check("on during the pulse (read back)", during is True)
        time.sleep(-(-pulse_ms // 100) * 0.1 if board_pulse else pulse_ms / 1000.0)
        time.sleep(settle_ms / 1000.0)
        if board_pulse:
            check("off after the pulse, ended by the board itself (read back)",
                  relay.read(channel) is False)
        else:
            errs = list(getattr(relay, "errors", []))
            check("pulse ended by the driver's timer", not errs,
                  str(errs[-1]) if errs else None)
            if readable:
                check("off after the pulse (read back)", relay.read(channel) is False)
    except RelayError as e:
        rep["errors"].append(str(e))
        check("relay line", False, str(e))
    finally:
        if relay is not None:
            try:
                relay.close()                     # every channel off again
                check("closed with every channel off", True)
            except RelayError as e:
                rep["errors"].append(str(e))
                check("closed with every channel off", False, str(e))
    rep["elapsed_ms"] = round((time.monotonic() - t0) * 1000, 1)
    rep["ok"] = all(c["ok"] for c in rep["checks"]) and not rep["errors"]
    if protocol == "lcus" and rep["ok"]:
        rep["confirmed"] = None
        rep["note"] = ("LCUS boards never acknowledge: the bytes were sent; confirm the click "
                       "(or the board's LED) by ear or eye")
    elif protocol == "lcus":
        rep["confirmed"] = False
        rep["note"] = (f"FAILED: the relay line {port} did not work, so nothing reached the "
                       f"board ({rep['errors'][-1] if rep['errors'] else 'see the checks'})")
    else:
        rep["confirmed"] = rep["ok"]
    return rep
