"""Faults of the site fleet found in review, on a real Mosquitto with the real service and
sync clients (the fixtures of tests/test_site_e2e.py):

- a gate that loses a user through ``set_gates`` (revoked there) and regains them gets them
  back: a recovery item (its ciphertext was pruned once delivered), palm and sensor templates;
- a message the service refuses leaves its database as it was (one savepoint per message or
  admin call): no version used up, no half-written audit chain, no ghost change to a gate;
- ``recover_items`` skips a recovery copy that does not open (reported, and recorded at the
  service) and recovers the others; that user is not enrolled on the gate."""
from __future__ import annotations

import hashlib
import os
import time

import pytest

from test_site_e2e import Site, person, score_on, wait          # skips without a broker

from device.protect.defaults import DEFAULT_CONFIG              # noqa: E402
from device.site import messages as M                           # noqa: E402
from device.site import provision as P                          # noqa: E402
from device.site import service as S                            # noqa: E402
from device.site.recover import recover_items                   # noqa: E402
from device.site.tls import use_tls                             # noqa: E402
from device.store.audit import _GENESIS, _canonical             # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    s = Site(tmp_path_factory.mktemp("site_faults"))
    yield s
    s.close()


def _sensor(site, g, uid):
    from device.store import sensor_templates as ST
    return site.gates[g].submit(lambda s: ST.read(s.store, uid)).result(10)


def _q(site, sql, *a):
    return site.svc.call(lambda s: s.db.execute(sql, a).fetchall())


def _delivered(site, uid, g):
    return _q(site, "SELECT 1 FROM delivered WHERE user_id=? AND gate_id=?", uid, g)


