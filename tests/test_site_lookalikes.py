"""The X-ray look-alike lists at a site's gates (device/gate/lookalike_upkeep.py): on a real
Mosquitto with the real pipeline and sealed stores, people enrolled at gate g1 reach g2 with
their sensor templates and no list (the sync client has no identity stage); g2's upkeep makes
them, the same lists as g1's enrolments made (which g1 keeps when the service's version of
each enrolment, the same bones, replaces its own), and g2's decisions check the look-alikes. Skipped only where mosquitto or paho-mqtt cannot be had."""
from __future__ import annotations

import os
import shutil
from types import SimpleNamespace

import pytest

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed")
HAVE_BROKER = bool(shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto"))


def _wait(pred, timeout=60.0, what="condition"):
    from test_site_e2e import wait                 # here: that module skips without a broker
    return wait(pred, timeout, what)


def _lists(st):
    from device.gate import lookalikes as LA
    from device.store import lookalike_rows as LR
    return {u: LA.list_from_bytes(b) for u, b in LR.gallery(st, "xray_bone_patch")[1].items()}


def test_received_people_get_their_lists_at_every_gate(tmp_path):
    if not HAVE_BROKER:
        pytest.skip("mosquitto not installed")
    from device.gate.enrol import enrol_user
    from device.gate.lookalike_upkeep import ListUpkeep
    from device.gate.pipeline import Pipeline
    from device.site import provision as P
    from device.site import service as S
    from device.site.broker import Broker, free_port
    from device.site.client import GateSync, outbox_hook
    from device.store import sensor_templates as ST
    from device.store.store import TemplateStore
    from device.synth.source import SyntheticPeople
    from tests.conftest import gate_config
    people = SyntheticPeople(seed=0, views=3, sensor="xray", threads=1)
    enrol = {i: [people.burst(i, "enrol", k) for k in range(2)] for i in (0, 1)}
    xray = {"sensor": "xray", "sensor_identity": "when_enrolled"}
    pipe = Pipeline(gate_config(tmp_path / "cfg", liveness=xray))
    assert pipe.identity.numbers.get("lookalikes"), "the shipped X-ray numbers have the check"
    site = tmp_path / "site"
    P.init_site(site, "hq", ("g1", "g2"), port=free_port())
    broker = Broker(site).start()
    svc = S.SiteService(site, resend_after_s=1.0, window=16).start()
    info = P.load_site(site)
    keys = {g: os.urandom(32) for g in ("g1", "g2")}

    def store(g):
        return TemplateStore(tmp_path / f"{g}.db", device_key=keys[g])

    gates = {}
    try:
        for g in ("g1", "g2"):
            s = GateSync("hq", g, "127.0.0.1", info["broker"]["port"], P.tls_files(site, g),
                         P.gate_key(site, g), bytes.fromhex(info["service_pub"]),
                         lambda g=g: store(g), tmp_path / f"{g}.sync.db",
                         pipe.protect_config, pipe.extractor.importance, hello_s=0.5)
            s.sensor_kind = "xray_bone_patch"
            gates[g] = s.start()
            _wait(lambda: g in (s.roster.get("gates") or {}), what=f"{g} roster")
        ca, crt, key = P.tls_files(site, "g1")
        cfg = SimpleNamespace(site=SimpleNamespace(
            site="hq", gate_id="g1", broker_host="127.0.0.1",
            broker_port=info["broker"]["port"], ca_file=ca, cert_file=crt, cert_key_file=key,
            key_file=str(site / "gates" / "g1" / "site.key"),
            service_pub=info["service_pub"], state=str(tmp_path / "g1.sync.db")),
            liveness=SimpleNamespace(sensor="xray"))
        hook = outbox_hook(cfg, pipe.protect_config, pipe.extractor.importance)
        st1 = store("g1")
        try:        # alice, her twin carol (allowed as a duplicate), bob: lists made at g1
            enrol_user(pipe, st1, "alice", enrol[0], site=hook)
            enrol_user(pipe, st1, "carol", enrol[0][1:], site=hook, allow_duplicate=True)
            enrol_user(pipe, st1, "bob", enrol[1], site=hook)
        finally:
            st1.close()

        def applied(g, uid):
            def f(s):
                r = s.db.execute("SELECT version FROM users WHERE user_id=?",
                                 (uid,)).fetchone()
                return r[0] if r else 0
            want = svc.call(lambda s: s.db.execute("SELECT version FROM users WHERE "
                                                   "user_id=?", (uid,)).fetchone())
            return want is not None and gates[g].submit(f).result(10) == want[0]

        for uid in ("alice", "carol", "bob"):
            for g in ("g1", "g2"):
                _wait(lambda: applied(g, uid), what=f"{uid}'s service version on {g}")
        for g in ("g1", "g2"):
            gates[g].stop()
        at = {g: store(g) for g in ("g1", "g2")}
        try:
            assert _lists(at["g2"]) == {}                   # received: no list at g2
            assert ST.count(at["g2"]) == 5
            # g1 kept the lists its enrolments made when the site's versions of them (the
            # same bones) replaced its own, and says so in the change's audit record
            made = _lists(at["g1"])
            assert set(made) == {"alice", "bob", "carol"}
            assert made["alice"]["carol"] == made["carol"]["alice"] > 0.95
            kept = at["g1"].conn.execute("SELECT COUNT(*) FROM audit WHERE payload LIKE "
                                         "'%\"lookalike_list\":\"kept\"%'").fetchone()[0]
            assert kept == 3
            for g, todo in (("g1", 0), ("g2", 3)):
                out = ListUpkeep(pipe.identity, at[g], {"operator": "test"}).run()
                assert (out["people"], out["people_without_a_list"]) == (3, todo)
            assert _lists(at["g2"]) == made
            g2 = Pipeline(gate_config(tmp_path / "cfg2", liveness=xray))
            try:
                g2.attach_store(at["g2"])
                g2.load_gallery(at["g2"])
                d = g2.decide(people.burst(1, "genuine", 0))
                assert d.user_id == "bob" and d.lookalikes == "checked", d.reason
            finally:
                g2.close()
            for g in ("g1", "g2"):
                at[g].verify()
        finally:
            for st in at.values():
                st.close()
    finally:
        for s in gates.values():
            s.stop()
        svc.stop()
        broker.stop()
        pipe.close()
