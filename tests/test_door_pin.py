"""Keypad ID + PIN: the keypad's Wiegand key frames, the entry (ID # PIN #), PINs as salted
scrypt hashes in the sealed store, ``palmgate users set-pin`` (stdin, never argv), and the real
gate loop with a keypad on its Wiegand input (gpiozero mock pins): the ID claims its holder for
1:1 once the PIN is right, a pin+palm user needs it, a wrong PIN or an unknown ID is
``wrong_pin`` and counts toward the lockout (the holder's and the terminal's)."""
import io
import json

import numpy as np
import pytest
from conftest import gate_config
from conftest import wait_until as _wait

from device.relays.keypad import KEYS, PinEntry, decode_key, encode_key
from device.relays.wiegand_codec import WiegandError


def test_key_frames_round_trip_and_bad_frames_are_refused():
    for k in KEYS:
        for n in (4, 8):
            assert decode_key(encode_key(k, n)) == k
    assert encode_key("1", 8) == [1, 1, 1, 0, 0, 0, 0, 1]           # HID 8-bit burst
    assert encode_key("#", 4) == [1, 0, 1, 1]
    with pytest.raises(WiegandError, match="inverted"):
        decode_key([0, 0, 0, 0, 0, 0, 0, 1])
    with pytest.raises(WiegandError, match="no such key"):
        decode_key([1, 1, 1, 1])
    with pytest.raises(WiegandError):
        decode_key([1] * 26)


def test_pin_entry_id_then_pin_clear_and_timeout():
    e = PinEntry(timeout_s=5)
    assert [e.feed(k, 0.0) for k in "12#3*"] == [None] * 5 and e.pending == 0
    assert [e.feed(k, 1.0) for k in "42#2468"] == [None] * 7
    assert e.feed("#", 1.5) == ("42", "2468")
    e.feed("9", 2.0)
    assert [e.feed(k, 20.0) for k in "7#1"] == [None] * 3                 # a stale 9 forgotten
    assert e.feed("#", 20.1) == ("7", "1")
    assert e.feed("#", 21.0) is None and e.pending == 0                  # empty field
    assert [e.feed(k, 22.0) for k in "123456789"] == [None] * 9          # garbage: dropped
    assert e.pending == 0
    with pytest.raises(WiegandError):
        e.feed("A", 22.0)


def _store(tmp_path, users=("alice", "bob")):
    from conftest import unit
    from device.gate.gate import open_store
    from device.protect.core import enrol
    cfg = gate_config(tmp_path)
    st = open_store(cfg)
    rng = np.random.default_rng(5)
    for u in users:
        st.enrol(u, [enrol(unit(rng.standard_normal((49, 16))))])
    return cfg, st


def test_pins_are_salted_scrypt_sealed_one_per_id_and_go_with_the_user(tmp_path):
    from device.store.pins import Pins
    from device.store.store import StoreError
    cfg, st = _store(tmp_path)
    with st:
        p = Pins(st)
        assert p.set_pin("alice", "2468", 42) == 42
        assert p.check(42, "2468") == ("alice", True)
        assert p.check("0042", "2468") == ("alice", True)
        assert p.check(42, "2469") == ("alice", False)
        assert p.check(43, "2468") == (None, False)
        assert p.check(42, "12") == ("alice", False) and p.check("x", "2468") == (None, False)
        with pytest.raises(StoreError, match="keypad ID 42 already belongs to 'alice'"):
            p.set_pin("bob", "1357", 42)
        with pytest.raises(StoreError, match="has no keypad ID yet"):
            p.set_pin("bob", "1357")
        for bad in ("123", "123456789", "12a4", ""):
            with pytest.raises(StoreError, match="4 to 8 digits"):
                p.set_pin("bob", bad, 7)
        with pytest.raises(StoreError, match="keypad ID is a number"):
            p.set_pin("bob", "1357", 0)
        with pytest.raises(StoreError, match="no user"):
            p.set_pin("carol", "1111", 9)
        p.set_pin("bob", "2468", 7)                  # the same PIN as alice's: fine
        p.set_pin("alice", "1111")                   # a new PIN, the ID kept
        assert p.check(42, "1111") == ("alice", True) and p.check(42, "2468")[1] is False
        rec = p.export()
        assert [(r["user_id"], r["keypad_id"]) for r in rec] == [("alice", 42), ("bob", 7)]
        assert rec[0]["n"] == 2 ** 14 and len(bytes.fromhex(rec[0]["salt"])) == 16
        assert rec[0]["salt"] != rec[1]["salt"]
        raw = b"".join(bytes(r[0]) for r in st.conn.execute("SELECT sealed FROM pins"))
        assert b"2468" not in raw and rec[0]["hash"].encode() not in raw     # sealed
        st.delete_user("bob")
        assert p.holders() == 1 and p.check(7, "2468") == (None, False)
        assert p.remove_pin("alice") and p.check(42, "1111") == (None, False)
        st.verify()


