"""The gate's sensor identity stage (device/gate/sensor_identity_stage.py) through the real
pipeline, store and shipped models: enrolment keeps the sensor templates, the genuine opens,
another person's sensor frame is denied sensor_identity, the site's policy for users enrolled
without them, X-ray's bone patch (its sensor's default when_enrolled)."""
import numpy as np
import pytest

from device.gate.enrol import enrol_user
from device.gate.gate import open_store
from device.gate.pipeline import Pipeline
from device.gate.sensor_identity import patch_to_bytes
from device.sources.replay import Burst
from device.store import sensor_templates as ST
from tests.conftest import gate_config


def _gate(tmp_path, **liveness):
    cfg = gate_config(tmp_path, liveness=liveness)
    pipe = Pipeline(cfg)
    st = open_store(cfg)
    pipe.attach_store(st)
    return pipe, st


def _decide(pipe, st, burst):
    pipe.load_gallery(st)
    return pipe.decide(burst)


def test_enrolment_keeps_them_the_genuine_opens_another_sensor_frame_is_denied(
        tmp_path, synthetic_bursts):
    b = synthetic_bursts
    pipe, st = _gate(tmp_path)
    try:
        r = enrol_user(pipe, st, "alice", b["enrol"][0])
        assert r["sensor_templates"] == 2 == ST.count(st, "alice")
        rec = st.conn.execute("SELECT payload FROM audit WHERE kind='enrol'").fetchone()[0]
        assert '"sensor_templates":2' in rec
        d = _decide(pipe, st, b["genuine"][0])
        assert d.decision == "open" and d.user_id == "alice", d.reason
        assert d.sensor_identity == "checked" and "identity" in d.stages_ms
        # the views of alice, the sensor frame of person 1 (the pose differs: the binding
        # may see it first); the identity stage itself, fed the binding's probes of a frame
        # of person 1 placed where alice's views are, must refuse it
        g1 = b["genuine"][1]
        mixed = Burst(b["genuine"][0].views, g1.sensor, dict(b["genuine"][0].meta))
        d = _decide(pipe, st, mixed)
        assert d.decision == "deny" and d.reason in ("sensor_mismatch", "sensor_identity")
        # alice's sensor templates replaced by person 1's (another hand under the sensor at
        # enrolment): her genuine presentation now passes the binding and fails the identity
        other = enrol_user(pipe, st, "bob", b["enrol"][1])
        assert other["sensor_templates"] == 2
        with st.transaction():
            ST.delete(st, "alice")
            ST.insert(st, "alice", 1, ST.read(st, "bob"))
        d = _decide(pipe, st, b["genuine"][0])
        assert (d.decision, d.reason, d.user_id) == ("deny", "sensor_identity", "alice")
        assert d.sensor_identity == "denied" and d.sensor_identity_score < \
            pipe.identity.numbers["min_agreement"]
        assert d.sensor_identity_by == "patch"
        # the overlapped and the sequential pipeline decide alike
        pipe.cfg.gate.overlap = False
        assert _decide(pipe, st, b["genuine"][0]).reason == "sensor_identity"
    finally:
        pipe.close()
        st.close()


@pytest.mark.parametrize("policy", ["when_enrolled", "required", "off"])
def test_users_enrolled_without_them_follow_the_sites_policy(tmp_path, synthetic_bursts,
                                                             policy):
    b = synthetic_bursts
    pipe, st = _gate(tmp_path, sensor_identity=policy)
    try:
        enrol_user(pipe, st, "alice", b["enrol"][0])
        with st.transaction():                    # as enrolled before the check
            ST.delete(st, "alice")
        d = _decide(pipe, st, b["genuine"][0])
        want = {"when_enrolled": ("open", "not_enrolled"),
                "required": ("deny", "not_enrolled"), "off": ("open", None)}[policy]
        assert (d.decision, d.sensor_identity) == want, d.reason
        if policy == "required":
            assert d.reason == "sensor_identity"
    finally:
        pipe.close()
        st.close()


