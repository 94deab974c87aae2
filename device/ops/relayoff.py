"""``palmgate relay-off``: switch every configured relay channel (and the GPIO outputs) off.

Meant for systemd's ``ExecStopPost=`` (packaging/systemd/palmgate.service): it runs after the
gate's main process has gone for any reason -- a clean stop, a crash, the watchdog's SIGABRT, a
SIGKILL or the OOM killer -- when the gate itself can no longer end a pulse it started. It
needs only the ``[relay]`` and ``[gpio]`` sections of the configuration: no models, no store,
so it takes a fraction of a second.

The relay drivers switch every channel of the board off when they open and again when they
close; a Modbus board is then read back (function 01) channel by channel, so ``confirmed`` is
True only when the board itself says every coil is off. LCUS boards never answer
(``confirmed: null``). A line that fails is retried ``attempts`` times (a USB adapter that is
re-enumerating). The GPIO outputs (illuminator, strobe) are switched off the same way: opening
them drives them to their off level (``*_active_high`` respected).
"""
from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


def _open(cfg):
    from device.relays.factory import relay_opener
    return relay_opener(cfg)()


def relay_off(cfg, attempts: int = 3, pause_s: float = 1.0) -> dict:
    """Every channel of ``[relay]`` off (read back where the board answers) and every GPIO
    output of ``[gpio]`` off. Returns the report (``ok``)."""
    r = cfg.relay
    t0 = time.monotonic()
    rep: dict = {"relay": r.kind, "port": r.port, "channels": list(range(1, r.channels + 1)),
                 "errors": []}
    if r.kind == "sim":
        rep.update(relay_off=True, confirmed=None,
                   note="relay.kind is sim: the simulated relay lives inside the gate process")
    else:
        rep["relay_off"] = False
        for attempt in range(1, max(1, attempts) + 1):
            relay = None
            try:
                relay = _open(cfg)                # the driver sends every channel off here
                if hasattr(relay, "read"):
                    states = {ch: relay.read(ch) for ch in rep["channels"]}
                    rep["read_back"] = {str(ch): v for ch, v in states.items()}
                    if any(states.values()):
                        raise RuntimeError(f"board still reports on: {states}")
                relay.close()                     # and again here
                relay = None
                rep.update(relay_off=True, attempts=attempt,
                           confirmed=True if "read_back" in rep else None)
                break
            except Exception as e:  # noqa: BLE001 - RelayError, SerialException, OSError
                rep["errors"].append(f"attempt {attempt}: {type(e).__name__}: {e}")
                log.error("relay-off attempt %d: %s", attempt, e,
                          extra={"event": "relay_off_failed", "attempt": attempt})
                if relay is not None:
                    try:
                        relay.close()
                    except Exception:   # noqa: BLE001
                        pass
                if attempt < attempts:
                    time.sleep(pause_s)
        if r.kind == "lcus" and rep["relay_off"]:
            rep["note"] = "LCUS boards never acknowledge: the off frames were sent"
    g = getattr(cfg, "gpio", None)
    if g is not None and g.enabled and (g.illuminator_pin is not None
                                        or g.strobe_pin is not None):
        rep["gpio_off"] = False
        try:
            from device.relays.gpio import GateIO
            opts = {k: getattr(g, k) for k in ("pin_factory", "illuminator_pin",
                                               "illuminator_active_high", "strobe_pin",
                                               "strobe_active_high")
                    if getattr(g, k) is not None}
            io = GateIO(opts)                     # outputs open with initial_value off
            io.outputs_off()
            io.close()
            rep["gpio_off"] = True
        except Exception as e:      # noqa: BLE001 - HardwareConfigError and friends
            rep["errors"].append(f"gpio: {type(e).__name__}: {e}")
    rep["elapsed_ms"] = round((time.monotonic() - t0) * 1000, 1)
    rep["ok"] = bool(rep["relay_off"]) and rep.get("gpio_off", True) is not False
    level = logging.INFO if rep["ok"] else logging.CRITICAL
    log.log(level, "relay-off: %s", "every channel off" if rep["ok"] else "FAILED",
            extra={"event": "relay_off", "ok": rep["ok"], "relay": r.kind, "port": r.port})
    return rep