def test_set_pin_cli_reads_stdin_audits_and_pin_plus_palm_mode(tmp_path, capsys, monkeypatch):
    from conftest import write_toml
    from device.cli import main
    cfg, st = _store(tmp_path)
    st.close()
    c = ["--config", str(write_toml(tmp_path / "p.toml", cfg))]
    assert main(["users", "mode", "alice", "--mode", "pin+palm", *c]) == 2
    assert "palmgate users set-pin alice" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("2468\n"))
    assert main(["users", "set-pin", "alice", "--keypad-id", "42", "--operator", "installer",
                 *c]) == 0
    r = json.loads(capsys.readouterr().out)
    assert (r["pin"], r["keypad_id"]) == ("set", 42)
    monkeypatch.setattr("sys.stdin", io.StringIO("1357\n"))
    assert main(["users", "set-pin", "bob", "--keypad-id", "42", *c]) == 2   # alice's ID
    assert "keypad ID 42 already belongs to 'alice'" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["users", "set-pin", "bob", *c]) == 2
    assert "never on the command line" in capsys.readouterr().err
    assert main(["users", "mode", "alice", "--mode", "pin+palm", *c]) == 0
    capsys.readouterr()
    assert main(["users", "remove-pin", "alice", *c]) == 2        # would lock alice out
    assert "set --mode palm or --mode card+palm first" in capsys.readouterr().err
    assert main(["users", "show", "alice", *c]) == 0
    show = json.loads(capsys.readouterr().out)
    assert show["pin"] is True and show["keypad_id"] == 42
    assert show["access_mode"] == "pin+palm"
    assert main(["audit", "export", "--out", str(tmp_path / "a.jsonl"), *c]) == 0
    text = (tmp_path / "a.jsonl").read_text()
    recs = [json.loads(x) for x in text.splitlines()]
    pin_set = [r for r in recs if r["kind"] == "pin_set"]
    assert len(pin_set) == 1 and pin_set[0]["operator"] == "installer"
    assert "2468" not in text