def _recover(site, gate, skipped=None, corrupt=None):
    info = P.load_site(site.dir)
    items = site.svc.call(S.recovery_items, gate)
    for it in items:
        if it["user_id"] == corrupt:        # one copy damaged (a bad disk page, a bad restore)
            b = bytearray.fromhex(it["blob"])
            b[len(b) // 2] ^= 0x55
            it["blob"] = b.hex()
    rk = P.recovery_key(site.dir / "recovery" / "recovery.key")
    kw = {} if skipped is None else {"skipped": skipped}
    sealed = recover_items(rk, "hq", gate, bytes.fromhex(info["gates"][gate]["pub"]), items,
                           DEFAULT_CONFIG, **kw)
    return items, sealed, site.svc.call(S.add_recovered, gate, sealed, *(
        [] if skipped is None else [skipped]))


def _lose_and_regain(site, uid, sens):
    site.svc.call(S.set_gates, uid, ["g1"])
    wait(lambda: uid not in site.users("g2"), what=f"{uid} revoked on g2")
    r = site.svc.call(S.set_gates, uid, None)
    items, _, sent = _recover(site, "g2")
    assert [i["user_id"] for i in items] == [uid]
    assert r["recover"] == ["g2"]               # no ciphertext left for g2: recovery
    assert sent["sent"] == 1
    wait(lambda: uid in site.users("g2"), what=f"{uid} back on g2")
    assert _sensor(site, "g2", uid) == sens
    assert score_on(site.gates["g2"], uid, person(70, n=1, noise=0.05)[0]) > 0.99


def test_a_gate_that_loses_and_regains_a_user_gets_them_back(site):
    sens = [os.urandom(200), os.urandom(300)]
    site.gates["g1"].enrol_local("ivy", person(70), sensor=sens).result(10)
    wait(lambda: "ivy" in site.users("g2") and _delivered(site, "ivy", "g2"),
         what="ivy delivered to g2")
    assert _sensor(site, "g2", "ivy") == sens
    _lose_and_regain(site, "ivy", sens)


def test_lost_while_offline_then_regained(site):
    """g2 offline: the enrolment and the revocation wait for it; once both are applied the
    service must not count the enrolment as delivered (the gate revoked it after)."""
    sens = [os.urandom(250)]
    g2 = site.gates["g2"]
    g2.go_offline()
    try:
        site.gates["g1"].enrol_local("ivo", person(70), sensor=sens).result(10)
        wait(lambda: _q(site, "SELECT 1 FROM users WHERE user_id='ivo'"), what="ivo uploaded")
        site.svc.call(S.set_gates, "ivo", ["g1"])
    finally:
        g2.go_online()
    n = site.svc.call(lambda s: s.db.execute(
        "SELECT next_gseq FROM gates WHERE gate_id='g2'").fetchone()[0])
    wait(lambda: not _q(site, "SELECT 1 FROM changes WHERE gate_id='g2' AND gseq<=?", n),
         what="g2's changes applied and pruned")
    assert "ivo" not in site.users("g2") and not _delivered(site, "ivo", "g2")
    _lose_and_regain(site, "ivo", sens)


def test_one_bad_recovery_copy_does_not_stop_the_others(site):
    site.gates["g1"].enrol_local("jay", person(71, n=1)).result(10)
    site.gates["g1"].enrol_local("kim", person(72, n=1)).result(10)
    wait(lambda: {"jay", "kim"} <= set(site.users("g2")), what="jay, kim on g2")
    info = P.add_gate(site.dir, "g3")
    site.broker.reload()
    site.svc.call(S.sync_gates)
    site.start_gate("g3")
    items, sealed, sent = _recover(site, "g3", corrupt="jay")
    want = {i["user_id"] for i in items} - {"jay"}
    assert {"kim", "ivy"} <= want
    assert {s["user_id"] for s in sealed} == want and sent["sent"] == len(want)
    wait(lambda: set(site.users("g3")) == want, what="g3 recovered but jay")
    assert "jay" not in site.users("g3")                 # fail secure: not enrolled there
    # jay stays a recovery item for g3; the skip is reported to the caller and recorded
    skipped = []
    items, sealed, sent = _recover(site, "g3", skipped, corrupt="jay")
    assert [i["user_id"] for i in items] == ["jay"] and sealed == []
    assert [s["user_id"] for s in skipped] == ["jay"] and skipped[0]["error"]
    assert sent["sent"] == 0 and sent["skipped"] == ["jay"]
    ev = _q(site, "SELECT text FROM events WHERE kind='recover-skipped'")
    assert any("jay" in t and "g3" in t for (t,) in ev), ev
    assert info["gates"]["g3"]


_STATE = {"meta": "SELECT * FROM meta ORDER BY 1",
          "users": "SELECT * FROM users ORDER BY 1",
          "uploads": "SELECT * FROM uploads ORDER BY 1",
          "numbers": "SELECT gate_id, next_gseq FROM gates ORDER BY 1",
          "recovery": "SELECT * FROM recovery ORDER BY 1",
          "audit_g1": "SELECT * FROM audit WHERE gate_id='g1' ORDER BY 2",
          "cursor_g1": "SELECT audit_seq, audit_hash FROM gates WHERE gate_id='g1'"}


def _db_state(site):
    """What a refused message could have written (other gates' hellos and audit uploads go
    on meanwhile: their rows are left out)."""
    return site.svc.call(lambda s: {k: s.db.execute(q).fetchall() for k, q in _STATE.items()})


def _audit_caught_up(site, g="g1"):
    """Wait until the service holds every audit record of gate ``g``: the earlier tests'
    records still on their way would otherwise change ``audit_<g>`` between two snapshots."""
    gate = site.gates[g]
    wait(lambda: _q(site, "SELECT audit_seq FROM gates WHERE gate_id=?", g)
         == [(gate.submit(lambda s: s.store.audit.verify()).result(5),)],
         what=f"{g}'s audit records at the service")


def _gate_client(site, g):
    import paho.mqtt.client as mqtt
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-fault-{g}")
    use_tls(c, P.tls_files(site.dir, g))
    c.connect("127.0.0.1", P.load_site(site.dir)["broker"]["port"])
    c.loop_start()
    return c


def test_a_refused_enrolment_uses_up_no_version(site):
    """An enrolment whose header has a bad template count: refused, and the site's version
    counter, users, uploads and change log are as they were; the next one gets the next
    version (no gap reaches a gate)."""
    g1 = site.gates["g1"]
    _, frame = g1.make_upload("lex", person(73, n=1))
    h, body = M.unpack(frame)
    _audit_caught_up(site)
    before, refused = _db_state(site), site.svc.stats["refused"]
    g1.queue_upload(M.pack(dict(h, n="many"), body)).result(10)
    wait(lambda: site.svc.stats["refused"] > refused, what="the upload refused")
    assert _db_state(site) == before
    v0 = int(dict(before["meta"]).get("version", 0))    # no change yet on a site of its own
    _, v = g1.enrol_local("lex", person(73, n=1)).result(10)
    wait(lambda: _q(site, "SELECT version FROM users WHERE user_id='lex'") == [(v0 + 1,)],
         what="lex at the next version")


def test_a_refused_admin_call_writes_nothing(site):
    """``add_recovered`` with a good item then a malformed one: the caller gets the error and
    nothing of the first item is written or sent."""
    eid = _q(site, "SELECT enrol_id FROM users WHERE user_id='kim'")[0][0]
    _audit_caught_up(site)
    before = _db_state(site)
    with pytest.raises(ValueError):
        site.svc.call(S.add_recovered, "g2", [
            {"user_id": "kim", "enrol_id": eid, "sealed": "00" * 40},
            {"user_id": "kim", "enrol_id": eid, "sealed": "not hex"}])
    assert _db_state(site) == before
    assert not _q(site, "SELECT 1 FROM sealed WHERE blob=?", b"\0" * 40)


def test_a_refused_audit_upload_leaves_no_half_chain(site):
    """Records of one upload: a good next link, then a malformed one. Refused as a whole: the
    good link is not kept beside a cursor that does not count it (the gate's real record of
    that number would then kill the service thread on a duplicate key)."""
    g1 = site.gates["g1"]
    _audit_caught_up(site)
    g1.go_offline()                 # its next record is the number forged below
    try:
        seq, prev = _q(site, "SELECT audit_seq, audit_hash FROM gates WHERE gate_id='g1'")[0]
        prev = bytes(prev) if prev else _GENESIS
        s, ts, kind, payload = seq + 1, time.time(), "decision", '{"decision":"open"}'
        good = [s, ts, kind, payload, prev.hex(),
                hashlib.sha256(prev + _canonical(s, ts, kind, payload)).hexdigest()]
        bad = [s + 1, ts, kind, payload, "zz", "zz"]
        before, refused = _db_state(site), site.svc.stats["refused"]
        c = _gate_client(site, "g1")
        c.publish(M.up_topic("hq", "g1", "audit"), M.pack({"from": "g1", "records":
                                                           [good, bad]}), qos=1
                  ).wait_for_publish(5)
        c.loop_stop()
        c.disconnect()
        wait(lambda: site.svc.stats["refused"] > refused, what="the audit upload refused")
        assert _db_state(site) == before
    finally:
        g1.go_online()
    g1.submit(lambda s: s.store.audit.append("decision", decision="deny", terminal="g1")
              ).result(5)
    wait(lambda: _q(site, "SELECT audit_seq, audit_error FROM gates WHERE gate_id='g1'")
         == [(g1.submit(lambda s: s.store.audit.verify()).result(5), None)],
         what="g1's real records accepted")
    assert site.svc.thread.is_alive()
