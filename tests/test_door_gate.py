"""The gate on a door: the real loop reporting credentials to libosdp's control panel (socat
pty pair, Secure Channel, key installed by the panel) and on Wiegand lines (gpiozero mock
pins), panel mode, card + palm."""
import shutil
import time

import numpy as np
import pytest
from conftest import gate_config
from conftest import wait_until as _wait

osdp = pytest.importorskip("osdp")
pytest.importorskip("gpiozero")
needs_socat = pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed")


def _enrol(cfg, store, bursts, cards):
    from device.gate.enrol import enrol_user
    from device.gate.pipeline import Pipeline
    from device.store.credentials import Credentials
    pipe = Pipeline(cfg)
    try:
        for i in (0, 1):
            enrol_user(pipe, store, f"person-{i:03d}", bursts["enrol"][i])
    finally:
        pipe.close()
    cr = Credentials(store)
    for uid, (fc, n) in cards.items():
        cr.add_card(uid, n, fc, cfg.card.format)
    return cr


@needs_socat
def test_panel_mode_osdp_one_credential_per_open(tmp_path, tiny_models, synthetic_bursts):
    from device.eval.panel import OsdpPanel
    from device.eval.ptypair import PtyPair
    from device.gate.gate import Gate, open_store
    from device.relays.factory import MemoryRelay
    cards = {"person-000": (17, 1000), "person-001": (17, 1001)}
    with PtyPair() as line:
        cfg = gate_config(tmp_path, tiny_models, decision={"mode": "panel"},
                          osdp={"enabled": True, "port": line.a, "install_mode": True,
                                "key_file": str(tmp_path / "state" / "osdp_scbk")},
                          card={"facility_code": 17})
        relay = MemoryRelay()
        with open_store(cfg) as st:
            _enrol(cfg, st, synthetic_bursts, cards)
        panel = None
        try:
            with Gate(cfg, relay=relay) as gate:
                # the panel polls a gate that is up (libosdp's CP waits 300 s after a
                # peripheral that never answered)
                panel = OsdpPanel(line.b, address=cfg.osdp.address, grant_pulse_ms=300).start()
                assert panel.wait_secure(15)
                assert gate.door.osdp.secure
                seq = [("genuine", synthetic_bursts["genuine"][0]),
                       ("impostor", synthetic_bursts["impostor"][0]),
                       ("genuine", synthetic_bursts["genuine"][1]),
                       ("impostor", synthetic_bursts["impostor"][1])]
                ds = []
                for kind, b in seq:
                    n_before = len(panel.cards)
                    d = gate.present(b)
                    ds.append(d)
                    if d.opened:
                        assert d.relay == "panel"
                        assert len(panel.wait_cards(n_before + 1)) == n_before + 1
                        assert panel.cards[-1].number == cards[d.user_id][1]
                    else:
                        time.sleep(0.5)
                        assert len(panel.cards) == n_before        # none per deny
                opens = [d for d in ds if d.opened]
                denies = [d for d in ds if not d.opened]
                assert [k for (k, _), d in zip(seq, ds) if d.opened] == \
                    ["genuine"] * len(opens)
                assert len(opens) >= 1 and len(denies) >= 2
                assert len(panel.cards) == len(opens) and not panel.errors
                assert all(panel.secure_at_each_card)
                # the relay moved only on the panel's output command, once per open
                assert _wait(lambda: sum(1 for _, _, on in relay.events if on) == len(opens))
                assert gate.door.summary() == {"credentials_reported": len(opens),
                                               "secure_channel": True, "errors": 0}
                time.sleep(0.3)
                gate.process_events()
                kinds = [r.kind for r in gate.store.audit.records()]
                assert kinds.count("panel_output") == len(opens)
                gate.store.audit.verify()
        finally:
            if panel is not None:
                panel.close()