def test_gate_keypad_pin_claims_and_pin_plus_palm(tmp_path, tiny_models, synthetic_bursts):
    pytest.importorskip("gpiozero")
    from gpiozero.pins.mock import MockConnectedPin, MockFactory
    from device.gate.enrol import enrol_user
    from device.gate.gate import Gate, open_store
    from device.gate.pipeline import Pipeline
    from device.relays.factory import MemoryRelay
    from device.relays.wiegand import WiegandOutput
    from device.sources.replay import Burst
    from device.store.credentials import Credentials
    from device.store.pins import Pins
    f = MockFactory()
    # a keypad reader wired to the gate's inputs 12/13 (driven from pins 22/23), 8-bit keys
    f.pin(22, pin_class=MockConnectedPin, input_pin=f.pin(12))
    f.pin(23, pin_class=MockConnectedPin, input_pin=f.pin(13))
    keypad = WiegandOutput(22, 23, pin_factory=f, frame_timeout_ms=100)
    cfg = gate_config(tmp_path, tiny_models,
                      wiegand={"input_d0_pin": 12, "input_d1_pin": 13,
                               "frame_timeout_ms": 100.0})

    def type_pin(keypad_id, digits):
        for k in f"{keypad_id}#{digits}#":
            keypad.send_bits(encode_key(k, 8))

    relay = MemoryRelay()
    try:
        pipe = Pipeline(cfg)
        try:
            with open_store(cfg) as st:
                for i in (0, 1):
                    enrol_user(pipe, st, f"person-{i:03d}", synthetic_bursts["enrol"][i])
                Pins(st).set_pin("person-001", "2468", 11)
                Credentials(st).set_mode("person-001", "pin+palm")
        finally:
            pipe.close()
        with Gate(cfg, relay=relay, pin_factory=f) as gate:
            d = gate.present(synthetic_bursts["genuine"][1])            # person 1, no PIN
            assert not d.opened and d.reason == "pin_required"
            type_pin(11, "2468")
            assert _wait(lambda: gate.door._card is not None)
            assert "2468" not in repr(gate.door._card)
            assert gate.present(Burst([np.full((480, 640, 3), 128, np.uint8)] * 3,
                                      np.full((128, 128), 128, np.uint8), {})).idle
            d = gate.present(synthetic_bursts["genuine"][1])
            assert d.opened and d.user_id == "person-001", d.summary()
            assert gate.door._card is None                              # the PIN was used
            before = gate.limiter.failures
            type_pin(11, "1357")                                        # a wrong PIN
            assert _wait(lambda: gate.door._card is not None)
            d = gate.present(synthetic_bursts["genuine"][1])
            assert (d.decision, d.reason) == ("deny", "wrong_pin")
            assert gate.limiter.failures == before + 1                  # toward the lockout
            assert gate.limiter.user_failures("person-001") == 1        # of the ID's holder
            assert gate.door._card is None                              # one deny per entry
            type_pin(12, "2468")                                        # nobody's ID
            assert _wait(lambda: gate.door._card is not None)
            d = gate.present(synthetic_bursts["genuine"][1])
            assert (d.decision, d.reason) == ("deny", "wrong_pin")      # the same reason
            assert gate.limiter.failures == before + 2
            type_pin(11, "2468")                                        # person 1's PIN,
            assert _wait(lambda: gate.door._card is not None)           # person 0's palm
            d = gate.present(synthetic_bursts["genuine"][0])
            assert not d.opened and d.reason == "no_match"
            d = gate.present(synthetic_bursts["genuine"][0])            # palm-only user
            assert d.opened and d.user_id == "person-000"
            assert sum(1 for _, _, on in relay.events if on) == 2
            # a frame the loaded CPU held up mid-way reaches the reader in pieces, which it
            # throws away (length/parity errors) while the keypad sends the frame again whole
            errs = gate.door.reader.errors
            assert not errs or keypad.resends, errs
            assert all("not a known format" in e or "parity" in e for e in errs), errs
        with open_store(cfg) as st:
            recs = [r.payload for r in st.audit.records()]
        assert [r["reason"] for r in recs if r.get("decision") == "deny"][:2] == \
            ["pin_required", "wrong_pin"]
    finally:
        keypad.close()


def test_backup_and_restore_carry_the_pins(tmp_path):
    from device.gate.gate import open_store
    from device.ops.backup import backup_unit, restore_unit
    from device.store.pins import Pins
    cfg, st = _store(tmp_path / "a")
    with st:
        Pins(st).set_pin("alice", "2468", 42)
        backup_unit(st, tmp_path / "unit.bak", "correct horse")
    spare = gate_config(tmp_path / "b")
    with open_store(spare) as st2:
        restore_unit(st2, tmp_path / "unit.bak", "correct horse")
        p = Pins(st2)
        assert p.check(42, "2468") == ("alice", True) and p.check(42, "1111")[1] is False
        assert p.keypad_id("bob") is None
