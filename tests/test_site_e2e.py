"""A site end to end on a real Mosquitto: two gates (sync clients with their own sealed stores),
the management service, enrol on one gate and open on the other, revoke, a gate offline then
back, a broker restart, the audit chains verified at the service, a gate added later and
recovered. Skipped only where mosquitto or paho-mqtt cannot be had."""
from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed (pip install "
                    "'palmgate[test]')")
if not (shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto")):
    pytest.skip("mosquitto not installed (apt-get install mosquitto; tools/run_tests.sh does)",
                allow_module_level=True)

from device.protect.defaults import DEFAULT_CONFIG               # noqa: E402
from device.site import messages as M                            # noqa: E402
from device.site import provision as P                           # noqa: E402
from device.site import service as S                             # noqa: E402
from device.site.broker import Broker, free_port                 # noqa: E402
from device.site.client import GateSync                          # noqa: E402
from device.site.sealing import pair_key                         # noqa: E402
from device.site.tls import client_context, use_tls              # noqa: E402
from device.store.store import TemplateStore                     # noqa: E402

G, D = 49, 16
DEADLINE = 120.0
"""How long a step may take before the test calls it stuck: generous, so a slow or loaded
machine (CI at load 10) only makes the tests slower; each wait returns as soon as its condition
holds, and a wedged site still fails. Nothing here is a time limit on what is tested."""


def wait(pred, timeout=DEADLINE, what="condition"):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what} ({timeout:g} s)")
        time.sleep(0.05)


def at_service(site, g):
    """Gate ``g``'s row of the service's snapshot (its audit records and chain)."""
    return {x["gate_id"]: x for x in site.svc.call(S.snapshot, timeout=DEADLINE)["gates"]}[g]


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def person(i, n=2, noise=0.0, seed=0):
    """Synthetic palm ``i``: n templates (n, G, d), unit cells; ``noise`` makes a new sample."""
    base = unit(np.random.default_rng([seed, i]).standard_normal((G, D)))
    r = np.random.default_rng([seed, i, int(noise * 1000), n])
    return unit(base[None] + noise * r.standard_normal((n, G, D)))


class Site:
    def __init__(self, root, gates=("g1", "g2")):
        self.root = root
        self.dir = root / "site"
        P.init_site(self.dir, "hq", gates, port=free_port())
        self.broker = Broker(self.dir).start(DEADLINE)
        # a small publishing window: every test below goes through it (device.site.outflow)
        self.svc = S.SiteService(self.dir, resend_after_s=1.0, window=16).start()
        self.gates = {}
        for g in gates:
            self.start_gate(g)

    def start_gate(self, g):
        key = os.urandom(32)
        path = self.root / f"{g}.db"
        info = P.load_site(self.dir)
        s = GateSync("hq", g, "127.0.0.1", info["broker"]["port"], P.tls_files(self.dir, g),
                     P.gate_key(self.dir, g), bytes.fromhex(info["service_pub"]),
                     lambda: TemplateStore(path, device_key=key), self.root / f"{g}.sync.db",
                     DEFAULT_CONFIG, None, hello_s=0.5)
        self.gates[g] = s.start()
        wait(lambda: s.roster.get("gates") and g in s.roster["gates"], what=f"{g} roster")
        return s

    def users(self, g):
        return self.gates[g].submit(lambda s: sorted(u.user_id for u in s.store.users())
                                    ).result(DEADLINE)

    def close(self):
        for s in self.gates.values():
            s.stop()
        self.svc.stop()
        self.broker.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    s = Site(tmp_path_factory.mktemp("site"))
    yield s
    s.close()


def score_on(sync, user_id, query):
    """Best protected score of ``query`` (G, d) against ``user_id``'s templates in the gate's
    own store (the matcher of seed 002: rotate the query with each template's key)."""
    from device.protect.core import match_score

    def f(s):
        return max((match_score(query, t) for _, _, _, t in s.store.templates(user_id)),
                   default=None)
    return sync.submit(f).result(DEADLINE)


def test_enrol_on_one_gate_opens_on_the_other(site):
    g1, g2 = site.gates["g1"], site.gates["g2"]
    eid, v = g1.enrol_local("alice", person(1), label="Alice").result(DEADLINE)
    wait(lambda: "alice" in site.users("g2"), what="alice on g2")
    q = person(1, n=1, noise=0.05)[0]
    imp = person(99, n=1)[0]
    s_gen, s_imp = score_on(g2, "alice", q), score_on(g2, "alice", imp)
    assert s_gen > 0.99 > s_imp
    # g2's templates are not g1's: other keys, and (seed 002) other protected cells
    t1 = g1.submit(lambda s: s.store.templates("alice")).result(DEADLINE)
    t2 = g2.submit(lambda s: s.store.templates("alice")).result(DEADLINE)
    assert not np.allclose(t1[0][3].key, t2[0][3].key)
    st = site.svc.call(S.snapshot)
    assert [u["user_id"] for u in st["users"]] == ["alice"]
    # nothing the service keeps opens without a gate's key: no plaintext anywhere in its file
    raw = open(site.svc.db_path, "rb").read() + open(site.svc.db_path + "-wal", "rb").read()
    assert q.astype("<f4").tobytes()[:64] not in raw