def test_xray_identity_stage_is_on_by_its_sensors_default(tmp_path):
    """X-ray's default is when_enrolled (the rule on validation seed 23, docs/results.md); a
    site turns it off with sensor_identity = "off"."""
    from device.gate.sensor_identity_stage import SENSOR_DEFAULT, identity_stage, policy_of
    cfg = gate_config(tmp_path, liveness={"sensor": "xray"})
    assert cfg.liveness.sensor_identity == "sensor_default"
    assert SENSOR_DEFAULT["xray"] == "when_enrolled"
    assert policy_of(cfg.liveness) == "when_enrolled"
    assert policy_of(gate_config(tmp_path).liveness) == "when_enrolled"      # NIR
    on = identity_stage(cfg)
    assert on is not None and on.kind == "xray_bone_patch" and on.numbers is not None
    assert identity_stage(gate_config(tmp_path, liveness={"sensor": "xray",
                                                          "sensor_identity": "off"})) is None
    from device.gate.enrol import sensor_blobs

    class P:
        identity = None
    assert sensor_blobs(P(), []) is None
    assert patch_to_bytes((np.zeros((4, 4)), np.ones((4, 4))))[:4] == b"PGSP"


@pytest.fixture(scope="module")
def xray_bursts():
    """X-ray: enrolment bursts (2 each) of persons 0, 1, a genuine presentation of each, and a
    mixed other_hand presentation (person 0's hand before the cameras, another under the
    sensor) of each mixed species."""
    from device.eval.sensor_identity_gate import MIXED, _mixed_burst
    from device.synth.source import SyntheticPeople
    people = SyntheticPeople(seed=0, views=3, sensor="xray", threads=1)
    return {"enrol": {i: [people.burst(i, "enrol", k) for k in range(2)] for i in (0, 1)},
            "genuine": [people.burst(0, "genuine", 0), people.burst(1, "genuine", 0)],
            "mixed": [_mixed_burst(people, sp, j, [0, 1], "other_hand")
                      for sp in MIXED for j in range(2)]}


def test_xray_the_genuine_opens_another_hand_under_the_sensor_is_denied(tmp_path,
                                                                       xray_bursts):
    b = xray_bursts
    pipe, st = _gate(tmp_path, sensor="xray", sensor_identity="when_enrolled")
    try:
        assert pipe.identity is not None and pipe.identity.kind == "xray_bone_patch"
        r = enrol_user(pipe, st, "alice", b["enrol"][0])
        assert r["sensor_templates"] == 2 == ST.count(st, "alice")
        assert ST.read(st, "alice", kind="nir_palm_patch") == []
        assert len(ST.read(st, "alice", kind="xray_bone_patch")) == 2
        d = _decide(pipe, st, b["genuine"][0])
        assert d.decision == "open" and d.user_id == "alice", d.reason
        assert d.sensor_identity == "checked" and \
            d.sensor_identity_score >= pipe.identity.numbers["min_agreement"]
        for burst, victim, other, meta in b["mixed"]:      # other_hand: never opens as alice
            if victim == 0:
                d = _decide(pipe, st, burst)
                assert d.decision == "deny", (meta, d.sensor_identity_score)
        # alice's X-ray templates are bob's (another hand under the sensor at enrolment):
        # her presentation passes the binding and is denied by the identity check
        enrol_user(pipe, st, "bob", b["enrol"][1])
        with st.transaction():
            ST.delete(st, "alice")
            ST.insert(st, "alice", 1, ST.read(st, "bob", kind="xray_bone_patch"),
                      "xray_bone_patch")
        d = _decide(pipe, st, b["genuine"][0])
        assert (d.decision, d.reason, d.user_id) == ("deny", "sensor_identity", "alice")
        assert d.sensor_identity == "denied"
        pipe.cfg.gate.overlap = False          # the sequential pipeline decides alike
        d2 = _decide(pipe, st, b["genuine"][0])
        assert (d2.reason, d2.sensor_identity_score) == (d.reason, d.sensor_identity_score)
        pipe.cfg.gate.overlap = True
        d = _decide(pipe, st, b["genuine"][1])
        assert d.decision == "open" and d.user_id == "bob", d.reason
    finally:
        pipe.close()
        st.close()


