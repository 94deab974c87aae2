"""Review of the site's sensor-template transport: the sensor part of an enrolment cannot be
stripped (the user would be ``not_enrolled``, unchecked under ``when_enrolled``, while the
palm templates still apply) nor swapped for another record of the same enrolment. The
upload is not authenticated to the service (the broker could edit it) and a gate holding
the content key could make another record under it: the palm ciphertexts and the recovery
copy bind the record's digest (docs/site.md)."""
from __future__ import annotations


import os

import numpy as np
import pytest

from device.site import messages as M
from device.site import sensor_wire as SW
from device.site.sealing import SealError, new_private, public_of, seal

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed")


def _gates():
    from device.protect.defaults import DEFAULT_CONFIG
    from device.site.client import GateSync
    a, b, svc, rk = new_private(), new_private(), new_private(), new_private()
    g1 = GateSync("hq", "g1", "127.0.0.1", 1, ("", "", ""), a, public_of(svc), None,
                  "/nonexistent", DEFAULT_CONFIG)
    g2 = GateSync("hq", "g2", "127.0.0.1", 1, ("", "", ""), b, public_of(svc), None,
                  "/nonexistent", DEFAULT_CONFIG)
    g1.roster = {"gates": {"g2": public_of(b).hex()}, "recovery_pub": public_of(rk).hex()}
    x = np.random.default_rng(0).standard_normal((1, 49, 16))
    return g1, g2, a, rk, x / np.linalg.norm(x, axis=-1, keepdims=True)


def _upload(g1, plain, sensor):
    eid, frame = g1.make_upload("alice", plain, sensor=sensor)
    h, body = M.unpack(frame)
    body, sec = SW.split_upload(h, body)
    n = int.from_bytes(body[:4], "big")
    return eid, h, body[4:4 + n], M.unpack_sealed_map(body[4 + n:]), sec


def _change(eid, a):
    return {"gseq": 1, "kind": "enrol", "user_id": "alice", "version": 2, "from": "g1",
            "from_pub": public_of(a).hex(), "enrol_id": eid}


def test_a_change_stripped_of_its_sensor_part_does_not_open():
    g1, g2, a, _, plain = _gates()
    eid, _, _, sealed, (record, _, wrapped) = _upload(g1, plain, [b"s" * 40, b"t" * 40])
    h = _change(eid, a)
    tmpls, sens = g2._open_templates(*SW.change_body(h, sealed["g2"], wrapped["g2"], record))
    assert len(tmpls) == 1 and sens == ("nir_palm_patch", [b"s" * 40, b"t" * 40])
    # the broker (or the service) drops the upload's sensor section: the palm part alone
    with pytest.raises(SealError):
        g2._open_templates(h, sealed["g2"])
    # an honest older upload (no sensor templates) still opens: not_enrolled at g2
    eid0, _, _, sealed0, sec0 = _upload(g1, plain, None)
    assert sec0 is None and g2._open_templates(_change(eid0, a), sealed0["g2"])[1] is None


def test_another_record_under_the_same_content_key_does_not_open():
    """A gate that received the content key, with the service, makes a record of its own
    choosing for the same enrolment: the palm ciphertext names the enrolling gate's."""
    from device.site.sealing import open_sealed
    g1, g2, a, rk, plain = _gates()
    eid, _, _, sealed, (record, rec_key, wrapped) = _upload(g1, plain, [b"s" * 40])
    ck = open_sealed(rk, rec_key, SW.recovery_key_ad("hq", "alice", eid))   # a holder's
    forged = seal(ck, SW.encode([b"m" * 40]), SW.record_ad("hq", "alice", eid))
    assert SW.open_record(pair_of(g2, a), wrapped["g2"], forged, "hq", "g1", "g2", "alice",
                          eid) == ("nir_palm_patch", [b"m" * 40])
    with pytest.raises(SealError):
        g2._open_templates(*SW.change_body(_change(eid, a), sealed["g2"], wrapped["g2"],
                                           forged))


def pair_of(g, a):
    from device.site.sealing import pair_key
    return pair_key(g.key, public_of(a), "seal")


def test_recovery_refuses_a_copy_stripped_of_its_sensor_key():
    from device.protect.defaults import DEFAULT_CONFIG
    from device.site.recover import recover_items
    g1, _, _, rk, plain = _gates()
    eid, _, rec, _, (record, rec_key, _) = _upload(g1, plain, [b"s" * 40])
    g3 = new_private()
    item = {"user_id": "alice", "enrol_id": eid, "blob": rec.hex(), "sensor_key": rec_key.hex(),
            "sensor_digest": SW.record_digest(record)}
    out = recover_items(rk, "hq", "g3", public_of(g3), [item], DEFAULT_CONFIG)
    assert out[0]["sensor_key"]
    for stripped in ({k: v for k, v in item.items() if k not in ("sensor_key",
                                                                  "sensor_digest")},
                     {k: v for k, v in item.items() if k != "sensor_key"}):
        skipped = []                # refused: skipped (not recovered), and reported
        assert recover_items(rk, "hq", "g3", public_of(g3), [stripped, item], DEFAULT_CONFIG,
                             skipped=skipped)[0]["sensor_key"]
        assert [x["user_id"] for x in skipped] == ["alice"]


