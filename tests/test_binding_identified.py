"""The X-ray binding's wider limit once the identity checks tie both halves (branch xrel): a
presentation whose binding score is over the signed ``max_score`` but within the signed
``max_score_identified`` is held back like a size-term deny and opens only when the identity
stage checked the bone patch AND the hand size of the identified user and both passed
(device/gate/binding_release.py); otherwise it is denied sensor_mismatch as before."""
import json

import pytest
from conftest import SHIPPED

from device.gate import binding_release as R
from device.gate.decision import Deny
from device.gate.gate import Gate
from device.models.model import ModelError
from device.relays.factory import MemoryRelay
from tests import test_binding_release as _release
from tests.test_binding_release import _Identity   # the identity stage's stand-in


# ----------------------------------------------------------------------------- pure
def test_within_the_identified_limit():
    assert R.within_identified(40.0, 29.7, 60.0)
    assert R.within_identified(60.0, 29.7, 60.0)
    assert not R.within_identified(60.1, 29.7, 60.0)
    assert not R.within_identified(20.0, 29.7, 60.0)      # passes anyway: nothing to hold
    assert not R.within_identified(40.0, 29.7, None)      # no signed number: as before
    assert not R.within_identified(float("inf"), 29.7, 60.0)   # the hand not placed
    assert not R.within_identified(float("nan"), 29.7, 60.0)
    assert not R.within_identified(40.0, 29.7, float("nan"))


def test_mismatch_holds_a_score_within_the_identified_limit(monkeypatch):
    class B:
        score, probes = 50.0, object()
    monkeypatch.setattr(R, "size_term_of", lambda m, stats: 0.0)
    d = R.mismatch(B(), {"joints": {}}, 29.7, max_identified=60.0)
    assert isinstance(d, R.IdentifiedDeny) and isinstance(d, R.SizeTermDeny)
    assert d.reason == "sensor_mismatch" and d.probes is B.probes
    assert type(R.mismatch(B(), {"joints": {}}, 29.7)) is Deny            # no limit signed
    assert type(R.mismatch(B(), {"joints": {}}, 29.7, max_identified=45.0)) is Deny
    assert type(R.mismatch(B(), {}, 29.7, min_texture=0.2, max_identified=60.0)) is Deny
    monkeypatch.setattr(R, "size_term_of", lambda m, stats: 25.0)   # the size term alone
    d = R.mismatch(B(), {"joints": {}}, 29.7, max_identified=60.0)
    assert type(d) is R.SizeTermDeny                          # released as the size term's


def test_released_the_same_way():
    held = R.IdentifiedDeny("sensor_mismatch", "p", "d")

    class Out:
        user_id, sensor_identity, hand_size = "alice", "checked", "checked"
    assert R.released(held, Out())
    Out.hand_size = "not_enrolled"
    assert not R.released(held, Out())


# ----------------------------------------------------------------------------- the numbers
def test_the_identified_limit_is_a_signed_number_not_below_max_score():
    from device.gate.binding_numbers import in_force, parse_numbers
    good = json.loads((SHIPPED / "binding_xray.json").read_text())
    base = dict(good, max_score=29.7)
    base.pop("max_score_identified", None)
    assert parse_numbers(base, "xray", "f").max_score_identified is None
    assert in_force(parse_numbers(base, "xray", "f")).max_score_identified is None
    n = parse_numbers(dict(base, max_score_identified=55.0), "xray", "f")
    assert n.max_score_identified == 55.0
    assert in_force(n).max_score_identified == 55.0
    assert in_force(n, 20.0).max_score_identified is None   # a site's stricter limit: none
    for bad in (29.0, -1, float("nan"), float("inf"), "60", True):
        with pytest.raises(ModelError, match="max_score_identified"):
            parse_numbers(dict(base, max_score_identified=bad), "xray", "f")