def test_without_signed_numbers_a_user_with_templates_is_denied(tmp_path, monkeypatch):
    """Fail secure: an older models folder without the sensor_identity numbers."""
    import device.gate.binding_numbers as BN
    from device.gate.decision import Decision, Deny
    from device.gate.sensor_identity_stage import SensorIdentityStage
    real = BN.load_binding_numbers

    def without(sensor, models_dir=None, trusted_keys=None):
        n = real(sensor, models_dir, trusted_keys)
        n.doc = {k: v for k, v in n.doc.items() if k != "sensor_identity"}
        return n
    monkeypatch.setattr(BN, "load_binding_numbers", without)
    stage = SensorIdentityStage(gate_config(tmp_path))
    assert stage.numbers is None and "sensor_identity" in stage.error
    stage.templates = lambda uid, version=None: [(np.zeros((80, 80), np.float32),
                                    np.ones((80, 80), np.float32))]
    out = Decision(user_id="alice")
    with pytest.raises(Deny) as e:
        stage(np.zeros((10, 10), np.uint8), None, out)
    assert e.value.reason == "liveness_unavailable"
    stage.templates = lambda uid, version=None: []                 # no templates: the site's policy
    assert stage(np.zeros((10, 10), np.uint8), None, Decision(user_id="bob")) is None


def test_binding_numbers_check_the_identity_numbers():
    from device.gate.binding_numbers import parse_numbers
    from device.models.model import ModelError
    doc = {"format": 1, "sensor": "xray", "max_score": 1.0,
           "probe_ranges": {"lo": [0.0], "hi": [1.0], "clip": 15.0},
           "sensor_identity": {"min_agreement": 0.3}}
    parse_numbers(doc, "xray", "binding_xray.json")          # X-ray has one: the bone patch
    doc.update(sensor_identity={"min_agreement": 0.3, "shift_mm": 40})
    with pytest.raises(ModelError, match="shift_mm"):
        parse_numbers(doc, "xray", "binding_xray.json")
    doc.update(sensor="nir", sensor_identity={"min_agreement": 2.0})
    with pytest.raises(ModelError, match="min_agreement"):
        parse_numbers(doc, "nir", "binding_nir.json")


@pytest.mark.parametrize("tamper", [
    "DELETE FROM sensor_templates WHERE user_id='alice'",
    "UPDATE sensor_templates SET version=version+1 WHERE user_id='alice'",
    "UPDATE sensor_templates SET kind='other' WHERE user_id='alice'",
    "DELETE FROM users WHERE user_id='alice'",
    "DROP TABLE sensor_templates"])
def test_a_running_gate_denies_a_user_whose_sensor_templates_were_changed_outside(
        tmp_path, synthetic_bursts, tamper):
    """Someone who can write the file (no key) while the gate runs must not downgrade a user
    to not_enrolled (skipped under when_enrolled) by removing or rewriting their sensor rows:
    the identity stage checks the rows it reads against the sensor tag."""
    import sqlite3
    b = synthetic_bursts
    pipe, st = _gate(tmp_path)
    try:
        enrol_user(pipe, st, "alice", b["enrol"][0])
        d = _decide(pipe, st, b["genuine"][0])
        assert (d.decision, d.sensor_identity) == ("open", "checked"), d.reason
        c = sqlite3.connect(st.path)
        c.execute("PRAGMA foreign_keys=ON")
        c.execute(tamper)
        c.commit()
        c.close()
        d = pipe.decide(b["genuine"][0])            # the gallery as the running gate has it
        assert d.decision == "deny" and d.reason == "error:identity", (d.reason,
                                                                      d.sensor_identity)
    finally:
        pipe.close()
        st.close()


