"""``palmgate-calibrate relay``: the turnstile relay over its serial protocol (LCUS or Modbus
RTU), pulsed a few times; LCUS boards never acknowledge, so only the operator can confirm."""
from __future__ import annotations

import time

from calibration.commands.common import doc_and_key, finish, save_step
from calibration.limits import check, limits_for
from device.relays.serial import RelayError, open_relay


def _pulse_cycles(a) -> tuple[list[str], str | None, int]:
    """Open the relay, pulse ``--cycles`` times (each ended by the driver's timer, then an
    explicit off) and close it: (events, first error or None, cycles that went through)."""
    kw = {"channels": a.channels, "baudrate": a.baud}
    if a.protocol == "modbus":
        kw.update(unit=a.unit, timeout=a.timeout)
    events, error, ok_cycles = [], None, 0
    relay = None
    try:
        relay = open_relay(a.protocol, a.port, **kw)
        events.append("opened (all channels off)")
        for i in range(a.cycles):
            relay.pulse(a.channel, a.pulse_ms)
            time.sleep(a.pulse_ms / 1000.0 + 0.15)
            if relay.errors:
                raise relay.errors[-1]
            relay.off(a.channel)                # explicit, verified off after the timed one
            ok_cycles += 1
            events.append(f"cycle {i + 1}: pulse {a.pulse_ms} ms ended by the driver's timer")
    except (RelayError, ValueError) as e:
        error = str(e)
    finally:
        if relay is not None:
            try:
                relay.close()
                events.append("closed (all channels off)")
            except RelayError as e:
                error = error or str(e)
    return events, error, ok_cycles


def cmd_relay(a) -> int:
    """Exercise the relay; check the cycles (and, with ``--confirm``, the operator's answer)."""
    lim = limits_for("relay", a.limit)
    doc, key = doc_and_key(a)
    t0 = time.monotonic()
    events, error, ok_cycles = _pulse_cycles(a)
    acknowledged = a.protocol == "modbus"
    checks = [check("cycles_ok", ok_cycles, ">=", max(lim["min_cycles"], a.cycles))]
    record = {"protocol": a.protocol, "port": a.port, "channel": a.channel,
              "pulse_ms": a.pulse_ms, "cycles": a.cycles, "cycles_ok": ok_cycles,
              "acknowledged": acknowledged, "error": error, "events": events,
              "seconds": round(time.monotonic() - t0, 3)}
    if a.confirm and error is None:
        ans = input(f"Did relay channel {a.channel} click {a.cycles} time(s)? [y/N] ")
        checks.append(check("operator_confirmed", int(ans.strip().lower() in ("y", "yes")), ">=", 1))
    record["pass"] = all(c["pass"] for c in checks)
    record["checks"] = checks
    out = {"step": "relay", **record}
    out["calfile"] = save_step(a, doc, key, "relay", record, lim)
    human = [f"relay {a.protocol} on {a.port}: {ok_cycles}/{a.cycles} cycles"
             + ("" if acknowledged else " (LCUS boards never acknowledge: only the operator can "
                                        "confirm the click, use --confirm)")
             + (f"; ERROR: {error}" if error else "")]
    return finish(a, out, human)