def test_a_burst_goes_through_the_bounded_window(site):
    """120 enrolments at once (240 changes): never more than the window unacknowledged at the
    service, every one applied on both gates."""
    g1 = site.gates["g1"]
    futs = [g1.enrol_local(f"w{i:03d}", person(500 + i, n=1)) for i in range(120)]
    for f in futs:
        f.result(DEADLINE)
    wait(lambda: {f"w{i:03d}" for i in range(120)} <= set(site.users("g2")),
         what="the burst on g2")
    assert 0 < site.svc.flow.peak <= site.svc.window == 16
    for i in range(120):
        site.svc.call(S.revoke, f"w{i:03d}")
    wait(lambda: not {u for u in site.users("g2") if u.startswith("w")},
         what="the burst revoked")


def test_revoke_reaches_every_gate(site):
    site.gates["g1"].enrol_local("bob", person(2)).result(DEADLINE)
    wait(lambda: "bob" in site.users("g2"), what="bob on g2")
    site.svc.call(S.revoke, "bob")
    for g in ("g1", "g2"):
        wait(lambda: "bob" not in site.users(g), what=f"bob revoked on {g}")


def test_revocation_wins_over_an_older_enrolment(site):
    """A revocation (version 1000) then a late enrolment of version 999 for the same user:
    the gate stays revoked; a re-delivery of the revocation does nothing."""
    import paho.mqtt.client as mqtt
    g2 = site.gates["g2"]
    info = P.load_site(site.dir)
    tagk = pair_key(P.service_key(site.dir), bytes.fromhex(info["gates"]["g2"]["pub"]), "tag")
    # a real enrolment of carol on g2 first (through g1 and the service)
    site.gates["g1"].enrol_local("carol", person(3)).result(DEADLINE)
    wait(lambda: "carol" in site.users("g2"), what="carol on g2")
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-injector")
    use_tls(c, P.tls_files(site.dir, "service"))
    c.connect("127.0.0.1", info["broker"]["port"])
    c.loop_start()
    topic = M.gate_topic("hq", "g2", "change")
    revoke = {"gseq": 100001, "kind": "revoke", "user_id": "carol", "version": 1000}
    stale = {"gseq": 100002, "kind": "update", "user_id": "carol", "version": 999,
             "user": {"enabled": True}}
    for h in (revoke, stale, revoke):
        c.publish(topic, M.pack_tagged(tagk, h), qos=1).wait_for_publish(DEADLINE)
    # and a forged one (not tagged by the service): refused
    c.publish(topic, M.pack_tagged(os.urandom(32), dict(revoke, gseq=100003, user_id="alice",
                                                        version=2000)), qos=1)
    c.loop_stop()
    c.disconnect()
    wait(lambda: g2.submit(lambda s: s.db.execute(
        "SELECT COUNT(*) FROM applied WHERE gseq IN (100001, 100002)").fetchone()[0]
    ).result(DEADLINE) == 2, what="both changes seen")
    assert "carol" not in site.users("g2")
    notes = g2.submit(lambda s: dict(s.db.execute(
        "SELECT gseq, note FROM applied WHERE gseq > 100000").fetchall())).result(DEADLINE)
    assert notes[100002].startswith("skipped")
    wait(lambda: g2.stats["rejected"] >= 1, what="forged change refused")
    assert "alice" in site.users("g2")


def test_offline_gate_catches_up_and_uploads_its_chain(site):
    g1, g2 = site.gates["g1"], site.gates["g2"]
    g2.go_offline()
    for i in range(10, 16):
        g1.enrol_local(f"u{i}", person(i, n=1)).result(DEADLINE)
    # the enrolment is in g1's store; its upload reaches the service a moment later
    wait(lambda: "u10" in {u["user_id"] for u in site.svc.call(S.snapshot)["users"]},
         what="u10 at the service")
    site.svc.call(S.revoke, "u10")
    # g2 keeps deciding while offline: its own audit records (a denied and an opened one)
    g2.submit(lambda s: [s.store.audit.append("decision", decision=d, user_id="alice",
                                              terminal="g2") for d in ("deny", "open")]
              ).result(DEADLINE)
    time.sleep(0.5)
    assert "u11" not in site.users("g2")
    g2.go_online()
    wait(lambda: {f"u{i}" for i in range(11, 16)} <= set(site.users("g2")), what="catch-up")
    assert "u10" not in site.users("g2")
    head = g2.submit(lambda s: s.store.audit.verify()).result(DEADLINE)

    def chain_in():
        gs = {g["gate_id"]: g for g in site.svc.call(S.snapshot)["gates"]}
        return gs["g2"]["audit_records"] == head and gs["g2"]["audit_chain"] == "verified"
    wait(chain_in, what="g2's audit chain at the service")
    kinds = [r["kind"] for r in site.svc.call(S.snapshot, 200)["audit"] if r["gate"] == "g2"]
    assert kinds.count("decision") == 2