def test_enrolment_without_a_sensor_template_is_refused_while_the_check_is_on(
        tmp_path, synthetic_bursts, monkeypatch):
    """A fault (no signed identity numbers; no presentation whose palm patch could be made)
    must not enrol a user silently without sensor templates: they would pass unchecked for
    good under when_enrolled. The enrolment is refused and audited; nothing is written."""
    import device.gate.binding_numbers as BN
    from device.gate.enrol import EnrolmentRefused
    real = BN.load_binding_numbers

    def without(sensor, models_dir=None, trusted_keys=None):
        n = real(sensor, models_dir, trusted_keys)
        n.doc = {k: v for k, v in n.doc.items() if k != "sensor_identity"}
        return n
    b = synthetic_bursts
    monkeypatch.setattr(BN, "load_binding_numbers", without)
    pipe, st = _gate(tmp_path)
    try:
        with pytest.raises(EnrolmentRefused) as e:
            enrol_user(pipe, st, "alice", b["enrol"][0])
        assert e.value.reason == "liveness_unavailable"
        assert st.get_user("alice") is None and ST.count(st) == 0
        monkeypatch.setattr(BN, "load_binding_numbers", real)
        pipe.identity.load()
        monkeypatch.setattr(pipe.identity, "patch", lambda frame, probes: None)
        with pytest.raises(EnrolmentRefused) as e:          # the palm never placed
            enrol_user(pipe, st, "alice", b["enrol"][0])
        assert e.value.reason == "sensor_identity" and st.get_user("alice") is None
        kinds = [r[0] for r in st.conn.execute("SELECT kind FROM audit")]
        assert kinds.count("enrol_refused") == 2, kinds
    finally:
        pipe.close()
        st.close()


def test_status_names_the_identity_check_when_the_configuration_turns_it_off(
        tmp_path, tiny_models, capsys):
    """`sensor_identity = "off"`, and `binding = false` (no placed hand, so no identity check,
    whatever the policy says -- `required` included), are named under `checks_off`."""
    import json

    from conftest import write_toml

    from device.cli import main
    for liveness in ({"sensor_identity": "off"}, {"binding": False},
                     {"binding": False, "sensor_identity": "required"}):
        f = write_toml(tmp_path / "p.toml", gate_config(tmp_path, tiny_models,
                                                        liveness=liveness))
        main(["status", "--config", str(f)])
        off = json.loads(capsys.readouterr().out).get("checks_off", [])
        assert any("sensor identity" in x for x in off), (liveness, off)
    f = write_toml(tmp_path / "x.toml", gate_config(tmp_path, tiny_models, liveness={
        "sensor": "xray", "sensor_identity": "off"}))
    main(["status", "--config", str(f)])                    # X-ray's turned off: named
    off = json.loads(capsys.readouterr().out).get("checks_off", [])
    assert any("sensor identity" in x for x in off), off
    f = write_toml(tmp_path / "d.toml", gate_config(tmp_path, tiny_models, liveness={
        "sensor": "xray"}))
    main(["status", "--config", str(f)])                    # its sensor's default: not named
    assert "checks_off" not in json.loads(capsys.readouterr().out)


def test_faults_inside_the_identity_stage_deny_and_never_open(tmp_path, synthetic_bursts,
                                                              monkeypatch):
    """A sensor template the store seals but this build cannot read (not a patch, a NaN line
    map, another patch size), a palm the patch cannot cover, an exception and a stage over its
    time limit: each denies, in the overlapped and the sequential pipeline alike."""
    import struct
    import time

    import device.gate.sensor_identity as S
    b = synthetic_bursts
    pipe, st = _gate(tmp_path)
    try:
        enrol_user(pipe, st, "alice", b["enrol"][0])
        good = ST.read(st, "alice")
        nan = bytearray(good[0])
        nan[7:9] = struct.pack(">e", float("nan"))
        small = patch_to_bytes((np.zeros((60, 60), np.float32), np.ones((60, 60), np.float32)))

        def decide_both():
            out = []
            for overlap in (True, False):
                pipe.cfg.gate.overlap = overlap
                out.append(_decide(pipe, st, b["genuine"][0]))
            pipe.cfg.gate.overlap = True
            return out

        for blob in (b"not a patch", bytes(nan), small):
            with st.transaction():
                ST.delete(st, "alice")
                ST.insert(st, "alice", 1, [blob])
            for d in decide_both():
                assert (d.decision, d.reason) == ("deny", "error:identity"), d.reason
        with st.transaction():
            ST.delete(st, "alice")
            ST.insert(st, "alice", 1, good)
        assert all(d.opened for d in decide_both())
        real_patch = pipe.identity.patch

        def off_frame(frame, probes):           # the palm patch with nothing inside the frame
            lines, w = real_patch(frame, probes)
            return lines, np.zeros_like(w)
        monkeypatch.setattr(pipe.identity, "patch", off_frame)
        for d in decide_both():
            assert (d.decision, d.reason) == ("deny", "sensor_identity"), d.reason
        monkeypatch.setattr(pipe.identity, "patch", lambda frame, probes: None)
        for d in decide_both():
            assert (d.decision, d.reason) == ("deny", "sensor_identity"), d.reason
        monkeypatch.setattr(pipe.identity, "patch", real_patch)

        def broken(*a, **k):
            raise RuntimeError("boom")
        monkeypatch.setattr(S, "best_agreement", broken)
        for d in decide_both():
            assert (d.decision, d.reason) == ("deny", "error:identity"), d.reason
        monkeypatch.undo()
        real = S.best_agreement
        monkeypatch.setattr(S, "best_agreement",
                            lambda *a, **k: time.sleep(0.05) or real(*a, **k))
        monkeypatch.setitem(pipe.cfg.timeouts._values, "identity", 1)
        for d in decide_both():
            assert (d.decision, d.reason) == ("deny", "timeout:identity"), d.reason
    finally:
        pipe.close()
        st.close()


