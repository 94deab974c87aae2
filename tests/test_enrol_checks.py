"""Enrolment checks (issue 18, item 7): a palm already enrolled under another id is refused
(1:N at the identification threshold; --allow-duplicate / allow_duplicate=True audited), every
enrolment presentation must pass quality and liveness (a missing liveness model refuses).
Real pipeline, real SQLite store, real subprocess for the command."""
import json
import os
import subprocess

import numpy as np
import pytest
from conftest import ROOT, gate_config, trusting_cli, write_toml

from device.gate.enrol import DuplicatePalm, EnrolError, EnrolmentRefused, enrol_user
from device.gate.gate import Gate, open_store
from device.gate.pipeline import Pipeline
from device.relays.factory import MemoryRelay
from device.sources.replay import Burst, write_burst


def _kinds(store):
    return [(r.kind, r.payload.get("user_id"), r.payload.get("reason"))
            for r in store.audit.records()]


def test_alice_as_dave_is_refused_and_the_gate_never_opens_as_dave(tmp_path, tiny_models,
                                                                   synthetic_bursts):
    alice, bob = synthetic_bursts["enrol"][0], synthetic_bursts["enrol"][1]
    cfg = gate_config(tmp_path, tiny_models)
    with Gate(cfg, relay=MemoryRelay()) as gate:
        enrol_user(gate.pipeline, gate.store, "alice", alice)
        r = enrol_user(gate.pipeline, gate.store, "bob", bob)          # another palm: fine
        assert r["duplicate_of"] == []
        with pytest.raises(DuplicatePalm, match="already enrolled as 'alice'") as e:
            enrol_user(gate.pipeline, gate.store, "dave", [synthetic_bursts["genuine"][0]])
        assert e.value.matches == ["alice"]
        assert [u.user_id for u in gate.store.users()] == ["alice", "bob"]
        assert ("enrol_refused", "dave", "duplicate of alice") in _kinds(gate.store)
        gate.store.set_enabled("alice", False)         # a disabled alice is still alice
        with pytest.raises(DuplicatePalm):
            enrol_user(gate.pipeline, gate.store, "dave", alice)
        gate.store.set_enabled("alice", True)
        # re-enrolling alice herself (replace) is not a duplicate
        assert enrol_user(gate.pipeline, gate.store, "alice", alice, replace=True)["version"] == 2
        gate.reload()
        d = gate.present(synthetic_bursts["genuine"][0])
        assert d.opened and d.user_id == "alice"


def test_allow_duplicate_enrols_and_audits(tmp_path, tiny_models, synthetic_bursts):
    cfg = gate_config(tmp_path, tiny_models)
    with Gate(cfg, relay=MemoryRelay()) as gate:
        enrol_user(gate.pipeline, gate.store, "alice", synthetic_bursts["enrol"][0])
        r = enrol_user(gate.pipeline, gate.store, "alice-twin", [synthetic_bursts["genuine"][0]],
                       allow_duplicate=True)
        # one enrolment presentation: one fused template
        assert r["duplicate_of"] == ["alice"] and r["templates"] == 1
        assert ("enrol", "alice-twin", "allow_duplicate: same palm as alice") in \
            _kinds(gate.store)


def test_every_presentation_must_pass_quality(tmp_path, tiny_models, synthetic_bursts):
    cfg = gate_config(tmp_path, tiny_models)
    dark = Burst([np.zeros((480, 640, 3), np.uint8)] * 3, synthetic_bursts["enrol"][0][0].sensor,
                 {})
    with Gate(cfg, relay=MemoryRelay()) as gate:
        with pytest.raises(EnrolmentRefused, match="presentation 2") as e:
            enrol_user(gate.pipeline, gate.store, "alice",
                       [synthetic_bursts["enrol"][0][0], dark])
        assert e.value.reason.startswith("quality:")
        assert gate.store.users() == []
        with pytest.raises(EnrolError, match="no enrolment presentation"):
            enrol_user(gate.pipeline, gate.store, "alice", [])


def test_missing_liveness_model_refuses_enrolment(tmp_path, tiny_models, synthetic_bursts):
    os.unlink(tiny_models / "liveness_nir.onnx")
    cfg = gate_config(tmp_path, tiny_models)
    with Gate(cfg, relay=MemoryRelay()) as gate:
        with pytest.raises(EnrolmentRefused) as e:
            enrol_user(gate.pipeline, gate.store, "alice", synthetic_bursts["enrol"][0])
        assert e.value.reason == "liveness_unavailable"
        assert gate.store.users() == []
        assert ("enrol_refused", "alice", "liveness_unavailable") in _kinds(gate.store)


def test_not_live_presentation_refuses_enrolment(tmp_path, tiny_models, synthetic_bursts):
    b = synthetic_bursts["enrol"][0][0]
    # tiny liveness: p(live) = mean intensity; a (stricter) configured threshold of 0.99 makes
    # the hand in the sensor frame not live
    cfg = gate_config(tmp_path, tiny_models, liveness={"threshold": 0.99})
    p = Pipeline(cfg)
    try:
        with open_store(cfg) as st:
            with pytest.raises(EnrolmentRefused) as e:
                enrol_user(p, st, "alice", [b])
            assert e.value.reason == "not_live"
    finally:
        p.close()


def test_no_hand_in_the_sensor_frame_refuses_enrolment(tmp_path, tiny_models, synthetic_bursts):
    b = synthetic_bursts["enrol"][0][0]
    black_sensor = Burst(b.views, np.zeros_like(b.sensor), {})   # nothing on the sensor
    cfg = gate_config(tmp_path, tiny_models)
    p = Pipeline(cfg)
    try:
        with open_store(cfg) as st:
            with pytest.raises(EnrolmentRefused) as e:
                enrol_user(p, st, "alice", [b, black_sensor])
            assert e.value.reason == "no_hand_in_sensor"
    finally:
        p.close()


def test_enroll_command_refuses_a_duplicate_and_allows_it_explicitly(tmp_path, tiny_models,
                                                                     synthetic_bursts,
                                                                     signing_key):
    def _cli(*args):       # palmgate in a subprocess that trusts the tests' models folder
        return subprocess.run([*trusting_cli(signing_key), *args], capture_output=True,
                              text=True, cwd=ROOT, timeout=300,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))

    cfg = gate_config(tmp_path, tiny_models)
    f = write_toml(tmp_path / "p.toml", cfg)
    for k, b in enumerate(synthetic_bursts["enrol"][0]):
        write_burst(tmp_path / "alice" / str(k), b)
    write_burst(tmp_path / "again" / "0", synthetic_bursts["genuine"][0])
    r = _cli("enroll", "alice", "--burst", str(tmp_path / "alice"), "--config", str(f))
    assert r.returncode == 0, r.stderr[-2000:]
    r = _cli("enroll", "dave", "--burst", str(tmp_path / "again"), "--config", str(f))
    assert r.returncode == 2 and "already enrolled as 'alice'" in r.stderr
    r = _cli("enroll", "dave", "--burst", str(tmp_path / "again"), "--config", str(f),
             "--allow-duplicate")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["duplicate_of"] == ["alice"]