def test_broker_restart_loses_nothing(site):
    g1 = site.gates["g1"]
    site.broker.stop()
    wait(lambda: not g1.connected.is_set(), what="g1 sees the broker gone")
    g1.enrol_local("dora", person(20, n=1)).result(DEADLINE)        # waits in g1's outbox
    site.broker.start(DEADLINE)
    wait(lambda: "dora" in site.users("g2"), what="dora after the restart")
    site.svc.call(S.revoke, "dora")
    site.broker.restart()
    wait(lambda: "dora" not in site.users("g2"), what="dora revoked")
    # every change the service numbered for g2 is applied there
    n = site.svc.call(lambda s: s.db.execute(
        "SELECT next_gseq FROM gates WHERE gate_id='g2'").fetchone()[0])
    wait(lambda: site.gates["g2"].submit(lambda s: s.report()["contig"]).result(DEADLINE) >= n,
         what="g2 contiguous")


def test_a_gate_added_later_is_recovered(site):
    from device.site.recover import recover_items
    info = P.add_gate(site.dir, "g3")
    site.broker.reload()
    site.svc.call(S.sync_gates)
    g3 = site.start_gate("g3")
    items = site.svc.call(S.recovery_items, "g3")
    active = {u["user_id"] for u in site.svc.call(S.snapshot)["users"] if u["state"] == "active"}
    assert {i["user_id"] for i in items} == active
    rk = P.recovery_key(site.dir / "recovery" / "recovery.key")
    sealed = recover_items(rk, "hq", "g3", bytes.fromhex(info["gates"]["g3"]["pub"]), items,
                           DEFAULT_CONFIG)
    site.svc.call(S.add_recovered, "g3", sealed)
    wait(lambda: set(site.users("g3")) == active, what="g3 recovered")
    assert score_on(g3, "alice", person(1, n=1, noise=0.05)[0]) > 0.99
    # and g1 learns g3 from the roster: a new enrolment reaches g3 directly
    wait(lambda: "g3" in site.gates["g1"].roster["gates"], what="roster with g3")
    site.gates["g1"].enrol_local("erin", person(30, n=1)).result(DEADLINE)
    wait(lambda: "erin" in site.users("g3"), what="erin on g3")


def test_a_forged_audit_record_is_refused(site):
    """A record that does not chain (sent on g1's own topic with g1's certificate, as a
    tampered gate or a replay would) is refused and shown; g1's real chain goes on."""
    import paho.mqtt.client as mqtt
    info = P.load_site(site.dir)
    g1 = site.gates["g1"]

    def chain_in():     # g1's whole chain at the service (g1's head read again each time)
        head = g1.submit(lambda s: s.store.audit.verify()).result(DEADLINE)
        return (head,) if at_service(site, "g1")["audit_records"] == head else None
    n, = wait(chain_in, what="g1's chain at the service before the forgery")
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-forger")
    use_tls(c, P.tls_files(site.dir, "g1"))
    c.connect("127.0.0.1", info["broker"]["port"])
    c.loop_start()
    # prev: no record's hash, nor the chain's start (zeros: a record 1 with them would read
    # "altered", not "does not chain", when this test runs on a fresh g1 alone)
    rec = [n + 1, time.time(), "decision", '{"decision":"open"}', "ab" * 32, "11" * 32]
    sent = c.publish(M.up_topic("hq", "g1", "audit"), M.pack({"from": "g1", "records": [rec]}),
                     qos=1)
    sent.wait_for_publish(DEADLINE)
    c.loop_stop()
    c.disconnect()
    assert sent.is_published(), "the broker never acknowledged the forged record"
    wait(lambda: "does not chain" in at_service(site, "g1")["audit_chain"],
         what="chain error shown")
    g1.submit(lambda s: s.store.audit.append("decision", decision="deny",
                                             terminal="g1")).result(DEADLINE)
    wait(lambda: at_service(site, "g1")["audit_records"] == n + 1,
         what="g1's real record accepted")


