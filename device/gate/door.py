"""The gate's side of the access panel: cards in, credentials out, the panel's commands.

:class:`DoorLink` is built by the gate from ``[decision]``, ``[card]``, ``[osdp]`` and
``[wiegand]`` and gives it four calls around a presentation:

- ``claim()`` -- before the pipeline: a card read on the Wiegand input within
  ``decision.card_window_s`` turns the presentation into 1:1 verification of the card's owner
  (an unknown card, or a disabled owner, is a deny of its own: ``unknown_card``,
  ``user_disabled``).
- ``check(d, claimed_by_card)`` -- after it: a user whose access mode is ``card+palm`` who
  presented a palm alone is denied (``card_required``), as is every palm alone in ``[gate]
  mode = "verify"``; ``used()`` once a presentation with a hand took the claim.
- ``report(d)`` -- on an open: the user's card (``palmgate users add-credential``) goes to the
  panel, over OSDP (raw Wiegand bits on the Secure Channel) and/or the Wiegand output. Returns
  the problem, or None: in panel mode a problem turns the open into a deny
  (``panel_error`` / ``no_credential``); in local mode the relay has opened the door already
  and the problem is only logged.
- the panel's output command pulses (or holds, or releases) the gate's relay through
  ``relay_action``; its LED and buzzer commands drive ``osdp.led_pin``/``osdp.buzzer_pin``;
  the tamper and power-fail inputs are reported to the panel as they change.

``summary()`` gives ``credentials_reported``, ``secure_channel`` and ``errors``.
"""
from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("palmgate.door")