def test_wiegand_local_mode_and_card_plus_palm(tmp_path, tiny_models, synthetic_bursts):
    from gpiozero.pins.mock import MockConnectedPin, MockFactory
    from device.eval.panel import WiegandPanel
    from device.gate.gate import Gate, open_store
    from device.relays.factory import MemoryRelay
    from device.relays.wiegand import WiegandOutput
    from device.sources.replay import Burst
    f = MockFactory()
    panel = WiegandPanel(f, 5, 6, frame_timeout_ms=200)   # the panel on the gate's outputs
    # a card reader wired to the gate's inputs 12/13 (driven from pins 22/23)
    f.pin(22, pin_class=MockConnectedPin, input_pin=f.pin(12))
    f.pin(23, pin_class=MockConnectedPin, input_pin=f.pin(13))
    reader = WiegandOutput(22, 23, pin_factory=f, frame_timeout_ms=200)
    cards = {"person-000": (3, 500), "person-001": (3, 501)}
    cfg = gate_config(tmp_path, tiny_models,
                      wiegand={"enabled": True, "d0_pin": 5, "d1_pin": 6,
                               "input_d0_pin": 12, "input_d1_pin": 13,
                               "frame_timeout_ms": 200.0},
                      card={"facility_code": 3})
    relay = MemoryRelay()
    try:
        with open_store(cfg) as st:
            cr = _enrol(cfg, st, synthetic_bursts, cards)
            cr.set_mode("person-001", "card+palm")
        with Gate(cfg, relay=relay, pin_factory=f) as gate:
            d = gate.present(synthetic_bursts["genuine"][0])            # person 0: palm only
            assert d.opened and d.relay == "pulsed"
            cards_rx = panel.wait_cards(1)
            assert [(c.facility, c.number) for c in cards_rx] == [(3, 500)]
            d = gate.present(synthetic_bursts["genuine"][1])            # person 1, no card
            assert not d.opened and d.reason == "card_required"
            reader.send("wiegand26", 3, 501)                           # person 1's card
            assert _wait(lambda: gate.door._card is not None)
            # the loop's idle scenes between the card and the palm do not use the card up
            assert gate.present(Burst([np.full((480, 640, 3), 128, np.uint8)] * 3,
                                      np.full((128, 128), 128, np.uint8), {})).idle
            d = gate.present(synthetic_bursts["genuine"][1])
            assert d.opened and d.user_id == "person-001", d.summary()
            assert gate.door._card is None                             # used by that palm
            reader.send("wiegand26", 3, 500)            # person 0's card, person 1's palm
            assert _wait(lambda: gate.door._card is not None)
            d = gate.present(synthetic_bursts["genuine"][1])
            assert not d.opened and d.reason == "no_match"
            reader.send("wiegand26", 3, 999)                            # nobody's card
            assert _wait(lambda: gate.door._card is not None)
            before = gate.limiter.failures
            d = gate.present(synthetic_bursts["genuine"][0])
            assert not d.opened and d.reason == "unknown_card"
            assert gate.limiter.failures == before + 1      # a failed attempt on the terminal
            gate.store.set_enabled("person-000", False)
            reader.send("wiegand26", 3, 500)
            assert _wait(lambda: gate.door._card is not None)
            d = gate.present(synthetic_bursts["genuine"][0])
            assert not d.opened and d.reason == "user_disabled"
            got = panel.wait_cards(2)
            assert [(c.facility, c.number) for c in got] == [(3, 500), (3, 501)]
            assert sum(1 for _, _, on in relay.events if on) == 2
    finally:
        reader.close()
        panel.close()


def test_verify_mode_never_opens_on_a_palm_alone(tmp_path, tiny_models, synthetic_bursts):
    """[gate] mode = "verify": without a claim (card, PIN pad) the palm alone is denied
    (card_required), never a 1:N open; with the claim in the burst it opens."""
    from device.gate.gate import Gate, open_store
    from device.relays.factory import MemoryRelay
    cfg = gate_config(tmp_path, tiny_models, gate={"mode": "verify"})
    with open_store(cfg) as st:
        _enrol(cfg, st, synthetic_bursts, {})
    with Gate(cfg, relay=MemoryRelay()) as gate:
        b = synthetic_bursts["genuine"][0]
        d = gate.present(b)
        assert (d.decision, d.reason) == ("deny", "card_required")
        b.meta["claimed"] = "person-000"
        try:
            assert gate.present(b).opened
        finally:
            b.meta.pop("claimed")