def _client(site, cid, ctx=None):
    """A paho client of ``site``'s broker with TLS context ``ctx`` (None: plain TCP); returns
    (client, connack event, received messages)."""
    import paho.mqtt.client as mqtt
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid)
    if ctx is not None:
        c.tls_set_context(ctx)
    ok, got = __import__("threading").Event(), []
    c.on_connect = lambda cl, ud, fl, rc, pr=None: rc == 0 and ok.set()
    c.on_message = lambda cl, ud, msg: got.append(msg.topic)
    return c, ok, got


def test_tls_a_gate_cannot_read_another_gates_topic(site):
    """g1's own certificate subscribed to g2's topics (and to everything) receives nothing
    while a change for g2 goes by; g2 gets it, and so does the service's identity (the
    control: the same subscription with a certificate the ACL lets read)."""
    info = P.load_site(site.dir)
    c, ok, got = _client(site, "test-spy", client_context(*P.tls_files(site.dir, "g1")))
    s, s_ok, s_got = _client(site, "test-ctl", client_context(*P.tls_files(site.dir,
                                                                             "service")))
    for x in (c, s):
        x.connect("127.0.0.1", info["broker"]["port"])
        x.loop_start()
    try:
        assert ok.wait(DEADLINE) and s_ok.wait(DEADLINE), "a site certificate is refused"
        c.subscribe([("site/hq/gate/g2/#", 1), ("site/hq/#", 1), ("#", 1)])
        s.subscribe("site/hq/gate/g2/#", 1)
        time.sleep(0.3)
        site.gates["g1"].enrol_local("spied", person(40, n=1)).result(DEADLINE)
        wait(lambda: "spied" in site.users("g2"), what="spied on g2")
        time.sleep(0.5)
        assert not [t for t in got if "/gate/g1/" not in t], got
        assert "site/hq/gate/g2/change" in s_got
    finally:
        for x in (c, s):
            x.loop_stop()
            x.disconnect()


@pytest.mark.parametrize("how", ["no-certificate", "other-ca", "plain-tcp"])
def test_tls_a_client_without_a_site_certificate_is_refused(site, tmp_path, how):
    import ssl
    info = P.load_site(site.dir)
    ca = P.tls_files(site.dir, "g1")[0]
    if how == "no-certificate":
        ctx = ssl.create_default_context(cafile=ca)
    elif how == "other-ca":                 # a well-formed identity "g1" from another CA
        P.init_site(tmp_path / "other", "hq", ["g1"], port=free_port())
        ctx = client_context(ca, *P.tls_files(tmp_path / "other", "g1")[1:])
    else:
        ctx = None
    c, ok, _ = _client(site, f"test-{how}", ctx)
    try:
        c.connect("127.0.0.1", info["broker"]["port"])
        c.loop_start()
    except OSError:                         # the handshake failed at once
        return
    try:
        assert not ok.wait(1.0), f"{how}: the broker accepted the connection"
    finally:
        c.loop_stop()
        c.disconnect()


def test_an_upload_sealed_by_an_impostor_is_refused_without_a_gap(site):
    """An enrolment posted on g1's topic with g1's broker identity but sealed under a key
    pair that is not g1's (a stolen certificate without g1's site key; the CA key): g2
    refuses the templates, records the change as rejected, and its changes stay contiguous."""
    import paho.mqtt.client as mqtt
    from device.site.sealing import new_private, seal
    from device.site.templates import encode_for_gates
    info = P.load_site(site.dir)
    fake = new_private()
    body = (0).to_bytes(4, "big")                   # no recovery copy
    sealed = {}
    for gid, blob in zip(["g1", "g2"], encode_for_gates(person(60, n=1), 2, DEFAULT_CONFIG)):
        k = pair_key(fake, bytes.fromhex(info["gates"][gid]["pub"]), "seal")
        sealed[gid] = seal(k, blob, M.template_ad("hq", "g1", gid, "mallory", "e-mallory"))
    body += M.pack_sealed_map(sealed)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-impostor")
    use_tls(c, P.tls_files(site.dir, "g1"))
    c.connect("127.0.0.1", info["broker"]["port"])
    c.loop_start()
    c.publish(M.up_topic("hq", "g1", "enrol"), M.pack(
        {"enrol_id": "e-mallory", "user_id": "mallory", "from": "g1", "ts": time.time(),
         "n": 1}, body), qos=1).wait_for_publish(DEADLINE)
    c.loop_stop()
    c.disconnect()
    g2 = site.gates["g2"]
    n = wait(lambda: site.svc.call(lambda s: s.db.execute(
        "SELECT next_gseq FROM gates WHERE gate_id='g2'").fetchone()[0]), what="numbered")
    wait(lambda: g2.submit(lambda s: s.report()["contig"]).result(DEADLINE) >= n, what="no gap")
    assert "mallory" not in site.users("g2")
    note = g2.submit(lambda s: s.db.execute("SELECT note FROM applied WHERE user_id="
                                            "'mallory'").fetchone()[0]).result(DEADLINE)
    assert note.startswith("rejected")
