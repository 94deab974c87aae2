"""An OSDP keypad reader wired to the gate, the gate its control panel (libosdp's CP): against
a libosdp peripheral (the reader) on a socat pty pair, Secure Channel on with a key the gate
made and installed in the reader (install mode). Keys and card reads come through; the real
gate loop takes a keypad ID + PIN from it as a claim (pin + palm)."""
import shutil

import pytest
from conftest import gate_config, wait_until

osdp = pytest.importorskip("osdp")
needs_socat = pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed")


def test_keypad_report_bytes():
    from device.relays.osdp_reader import keys_of
    from device.relays.wiegand_codec import WiegandError
    assert keys_of(b"42\r2468\x7f1#*") == list("42#2468*1#*")
    with pytest.raises(WiegandError, match="0x41"):
        keys_of(b"4A")


def _reader_pd(port, key_file):
    """The keypad reader: a libosdp PD in install mode (no key yet)."""
    from device.relays.osdp import OsdpPeripheral
    return OsdpPeripheral(port, address=0, baudrate=115200, scbk_file=key_file,
                          install_mode=True).start()


def _keys(pd, text: bytes):
    assert pd.pd.submit_event({"event": osdp.Event.KeyPress, "reader_no": 0, "data": text})


@needs_socat
def test_reader_gets_the_gates_key_then_keys_and_cards_come_through(tmp_path, pty_pair):
    from device.relays.osdp_reader import OsdpReader
    from device.relays.wiegand_codec import encode, to_bytes
    host, dev = pty_pair
    cards, keys, errors = [], [], []
    pd = _reader_pd(dev, tmp_path / "reader_side_key")
    rd = OsdpReader(host, address=0, baudrate=115200, scbk_file=tmp_path / "gate" / "scbk",
                    on_card=cards.append, on_key=keys.append, on_error=errors.append).start()
    try:
        assert rd.key_made and (tmp_path / "gate" / "scbk").stat().st_mode & 0o777 == 0o600
        assert pd.wait_secure(20) and rd.wait_secure(10)
        # the reader holds the key the gate made (osdp_KEYSET under SCBK-D)
        assert (tmp_path / "reader_side_key").read_text() == \
            (tmp_path / "gate" / "scbk").read_text()
        _keys(pd, b"42\r2468\r")
        assert wait_until(lambda: len(keys) == 8, 10.0)
        assert "".join(keys) == "42#2468#"
        bits = encode("wiegand26", 7, 1234)
        assert pd.pd.submit_event({"event": osdp.Event.CardRead, "reader_no": 0,
                                   "direction": 0, "format": osdp.CardFormat.Wiegand,
                                   "length": 26, "data": to_bytes(bits)})
        assert wait_until(lambda: cards, 10.0)
        assert (cards[0].facility, cards[0].number) == (7, 1234) and errors == []
    finally:
        rd.close()
        pd.close()


@needs_socat
def test_gate_takes_a_pin_from_its_osdp_reader(tmp_path, tiny_models, synthetic_bursts,
                                               pty_pair):
    from device.gate.enrol import enrol_user
    from device.gate.gate import Gate, open_store
    from device.gate.pipeline import Pipeline
    from device.relays.factory import MemoryRelay
    from device.store.credentials import Credentials
    from device.store.pins import Pins
    host, dev = pty_pair
    cfg = gate_config(tmp_path, tiny_models,
                      osdp_reader={"enabled": True, "port": host, "baudrate": 115200,
                                   "key_file": str(tmp_path / "gate_scbk")})
    pipe = Pipeline(cfg)
    try:
        with open_store(cfg) as st:
            enrol_user(pipe, st, "person-001", synthetic_bursts["enrol"][1])
            Pins(st).set_pin("person-001", "2468", 11)
            Credentials(st).set_mode("person-001", "pin+palm")
    finally:
        pipe.close()
    pd = _reader_pd(dev, tmp_path / "reader_key")
    relay = MemoryRelay()
    try:
        with Gate(cfg, relay=relay) as gate:
            assert pd.wait_secure(20) and gate.door.osdp_reader.wait_secure(10)
            d = gate.present(synthetic_bursts["genuine"][1])
            assert (d.decision, d.reason) == ("deny", "pin_required")
            _keys(pd, b"11\r2468\r")
            assert wait_until(lambda: gate.door._card is not None, 10.0)
            d = gate.present(synthetic_bursts["genuine"][1])
            assert d.opened and d.user_id == "person-001", d.summary()
            _keys(pd, b"11\r1357\r")
            assert wait_until(lambda: gate.door._card is not None, 10.0)
            d = gate.present(synthetic_bursts["genuine"][1])
            assert (d.decision, d.reason) == ("deny", "wrong_pin")
            assert gate.door.osdp_reader.errors == []
            assert sum(1 for _, _, on in relay.events if on) == 1
    finally:
        pd.close()
