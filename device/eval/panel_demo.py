"""``palmgate demo --panel osdp|wiegand``: the demo gate as the reader of an access panel.

- ``osdp``: libosdp's control panel on one end of a socat pty pair, the gate's OSDP peripheral
  on the other, in install mode: the panel installs its Secure Channel key, then gets one card
  read per open and answers each with the output command that pulses the gate's relay
  (``[decision] mode = "panel"``: the gate never pulses it on its own).
- ``wiegand``: a receiver on gpiozero's mock pins wired to the gate's DATA0/DATA1 outputs,
  decoding each frame (parity checked); the panel drives its own door.

Each enrolled person gets card ``FIRST_CARD + i`` at facility ``FACILITY``. ``summary()`` is
the ``panel`` object of the demo's JSON: ``credentials_reported`` (frames the panel decoded),
``secure_channel`` (OSDP), ``errors`` (the panel's and the gate's), plus ``cards_match``: every
reported card is the card of the person the gate opened for.
"""
from __future__ import annotations

FACILITY, FIRST_CARD = 42, 1000
DEMO_FRAME_MS = 200.0
PANELS = ("osdp", "wiegand")


class DemoPanel:
    def __init__(self, kind: str, root):
        if kind not in PANELS:
            raise ValueError(f"--panel {kind!r}: use --panel osdp or --panel wiegand")
        self.kind, self.root = kind, root
        self.line = self.panel = self.gate = None
        self.pin_factory = None
        self.cards: dict[str, int] = {}
        if kind == "osdp":
            from device.eval.ptypair import PtyPair
            from device.relays.osdp import _osdp
            _osdp()                                       # a clear error before any work
            self.line = PtyPair()
        else:
            from gpiozero.pins.mock import MockFactory
            from device.eval.panel import WiegandPanel
            self.pin_factory = MockFactory()
            # a patient receiver: the demo shares its CPU with the gate's threads (a panel's
            # own end-of-frame timeout is 20 ms or more)
            self.panel = WiegandPanel(self.pin_factory, 5, 6, frame_timeout_ms=DEMO_FRAME_MS)

    def sections(self) -> dict:
        s = {"decision": {"mode": "panel"}, "card": {"format": "wiegand26",
                                                     "facility_code": FACILITY}}
        if self.kind == "osdp":
            s["osdp"] = {"enabled": True, "port": self.line.a, "install_mode": True,
                         "key_file": str(self.root / "osdp_scbk")}
        else:
            s["wiegand"] = {"enabled": True, "d0_pin": 5, "d1_pin": 6,
                            "frame_timeout_ms": DEMO_FRAME_MS}
        return s

    def enrolled(self, store, user_id: str, i: int) -> None:
        from device.store.credentials import Credentials
        Credentials(store).add_card(user_id, FIRST_CARD + i, FACILITY, "wiegand26")
        self.cards[user_id] = FIRST_CARD + i

    def start(self, gate, timeout: float = 20.0) -> bool:
        """Start the panel once the gate (the peripheral) is up; True when the Secure Channel
        came up (OSDP) or the lines are wired (Wiegand)."""
        self.gate = gate
        if self.kind == "wiegand":
            return True
        from device.eval.panel import OsdpPanel
        self.panel = OsdpPanel(self.line.b, address=gate.cfg.osdp.address,
                               grant_pulse_ms=gate.cfg.relay.pulse_ms).start()
        # up when the panel's own key is in (not just SCBK-D) and both ends see the channel
        return gate.door.osdp.wait_secure(timeout) and self.panel.wait_secure(timeout)

    def summary(self, opened_for: list[str]) -> dict:
        got = self.panel.wait_cards(len(opened_for), timeout=5.0) if self.panel else []
        want = [self.cards.get(u) for u in opened_for]
        gate_errors = len(self.gate.door.errors) if self.gate and self.gate.door else 0
        s = self.panel.summary() if self.panel else {"credentials_reported": 0,
                                                     "secure_channel": False, "errors": 0}
        s["errors"] += gate_errors
        s["cards_match"] = [c.number for c in got] == want
        if self.kind == "wiegand" and self.gate and self.gate.door and self.gate.door.wiegand:
            # frames sent again after this process was held up mid-frame (their broken
            # first tries are among the panel's errors)
            s["resends"] = self.gate.door.wiegand.resends
        s["kind"] = self.kind
        return s

    def close(self) -> None:
        if self.panel is not None:
            self.panel.close()
        if self.line is not None:
            self.line.close()
