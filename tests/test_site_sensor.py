"""The users' sensor templates over a site (device/site/sensor_wire.py, sensor_keep.py): the
wire record and its sealing; then on a real Mosquitto, with the real pipeline and sealed
stores, an enrolment at gate g1 reaches g2 with its sensor templates and g2's identity stage
checks them, the enrolling gate keeps them when the service's version replaces its own, a
gate added later is recovered with them, and an older upload without them still applies
(the user is then not_enrolled). Skipped only where mosquitto or paho-mqtt cannot be had."""
from __future__ import annotations

import os
import shutil

import pytest

from device.site import sensor_wire as SW
from device.site.sealing import SealError, new_private, pair_key, public_of, seal

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed")
HAVE_BROKER = bool(shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto"))


def test_the_record_round_trips_and_its_seal_binds_user_gate_and_enrolment():
    blobs = [os.urandom(300), os.urandom(17)]
    rec = SW.encode(blobs)
    assert SW.decode(rec) == ("nir_palm_patch", blobs)
    assert SW.decode(SW.encode(blobs, "xray_bone_patch")) == ("xray_bone_patch", blobs)
    for bad in (rec + b"x", rec[:-1], b"PGS1" + rec[4:6], SW.encode(blobs, "nir_palm_patch")[:8]):
        with pytest.raises(ValueError):
            SW.decode(bad)
    with pytest.raises(ValueError):
        SW.encode([])
    # sealed once, its key wrapped to each gate and to the recovery key
    a, b, c, r = new_private(), new_private(), new_private(), new_private()
    keys = {"g2": pair_key(a, public_of(b), "seal"), "g3": pair_key(a, public_of(c), "seal")}
    sec = SW.upload_section("hq", "g1", "alice", "e1", blobs, keys, public_of(r))
    palm, (record, rec_key, wrapped) = SW.split_upload({SW.HEADER_UPLOAD: len(sec)},
                                                       b"palm" + sec)
    assert palm == b"palm" and sorted(wrapped) == ["g2", "g3"]
    assert len(sec) < 2 * len(record)               # one record, not one a gate
    h, body = SW.change_body({"gseq": 1}, b"palm", wrapped["g2"], record)
    assert SW.split_change(h, body) == (b"palm", (wrapped["g2"], record))
    k2 = pair_key(b, public_of(a), "seal")
    assert SW.open_record(k2, wrapped["g2"], record, "hq", "g1", "g2", "alice", "e1") == \
        ("nir_palm_patch", blobs)
    for other in (("hq", "g1", "g2", "bob", "e1"), ("hq", "g1", "g3", "alice", "e1"),
                  ("hq", "g1", "g2", "alice", "e2"), ("hq", "g4", "g2", "alice", "e1")):
        with pytest.raises(SealError):
            SW.open_record(k2, wrapped["g2"], record, *other)
    with pytest.raises(SealError):                  # g3's key is g3's
        SW.open_record(k2, wrapped["g3"], record, "hq", "g1", "g2", "alice", "e1")
    # a change or upload of the older format has no sensor part
    assert SW.split_change({}, b"palm") == (b"palm", None)
    assert SW.split_upload({}, b"body") == (b"body", None)
    assert SW.change_body({"gseq": 1}, b"palm", None, None) == ({"gseq": 1}, b"palm")


def test_a_gate_refuses_a_change_whose_sensor_record_is_not_its_users():
    """The service keeps the sealed records and could attach one user's to another's change:
    the AD (user, enrolment) refuses it, and the gate records the whole change as not opened
    (the palm templates are not written without their sensor templates)."""
    from types import SimpleNamespace

    import numpy as np

    from device.protect.defaults import DEFAULT_CONFIG
    from device.site import messages as M
    from device.site.client import GateSync
    from device.site.templates import encode_for_gate
    a, b, svc = new_private(), new_private(), new_private()
    gate = GateSync("hq", "g2", "127.0.0.1", 1, ("", "", ""), b, public_of(svc), None,
                    "/nonexistent", DEFAULT_CONFIG)
    k = pair_key(a, public_of(b), "seal")
    x = np.random.default_rng(0).standard_normal((1, 49, 16))
    h = {"gseq": 1, "kind": "enrol", "user_id": "alice", "version": 3, "from": "g1",
         "from_pub": public_of(a).hex(), "enrol_id": "e1"}
    sec = SW.upload_section("hq", "g1", "alice", "e1", [b"a" * 10], {"g2": k}, public_of(svc))
    record, _, wrapped = SW.split_upload({SW.HEADER_UPLOAD: len(sec)}, sec)[1]
    blob = encode_for_gate(x / np.linalg.norm(x, axis=-1, keepdims=True), DEFAULT_CONFIG)
    ad = M.template_ad("hq", "g1", "g2", "alice", "e1")
    palm = seal(k, blob, SW.bind(ad, SW.record_digest(record)))   # names its record
    tmpls, sens = gate._open_templates(*SW.change_body(h, palm, wrapped["g2"], record))
    assert len(tmpls) == 1 and sens == ("nir_palm_patch", [b"a" * 10])
    assert gate._open_templates(h, seal(k, blob, ad))[1] is None  # an older change
    sec = SW.upload_section("hq", "g1", "bob", "e0", [b"b" * 10], {"g2": k}, public_of(svc))
    record, _, wrapped = SW.split_upload({SW.HEADER_UPLOAD: len(sec)}, sec)[1]
    msg = SimpleNamespace(payload=M.pack_tagged(gate.k_tag, *SW.change_body(
        h, palm, wrapped["g2"], record)))
    opened, body = gate._open_change(msg)
    assert opened["kind"] == "unopened" and body is None


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Sites g1, g2 with the pipeline's protection; a second store connection per gate for
    the pipeline (as ``palmgate run`` has: the gate and its sync client)."""
    if not HAVE_BROKER:
        pytest.skip("mosquitto not installed")
    from device.gate.pipeline import Pipeline
    from device.site import provision as P
    from device.site import service as S
    from device.site.broker import Broker, free_port
    from device.site.client import GateSync
    from device.store.store import TemplateStore
    from tests.conftest import gate_config
    root = tmp_path_factory.mktemp("sitesid")
    pipe = Pipeline(gate_config(root / "cfg"))
    site = root / "site"
    P.init_site(site, "hq", ("g1", "g2"), port=free_port())
    broker = Broker(site).start()
    svc = S.SiteService(site, resend_after_s=1.0, window=16).start()
    gates, keys = {}, {}

    def start_gate(g):
        keys[g] = os.urandom(32)
        path = root / f"{g}.db"
        info = P.load_site(site)
        s = GateSync("hq", g, "127.0.0.1", info["broker"]["port"], P.tls_files(site, g),
                     P.gate_key(site, g), bytes.fromhex(info["service_pub"]),
                     lambda: TemplateStore(path, device_key=keys[g]), root / f"{g}.sync.db",
                     pipe.protect_config, pipe.extractor.importance, hello_s=0.5)
        gates[g] = s.start()
        _wait(lambda: g in (s.roster.get("gates") or {}), what=f"{g} roster")
        return s

    def store(g):
        return TemplateStore(root / f"{g}.db", device_key=keys[g])

    for g in ("g1", "g2"):
        start_gate(g)
    # g2's gate: its pipeline on its own store connection from before any enrolment, as a
    # running gate beside its sync client (the identity stage keeps the rows' tags since)
    running = {"g2": (Pipeline(gate_config(root / "cfg2")), store("g2"))}
    running["g2"][0].attach_store(running["g2"][1])
    yield {"pipe": pipe, "gates": gates, "svc": svc, "site": site, "store": store,
           "start_gate": start_gate, "broker": broker, "running": running, "root": root,
           "new_pipe": lambda: Pipeline(gate_config(root / "cfg3"))}
    for p, st in running.values():
        p.close()
        st.close()
    for s in gates.values():
        s.stop()
    svc.stop()
    broker.stop()
    pipe.close()


def _wait(pred, timeout=30.0, what="condition"):
    from test_site_e2e import wait                 # here: that module skips without a broker
    return wait(pred, timeout, what)


def _sensor(sync, uid):
    from device.store import sensor_templates as ST
    return sync.submit(lambda s: ST.read(s.store, uid)).result(10)


def _version(sync, uid):
    """The service's version of ``uid`` that the gate has applied (its sync state)."""
    def f(s):
        r = s.db.execute("SELECT version FROM users WHERE user_id=?", (uid,)).fetchone()
        return r[0] if r else 0
    return sync.submit(f).result(10)


def _service_version(svc, uid):
    return svc.call(lambda s: s.db.execute("SELECT version FROM users WHERE user_id=?",
                                           (uid,)).fetchone()[0])


def _decide(f, g, burst):
    """A decision of gate ``g``'s running pipeline (started on first use), its gallery
    reloaded from its store."""
    if g not in f["running"]:
        f["running"][g] = (f["new_pipe"](), f["store"](g))
        f["running"][g][0].attach_store(f["running"][g][1])
    pipe, st = f["running"][g]
    pipe.load_gallery(st)
    return pipe.decide(burst)


def test_an_enrolment_reaches_the_other_gate_with_its_sensor_templates(fleet,
                                                                       synthetic_bursts):
    from types import SimpleNamespace

    from device.gate.enrol import enrol_user
    from device.site import provision as P
    from device.site.client import outbox_hook
    b, g1, g2 = synthetic_bursts, fleet["gates"]["g1"], fleet["gates"]["g2"]
    site, info = fleet["site"], P.load_site(fleet["site"])
    ca, crt, key = P.tls_files(site, "g1")
    cfg = SimpleNamespace(site=SimpleNamespace(
        site="hq", gate_id="g1", broker_host="127.0.0.1", broker_port=info["broker"]["port"],
        ca_file=ca, cert_file=crt, cert_key_file=key,
        key_file=str(site / "gates" / "g1" / "site.key"), service_pub=info["service_pub"],
        state=str(fleet["root"] / "g1.sync.db")), liveness=SimpleNamespace(sensor="nir"))
    outbox = outbox_hook(cfg, fleet["pipe"].protect_config, fleet["pipe"].extractor.importance)
    sent = {}

    def hook(uid, plain, label="", sensor=None):   # palmgate enroll's: into g1's sync outbox
        sent[uid] = (plain, sensor)
        outbox(uid, plain, label, sensor=sensor)

    st1 = fleet["store"]("g1")
    try:
        for uid, i in (("alice", 0), ("bob", 1)):
            r = enrol_user(fleet["pipe"], st1, uid, b["enrol"][i], site=hook)
            assert r["sensor_templates"] == 2 == len(sent[uid][1])
    finally:
        st1.close()
    for uid in ("alice", "bob"):
        # g2 has them; g1 too once the service's version (which replaces its own) is applied
        _wait(lambda: len(_sensor(g2, uid)) == 2, what=f"{uid}'s sensor templates on g2")
        assert _sensor(g2, uid) == sent[uid][1]
        v = _service_version(fleet["svc"], uid)
        _wait(lambda: _version(g1, uid) == v and _version(g2, uid) == v, what="applied")
        assert _sensor(g1, uid) == sent[uid][1] == _sensor(g2, uid)
    rec = g2.submit(lambda s: s.store.conn.execute(
        "SELECT payload FROM audit WHERE kind IN ('enrol', 're_enrol') AND payload LIKE "
        "'%alice%'").fetchall()).result(10)
    assert any('"sensor_templates":2' in p for (p,) in rec), rec
    # g2's identity stage checks the site's sensor templates
    d = _decide(fleet, "g2", b["genuine"][0])
    assert (d.decision, d.user_id, d.sensor_identity) == ("open", "alice", "checked"), d.reason
    assert d.hand_size == "checked"          # the size travelled with the sealed templates
    # bob re-enrolled from g1 with alice's sensor templates (another hand under the sensor
    # at enrolment): g2 replaces his and his own hand is now denied sensor_identity
    old = _service_version(fleet["svc"], "bob")
    g1.enrol_local("bob", sent["bob"][0], sensor=sent["alice"][1]).result(10)
    _wait(lambda: _service_version(fleet["svc"], "bob") > old, what="bob re-enrolled")
    v = _service_version(fleet["svc"], "bob")
    _wait(lambda: _version(g2, "bob") == v, what="bob's new version on g2")
    assert _sensor(g2, "bob") == sent["alice"][1]
    d = _decide(fleet, "g2", b["genuine"][1])
    assert (d.decision, d.reason, d.user_id, d.sensor_identity) == \
        ("deny", "sensor_identity", "bob", "denied"), (d.reason, d.detail)
    fleet["sent"] = sent


def test_a_gate_added_later_is_recovered_with_them(fleet, synthetic_bursts):
    from device.site import provision as P
    from device.site import service as S
    from device.site.recover import recover_items
    if "sent" not in fleet:
        pytest.skip("needs the enrolments of the test before")
    site, svc = fleet["site"], fleet["svc"]
    info = P.add_gate(site, "g3")
    fleet["broker"].reload()
    svc.call(S.sync_gates)
    g3 = fleet["start_gate"]("g3")
    items = svc.call(S.recovery_items, "g3")
    assert all(i["sensor_key"] for i in items)
    rk = P.recovery_key(site / "recovery" / "recovery.key")
    sealed = recover_items(rk, "hq", "g3", bytes.fromhex(info["gates"]["g3"]["pub"]), items,
                           fleet["pipe"].protect_config, fleet["pipe"].extractor.importance)
    svc.call(S.add_recovered, "g3", sealed)
    _wait(lambda: len(_sensor(g3, "alice")) == 2, what="alice recovered on g3")
    assert _sensor(g3, "alice") == fleet["sent"]["alice"][1]
    d = _decide(fleet, "g3", synthetic_bursts["genuine"][0])
    assert (d.decision, d.user_id, d.sensor_identity) == ("open", "alice", "checked"), d.reason


def test_an_older_upload_without_them_still_applies_and_replaces_them(fleet,
                                                                      synthetic_bursts):
    if "sent" not in fleet:
        pytest.skip("needs the enrolments of the test before")
    g1, g2, svc = fleet["gates"]["g1"], fleet["gates"]["g2"], fleet["svc"]
    old = _service_version(svc, "alice")
    # an older gate's upload: no sensor section, no header key
    _, frame = g1.make_upload("alice", fleet["sent"]["alice"][0])
    assert SW.HEADER_UPLOAD.encode() not in frame[:200]
    g1.queue_upload(frame).result(10)
    _wait(lambda: _service_version(svc, "alice") > old, what="the older upload taken")
    v = _service_version(svc, "alice")
    _wait(lambda: _version(g2, "alice") == v, what="applied on g2")
    assert _sensor(g2, "alice") == []          # replaced: none of the earlier enrolment stays
    d = _decide(fleet, "g2", synthetic_bursts["genuine"][0])
    assert (d.decision, d.user_id, d.sensor_identity) == ("open", "alice", "not_enrolled"), \
        d.reason