@pytest.mark.parametrize("head", [b'{"kind":"nir_palm_patch","n":Infinity}',
                                  b'{"kind":"nir_palm_patch","n":1e400}',
                                  b"[" * 20000 + b"]" * 20000])
def test_a_record_whose_header_lies_is_refused_not_raised(head):
    """A record's header is the enrolling gate's (under its content key): one that is not a
    number, or nests without end, is a refused change, not an exception out of the gate's
    sync loop (each re-delivery would raise again)."""
    import struct
    from types import SimpleNamespace

    from device.site.sealing import pair_key
    g1, g2, a, _, plain = _gates()
    bad = b"PGS1" + struct.pack("<H", len(head)) + head + struct.pack("<I", 3) + b"abc"
    with pytest.raises(ValueError):
        SW.decode(bad)
    ck, k = os.urandom(32), pair_key(a, public_of(g2.key), "seal")
    record = seal(ck, bad, SW.record_ad("hq", "alice", "e1"))
    wrapped = seal(k, ck, SW.key_ad("hq", "g1", "g2", "alice", "e1"))
    from device.site.templates import encode_for_gate
    palm = seal(k, encode_for_gate(plain, g1.config), SW.bind(
        M.template_ad("hq", "g1", "g2", "alice", "e1"), SW.record_digest(record)))
    msg = SimpleNamespace(payload=M.pack_tagged(g2.k_tag, *SW.change_body(
        _change("e1", a), palm, wrapped, record)))
    opened, body = g2._open_change(msg)
    assert opened["kind"] == "unopened" and body is None


def test_length_headers_that_are_not_counts_are_refused():
    from device.site.messages import MessageError
    for n in (float("inf"), 1.5, "12", True, -4, 0, 10 ** 12, [3]):
        with pytest.raises(MessageError):
            SW.split_upload({SW.HEADER_UPLOAD: n}, b"x" * 64)
        with pytest.raises(MessageError):
            SW.split_change({SW.HEADER_CHANGE: n}, b"x" * 64)


def test_the_service_survives_an_upload_whose_counts_are_infinite(tmp_path):
    """An upload is the sending gate's (or the broker's) to write: ``"n": Infinity`` or
    ``"sensor_bytes": Infinity`` (JSON 1e999) is a refused upload, and the service thread
    goes on (it died on the OverflowError, and the upload came again on its restart)."""
    import shutil
    import time

    import paho.mqtt.client as mqtt

    from device.site import provision as P
    from device.site import service as S
    from device.site.broker import Broker, free_port
    from device.site.tls import use_tls
    if not (shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto")):
        pytest.skip("mosquitto not installed")
    P.init_site(tmp_path / "site", "hq", ("g1", "g2"), port=free_port())
    broker = Broker(tmp_path / "site").start()
    svc = S.SiteService(tmp_path / "site").start()
    try:
        assert svc.connected.wait(20), "the service did not reach the broker"
        info = P.load_site(tmp_path / "site")
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-infinite")
        use_tls(c, P.tls_files(tmp_path / "site", "g1"))
        c.connect("127.0.0.1", info["broker"]["port"])
        c.loop_start()
        sec = SW._u32(b"r") + SW._u32(b"k") + M.pack_sealed_map({"g2": b"w"})
        for i, (extra, tail) in enumerate((({"n": 1e999}, b""),
                                           ({"n": 1, SW.HEADER_UPLOAD: 1e999}, b""),
                                           ({"n": 1}, b""),       # taken: the event says so
                                           ({"n": 1, SW.HEADER_UPLOAD: len(sec)}, sec))):
            head = dict({"enrol_id": f"e-inf{i}", "user_id": "mallory", "from": "g1",
                         "ts": time.time()}, **extra)
            frame = M.pack(head, (0).to_bytes(4, "big") + tail)     # JSON: Infinity
            c.publish(M.up_topic("hq", "g1", "enrol"), frame, qos=1).wait_for_publish(5)
        c.loop_stop()
        c.disconnect()
        end = time.time() + 20
        while time.time() < end and svc.thread.is_alive():
            if svc.call(lambda s: s.stats.get("refused", 0), timeout=5) >= 2:
                break
            time.sleep(0.05)
        ev = svc.call(lambda s: s.db.execute("SELECT kind, text FROM events WHERE kind IN "
                                             "('refused', 'enrol')").fetchall())
        assert svc.call(lambda s: s.stats.get("refused", 0), timeout=5) == 2, ev
        while time.time() < end and len(ev) < 4:
            time.sleep(0.05)
            ev = svc.call(lambda s: s.db.execute("SELECT kind, text FROM events WHERE kind "
                                                 "IN ('refused', 'enrol')").fetchall())
        enrols = [t for k, t in ev if k == "enrol"]
        assert len(enrols) == 2 and "sensor templates: none" in enrols[0] and \
            "sensor templates: keys for 1 gates" in enrols[1], ev
    finally:
        svc.stop()
        broker.stop()
