"""Access panels for the demo and the tests: the real peers the gate talks to.

- :class:`OsdpPanel` -- libosdp's own ControlPanel (CP) on one end of a socat pty pair: it
  polls the gate (a PD on the other end), installs its Secure Channel key in a gate that is in
  install mode (osdp_KEYSET under SCBK-D), records every card read (decoded, parity checked)
  and status report, and -- like a panel that grants every known card -- answers a card read
  with an output pulse that opens the door and a green LED.
- :class:`WiegandPanel` -- a Wiegand receiver on gpiozero's mock pins wired to the gate's
  DATA0/DATA1 outputs (MockConnectedPin), decoding every frame.

Both expose ``summary()`` -> ``{"credentials_reported", "secure_channel", "errors"}``.
"""
from __future__ import annotations

import threading
import time

from device.relays.wiegand_codec import WiegandError, decode, from_bytes


class OsdpPanel:
    def __init__(self, port: str, *, address: int = 101, scbk: bytes | None = None,
                 grant: bool = True, grant_pulse_ms: int = 200, log_level: str = "error",
                 known_cards=None):
        from device.relays.osdp import _osdp, _serial_channel
        osdp = self.osdp = _osdp()
        self.address, self.grant, self.grant_pulse_ms = address, grant, grant_pulse_ms
        self.scbk = scbk or osdp.KeyStore.gen_key()
        self.known = None if known_cards is None else set(known_cards)
        self.cards: list = []           # decoded Card per card read
        self.raw_events: list[dict] = []
        self.status_reports: list[bytes] = []
        self.errors: list[str] = []
        self.secure_at_each_card: list[bool] = []
        self._chan = _serial_channel(port, 115200)
        level = getattr(osdp.LogLevel, log_level.capitalize(), osdp.LogLevel.Error)
        self.cp = osdp.ControlPanel([osdp.PDInfo(address, self._chan, scbk=self.scbk)],
                                    log_level=level)
        self._stop = threading.Event()
        self._thread = None

    def start(self) -> "OsdpPanel":
        self.cp.start()
        self._thread = threading.Thread(target=self._events, name="osdp-panel", daemon=True)
        self._thread.start()
        return self

    def wait_secure(self, timeout: float = 15.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.cp.is_online(self.address) and self.cp.is_sc_active(self.address):
                return True
            time.sleep(0.05)
        return False

    @property
    def secure(self) -> bool:
        return bool(self.cp.is_sc_active(self.address))

    def _events(self) -> None:
        E = self.osdp.Event
        while not self._stop.is_set():
            ev = self.cp.get_event(self.address, timeout=0.2)
            if not ev:
                continue
            self.raw_events.append(ev)
            if ev.get("event") == E.CardRead:
                self._card(ev)
            elif ev.get("event") == E.Status:
                self.status_reports.append(bytes(ev.get("report") or b""))

    def _card(self, ev: dict) -> None:
        self.secure_at_each_card.append(self.secure)
        try:
            card = decode(from_bytes(bytes(ev["data"]), int(ev["length"])))
        except (WiegandError, KeyError, ValueError) as e:
            self.errors.append(f"card read: {e}")
            return
        self.cards.append(card)
        if self.grant and (self.known is None or (card.facility, card.number) in self.known):
            self.output(0, self.grant_pulse_ms)
            self.led("green", 1000)

    def output(self, output_no: int, pulse_ms: int) -> bool:
        """osdp_OUT: output ``output_no`` on for ``pulse_ms`` (x100 ms steps), then off."""
        return bool(self.cp.submit_command(self.address, {
            "command": self.osdp.Command.Output, "output_no": output_no, "control_code": 5,
            "timer_count": max(1, round(pulse_ms / 100))}))

    def led(self, color: str, ms: int) -> bool:
        colors = {"red": self.osdp.CommandLEDColor.Red,
                  "green": self.osdp.CommandLEDColor.Green}
        return bool(self.cp.submit_command(self.address, {
            "command": self.osdp.Command.LED, "reader": 0, "led_number": 0,
            "control_code": 1, "on_count": 10, "off_count": 0, "on_color": colors[color],
            "off_color": self.osdp.CommandLEDColor.Black,
            "timer_count": max(1, round(ms / 100)), "temporary": True}))

    def buzzer(self, ms: int = 200) -> bool:
        return bool(self.cp.submit_command(self.address, {
            "command": self.osdp.Command.Buzzer, "reader": 0, "control_code": 2,
            "on_count": max(1, round(ms / 100)), "off_count": 0, "rep_count": 1}))

    def wait_cards(self, n: int, timeout: float = 5.0) -> list:
        end = time.monotonic() + timeout
        while len(self.cards) + len(self.errors) < n and time.monotonic() < end:
            time.sleep(0.02)
        return list(self.cards)

    def summary(self) -> dict:
        return {"credentials_reported": len(self.cards), "secure_channel": self.secure,
                "errors": len(self.errors)}

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        try:
            self.cp.teardown()
        finally:
            self._chan.close()


class WiegandPanel:
    """A mock-pin Wiegand receiver wired to the gate's outputs: make it before the gate opens
    its pins, on the same MockFactory (``factory``), then hand the gate that factory."""

    def __init__(self, factory, d0_pin, d1_pin, in_d0: int = 26, in_d1: int = 27,
                 frame_timeout_ms: float = 20.0):
        from gpiozero.pins.mock import MockConnectedPin
        from device.relays.wiegand import WiegandInput
        r0, r1 = factory.pin(in_d0), factory.pin(in_d1)
        factory.pin(d0_pin, pin_class=MockConnectedPin, input_pin=r0)
        factory.pin(d1_pin, pin_class=MockConnectedPin, input_pin=r1)
        self.rx = WiegandInput(in_d0, in_d1, pin_factory=factory, gap_ms=frame_timeout_ms)

    @property
    def cards(self) -> list:
        return self.rx.cards

    def wait_cards(self, n: int, timeout: float = 2.0) -> list:
        return self.rx.wait_cards(n, timeout)

    def summary(self) -> dict:
        return {"credentials_reported": len(self.rx.cards), "secure_channel": False,
                "errors": len(self.rx.errors)}

    def close(self) -> None:
        self.rx.close()