def test_the_shipped_x_ray_file_signs_the_identified_limit():
    """Branch xrel45: 45.0 mm, 10 mm or more under the nearest attack that passes every other
    check (development 8839 int8 mixed_replica_views 00025, 56.7), by the rule of
    docs/results.md ("a smaller max_score_identified")."""
    from device.gate.binding_numbers import in_force, parse_numbers
    doc = json.loads((SHIPPED / "binding_xray.json").read_text())
    assert doc["max_score_identified"] == 45.0 and doc["max_score"] < 45.0
    assert "xrel45" in doc["max_score_identified_rule"]
    assert in_force(parse_numbers(doc, "xray", "binding_xray.json")).max_score_identified == 45.0


def test_check_margins_releases_as_the_gate_does():
    from device.eval.check_margins import passes
    th = {"thr": 0.5, "max_score": 29.7, "min_agreement": 0.89, "max_off": 0.055}
    row = {"p_live": 0.99, "binding": 50.0, "size": 0.0, "agreement": 0.95, "size_off": 0.01}
    assert not passes(row, th)["binding"]
    th2 = dict(th, max_score_identified=60.0)
    assert passes(row, th2)["binding"]
    assert not passes(dict(row, agreement=0.8), th2)["binding"]
    assert not passes(dict(row, size_off=0.06), th2)["binding"]
    assert not passes(dict(row, binding=61.0), th2)["binding"]


# ----------------------------------------------------------------------------- the gate
def _held(burst, out):
    out.binding = 50.0
    raise R.IdentifiedDeny("sensor_mismatch", "please present your palm again",
                           "the sensor frame's hand is not the views' hand", probes="P")


pipes = _release.pipes        # the two gates (overlap on / off) the size term's tests use


@pytest.mark.parametrize("overlap", [True, False])
@pytest.mark.parametrize("identity", ["checked", "not_enrolled", "patch_denied"])
def test_the_gate_opens_it_only_when_both_identity_checks_passed(pipes, synthetic_bursts,
                                                                 overlap, identity):
    _, on, off = pipes
    p = on if overlap else off
    p.binding = _held
    p.identity = {"checked": _Identity("checked"), "not_enrolled": _Identity("not_enrolled"),
                  "patch_denied": _Identity(deny="sensor_identity")}[identity]
    d = p.decide(synthetic_bursts["genuine"][0])
    if identity == "checked":
        assert (d.decision, d.binding_identified, d.binding_size_term) == \
            ("open", R.RELEASED, None)
    else:
        assert (d.decision, d.reason, d.user_id, d.binding_identified) == \
            ("deny", "sensor_mismatch", None, None)


def test_the_audit_names_it(pipes, synthetic_bursts):
    cfg, on, _ = pipes
    on.binding = _held
    with Gate(cfg, pipeline=on, relay=MemoryRelay()) as gate:
        on.identity = _Identity("checked")      # after the gate attached its store
        assert gate.present(synthetic_bursts["genuine"][0]).opened
        recs = [r.payload for r in gate.store.audit.records() if r.kind == "decision"]
    assert recs[-1]["binding_identified"] == "released"
    assert "binding_size_term" not in recs[-1]


def test_status_shows_the_identified_limit_in_force(tmp_path, tiny_models, capsys):
    from conftest import gate_config, write_toml

    from device.cli import main
    signed = json.loads((SHIPPED / "binding_xray.json").read_text()).get("max_score_identified")
    f = write_toml(tmp_path / "p.toml", gate_config(tmp_path, tiny_models,
                                                    liveness={"sensor": "xray"}))
    main(["status", "--config", str(f)])
    rep = json.loads(capsys.readouterr().out)["models"]["binding_xray.json"]
    assert rep["ok"] and rep.get("max_score_identified") == signed
    f = write_toml(tmp_path / "q.toml", gate_config(
        tmp_path, tiny_models, liveness={"sensor": "xray", "binding_max_distance": 20.0}))
    main(["status", "--config", str(f)])
    rep = json.loads(capsys.readouterr().out)["models"]["binding_xray.json"]
    assert rep["ok"] and "max_score_identified" not in rep