@pytest.mark.parametrize("policy", ["when_enrolled", "required"])
def test_a_user_whose_templates_are_of_the_other_sensor_is_named_so(tmp_path, synthetic_bursts,
                                                                    policy, caplog):
    """A user whose sensor templates are all of the other sensor's kind (the gate's [liveness]
    sensor changed, a backup of the other sensor's gate restored, a site enrolment made at a
    gate of the other sensor) cannot be checked here. Under when_enrolled they pass as a user
    without this sensor's templates, but the decision and its audit record say
    ``other_sensor`` (the audit record copies it, device/gate/gate.py), not ``not_enrolled``
    (which reads as "enrolled before the check"), and the gate logs the kind it found; under
    required they are denied."""
    import logging
    b = synthetic_bursts
    pipe, st = _gate(tmp_path, sensor_identity=policy)
    try:
        enrol_user(pipe, st, "alice", b["enrol"][0])
        nir = ST.read(st, "alice")
        with st.transaction():                    # as written by an X-ray gate
            ST.delete(st, "alice")
            ST.insert(st, "alice", 1, nir, "xray_bone_patch")
        with caplog.at_level(logging.INFO, logger="palmgate.gate"):
            d = _decide(pipe, st, b["genuine"][0])
        want = {"when_enrolled": ("open", "other_sensor"),
                "required": ("deny", "other_sensor")}[policy]
        assert (d.decision, d.sensor_identity) == want, d.reason
        assert "xray_bone_patch" in caplog.text
        if policy == "required":
            assert d.reason == "sensor_identity"
    finally:
        pipe.close()
        st.close()


def test_status_counts_sensor_templates_by_kind_and_names_users_of_the_other_sensor(
        tmp_path, tiny_models, capsys):
    """A gate whose [liveness] sensor was changed (or given the other sensor's backup) with
    its identity check on: `palmgate status` says how many users hold only the other sensor's
    templates (each opens unchecked under when_enrolled), and how many hold none (enrolled
    while the check was off: the X-ray check turned on later), before any of them presents."""
    import json
    import os

    from conftest import write_toml

    from device.cli import main
    from device.protect.core import enrol
    cfg = gate_config(tmp_path, tiny_models, liveness={"sensor": "xray",
                                                       "sensor_identity": "when_enrolled"})
    f = write_toml(tmp_path / "x.toml", cfg)
    v = np.random.default_rng(0).standard_normal((49, 16))
    with open_store(cfg) as st, st.transaction():
        for uid, kind in (("alice", "nir_palm_patch"), ("bob", "xray_bone_patch"),
                          ("carol", None)):     # carol: enrolled while the check was off
            ver = st.enrol(uid, [enrol(v / np.linalg.norm(v, axis=-1, keepdims=True))],
                           audit={"sensor_templates": 2})
            if kind:
                ST.insert(st, uid, ver, [os.urandom(100), os.urandom(100)], kind)
    main(["status", "--config", str(f)])
    rep = json.loads(capsys.readouterr().out)["store"]
    assert rep["sensor_templates"] == {"nir_palm_patch": 2, "xray_bone_patch": 2}, rep
    assert rep["users_with_other_sensor_templates_only"] == 1, rep
    assert rep["users_without_sensor_templates"] == 1, rep       # not_enrolled: unchecked