class DoorLink:
    def __init__(self, cfg, store, relay_action=None, on_panel_event=None, pin_factory=None):
        """``relay_action(action, ms)``: ``"pulse"``/``"on"``/``"off"`` on the gate's relay
        (from libosdp's thread); ``on_panel_event(kind, data)``: for the audit log."""
        from device.store.credentials import Credentials
        self.cfg, self.store = cfg, store
        self.creds = Credentials(store)
        self.panel_mode = cfg.decision.mode == "panel"
        self.relay_action, self.on_panel_event = relay_action, on_panel_event
        self.pin_factory = pin_factory if pin_factory is not None else \
            (cfg.gpio.pin_factory or None)
        self.osdp = self.wiegand = self.reader = None
        self._outs: dict = {}
        self._ins: list = []
        self._card = None                       # (Card, monotonic) from the Wiegand input
        self._claimed = None                    # the card claim() handed out last
        self._lock = threading.Lock()
        self.reported = 0
        self.errors: list[str] = []
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    @property
    def active(self) -> bool:
        return any(x is not None for x in (self.osdp, self.wiegand, self.reader))

    # ------------------------------------------------------------------ devices
    def _open(self) -> None:
        o, w = self.cfg.osdp, self.cfg.wiegand
        if w.enabled:
            from device.relays.wiegand import WiegandOutput
            self.wiegand = WiegandOutput(w.d0_pin, w.d1_pin, pulse_us=w.pulse_us,
                                         interval_us=w.interval_us, active_low=w.active_low,
                                         pin_factory=self.pin_factory,
                                         frame_timeout_ms=w.frame_timeout_ms)
        if w.input_d0_pin is not None:
            from device.relays.wiegand import WiegandInput
            self.reader = WiegandInput(w.input_d0_pin, w.input_d1_pin,
                                       on_card=self._card_read, on_error=self._card_error,
                                       pin_factory=self.pin_factory,
                                       gap_ms=w.frame_timeout_ms)
        if o.enabled:
            from device.relays.gpio import _device
            from device.relays.osdp import OsdpPeripheral
            for role in ("led", "buzzer"):
                pin = o[f"{role}_pin"]
                if pin is not None:
                    self._outs[role] = _device(f"OSDP {role}", "DigitalOutputDevice", pin,
                                               self.pin_factory, initial_value=False)
            self.osdp = OsdpPeripheral(o.port, address=o.address, baudrate=o.baudrate,
                                       scbk_file=o.key_file, install_mode=o.install_mode,
                                       require_secure=o.require_secure,
                                       on_output=self._output, on_led=self._led,
                                       on_buzzer=self._buzzer).start()
            for role in ("tamper", "power_fail"):
                pin = o[f"{role}_pin"]
                if pin is not None:
                    dev = _device(f"OSDP {role}", "DigitalInputDevice", pin, self.pin_factory,
                                  pull_up=True, bounce_time=0.05)
                    dev.when_activated = dev.when_deactivated = self._status
                    self._ins.append((role, dev))
            threading.Thread(target=self._first_status, daemon=True,
                             name="osdp-status").start()

    def _first_status(self) -> None:
        if self.osdp is not None and self.osdp.wait_secure(30):
            self._status()

    def _status(self, *_a) -> None:
        st = {role: bool(dev.is_active) for role, dev in self._ins}
        if self.osdp is not None:
            self.osdp.report_status(tamper=st.get("tamper", False),
                                    power_ok=not st.get("power_fail", False))
        if st.get("tamper") or st.get("power_fail"):
            log.warning("tamper/power: %s", st, extra={"event": "tamper", **st})

    # ------------------------------------------------------------------ panel commands
    def _output(self, output_no: int, action: str, ms) -> None:
        log.info("panel output %d: %s %s", output_no, action, ms or "",
                 extra={"event": "panel_output", "output": output_no, "action": action,
                        "ms": ms})
        if output_no != 0:
            return                               # the gate has one door output
        if self.relay_action is None:
            raise RuntimeError("no relay")
        if action == "pulse":
            self.relay_action("pulse", max(50, int(ms or 0)))
        else:
            self.relay_action(action, None)
        if self.on_panel_event is not None:
            self.on_panel_event("panel", {"action": action, "ms": ms})

    def _led(self, led: dict) -> None:
        dev = self._outs.get("led")
        if dev is not None:
            if led["color"] in ("off", "?"):
                dev.off()
            elif led["temporary"] and led["timer_ms"]:
                dev.blink(on_time=led["timer_ms"] / 1000, off_time=0.01, n=1)
            else:
                dev.on()

    def _buzzer(self, bz: dict) -> None:
        dev = self._outs.get("buzzer")
        if dev is not None and bz["on_ms"]:
            dev.blink(on_time=bz["on_ms"] / 1000, off_time=max(bz["off_ms"], 10) / 1000,
                      n=max(1, bz["repeat"]))

    # ------------------------------------------------------------------ card input
    def _card_read(self, card) -> None:
        with self._lock:
            self._card = (card, time.monotonic())
        log.info("card read", extra={"event": "card_read", "card_format": card.format})

    def _card_error(self, msg: str, bits) -> None:
        self.errors.append(f"card input: {msg}")

    def claim(self) -> tuple[str | None, str | None]:
        """(the claimed user id, a deny reason) from a card read within the window. A good
        claim stays until a presentation with a hand used it (:meth:`used`): the loop's idle
        frames between the card and the palm do not take it; a refused one is used at once
        (one deny per bad card)."""
        with self._lock:
            c = self._card
            if c is not None and time.monotonic() - c[1] > self.cfg.decision.card_window_s:
                self._card = c = None               # too old: the person walked away
            self._claimed = c
        if c is None:
            return None, None
        card = c[0]
        uid = self.creds.find_card(card.facility, card.number)
        reason = None
        if uid is None:
            reason = "unknown_card"
        else:
            from device.store.holidays import holiday_dates
            u = self.store.get_user(uid)
            # validity, weekly zones and holidays on the gate's clock, as for the palm
            reason = "user_disabled" if u is None else u.access(holidays=holiday_dates(
                self.store))
        if reason is not None:
            self.used()
        return uid, reason

    def used(self) -> None:
        """The claim handed out by :meth:`claim` was used (a newer card read stays)."""
        with self._lock:
            if self._card is not None and self._card is self._claimed:
                self._card = None

    # ------------------------------------------------------------------ around a decision
    def check(self, d, claimed_by_card: bool) -> None:
        """A card is needed -- by a card+palm user, or by ``[gate] mode = "verify"`` -- and
        none came: an open becomes ``card_required`` (never a 1:N open in verify mode)."""
        if not d.opened or claimed_by_card:
            return
        if self.cfg.gate.mode == "verify" or \
                (d.user_id and self.creds.mode(d.user_id) == "card+palm"):
            d.decision, d.reason, d.prompt = "deny", "card_required", "please present your card"

    def report(self, d) -> str | None:
        """Send the user's card to the panel(s); the problem, or None."""
        if self.osdp is None and self.wiegand is None:
            return None
        cards = self.creds.cards(d.user_id) if d.user_id else []
        fmt = self.cfg.card.format
        card = next((c for c in cards if c["format"] == fmt), None)
        if card is None:
            msg = f"no {fmt} card for {d.user_id!r} (palmgate users add-credential)"
            self.errors.append(msg)
            log.error("panel: %s", msg, extra={"event": "panel_error"})
            return "no_credential"
        from device.relays.wiegand_codec import encode
        bits = encode(fmt, card["facility"], card["number"])
        problem = None
        if self.osdp is not None and not self.osdp.report_card(bits):
            problem = "panel_error"
            self.errors.append(self.osdp.errors[-1] if self.osdp.errors else "osdp")
        if self.wiegand is not None:
            try:
                self.wiegand.send_bits(bits)
            except Exception as e:  # noqa: BLE001 - a GPIO fault
                problem = "panel_error"
                self.errors.append(f"wiegand: {type(e).__name__}: {e}")
                log.error("wiegand output: %s", e, extra={"event": "panel_error"})
        if problem is None:
            self.reported += 1
        return problem

    # ------------------------------------------------------------------ state
    def summary(self) -> dict:
        return {"credentials_reported": self.reported,
                "secure_channel": bool(self.osdp is not None and self.osdp.secure),
                "errors": len(self.errors)}

    def close(self) -> None:
        for x in (self.osdp, self.wiegand, self.reader):
            if x is not None:
                try:
                    x.close()
                except Exception as e:  # noqa: BLE001
                    log.error("door link close: %s", e)
        for dev in list(self._outs.values()) + [d for _, d in self._ins]:
            try:
                dev.close()
            except Exception:           # noqa: BLE001
                pass
        self.osdp = self.wiegand = self.reader = None


def open_door_link(cfg, store, **kw) -> DoorLink | None:
    """A DoorLink when a panel or a card reader is configured, else None."""
    o, w = cfg.osdp, cfg.wiegand
    if not (o.enabled or w.enabled or w.input_d0_pin is not None):
        return None
    return DoorLink(cfg, store, **kw)
