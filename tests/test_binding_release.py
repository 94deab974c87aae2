"""The X-ray binding's size-and-directions term is released once the identity stage has checked
the bone patch and the hand size of the identified user (device/gate/binding_release.py); in
every other case the presentation is denied sensor_mismatch exactly as before."""
import numpy as np
import pytest

from device.gate import binding_release as R
from device.gate.decision import Deny
from device.gate.gate import Gate
from device.relays.factory import MemoryRelay


# ----------------------------------------------------------------------------- pure
def test_fails_only_by_the_term():
    assert R.fails_only_by(40.0, 12.0, 29.7)
    assert R.fails_only_by(41.5, 12.0, 29.7)             # 29.5 without it: passes
    assert not R.fails_only_by(42.0, 12.0, 29.7)          # fails without it too
    assert not R.fails_only_by(20.0, 12.0, 29.7)          # passes with it: nothing to release
    assert not R.fails_only_by(40.0, None, 29.7)          # NIR / no bones: no such term
    assert not R.fails_only_by(40.0, float("nan"), 29.7)
    assert not R.fails_only_by(40.0, float("inf"), 29.7)
    assert not R.fails_only_by(float("inf"), 12.0, 29.7)  # the hand not placed
    assert not R.fails_only_by(float("nan"), 12.0, 29.7)


class _Out:
    def __init__(self, **kw):
        self.user_id, self.sensor_identity, self.hand_size = "alice", "checked", "checked"
        self.__dict__.update(kw)


def test_released_only_when_patch_and_size_were_checked():
    held = R.SizeTermDeny("sensor_mismatch", "p", "d")
    assert R.released(held, _Out())
    assert not R.released(None, _Out())
    assert not R.released(Deny("sensor_mismatch"), _Out())         # a plain binding deny
    assert not R.released(held, _Out(hand_size="not_enrolled"))     # format-1 templates
    assert not R.released(held, _Out(hand_size=None))               # identity not run
    assert not R.released(held, _Out(sensor_identity="not_enrolled", hand_size=None))
    assert not R.released(held, _Out(hand_size="denied"))
    assert not R.released(held, _Out(user_id=None))


def test_mismatch_is_a_size_term_deny_only_where_the_term_alone_fails(monkeypatch):
    class B:
        score, probes = 40.0, object()
    monkeypatch.setattr(R, "size_term_of", lambda m, stats: 12.0)
    d = R.mismatch(B(), {"joints": {}}, 29.7)
    assert isinstance(d, R.SizeTermDeny) and d.reason == "sensor_mismatch"
    assert d.probes is B.probes and d.without == pytest.approx(28.0)
    assert type(R.mismatch(B(), {}, 29.7, min_texture=0.2)) is Deny   # palm lines follow
    monkeypatch.setattr(R, "size_term_of", lambda m, stats: 5.0)
    assert type(R.mismatch(B(), {}, 29.7)) is Deny


# ----------------------------------------------------------------------------- the gate
def _held(burst, out):
    out.binding = 40.0
    raise R.SizeTermDeny("sensor_mismatch", "please present your palm again",
                         "the sensor frame's hand is not the views' hand", probes="P",
                         without=28.0)


class _Identity:
    """The identity stage's verdict on the identified user: ``hand_size`` checked /
    not_enrolled (templates without a size), or a deny."""

    def __init__(self, hand_size="checked", deny=None):
        self.hand_size, self.deny, self.probes = hand_size, deny, []

    def __call__(self, frame, probes, out):
        self.probes.append(probes)
        out.sensor_identity_score = out.sensor_identity_raw = 0.9    # compared, as the stage
        out.sensor_identity_bucket = out.sensor_identity_raw_bucket = ">=+5"
        if self.deny:
            raise Deny(self.deny, "please present your palm again")
        out.sensor_identity = "checked" if self.hand_size else "not_enrolled"
        out.hand_size = self.hand_size
        return 0.9


@pytest.fixture
def pipes(tmp_path, tiny_models, synthetic_bursts):
    from tests.test_pipeline_overlap import overlap_pair
    cfg, on, off, st = overlap_pair(tmp_path, tiny_models, synthetic_bursts)
    yield cfg, on, off
    on.close()
    off.close()
    st.close()


@pytest.mark.parametrize("overlap", [True, False])
def test_a_binding_failed_only_by_the_term_opens_when_the_size_was_checked(pipes,
                                                                          synthetic_bursts,
                                                                          overlap):
    _, on, off = pipes
    p = on if overlap else off
    g = synthetic_bursts["genuine"][0]
    assert p.decide(g).opened
    p.binding, p.identity = _held, _Identity("checked")
    d = p.decide(g)
    assert (d.decision, d.reason, d.binding_size_term) == ("open", "match", R.RELEASED)
    assert d.user_id == "person-000" and d.binding == 40.0
    assert p.identity.probes == ["P"]            # the identity placed with the binding's probes


@pytest.mark.parametrize("overlap", [True, False])
@pytest.mark.parametrize("identity", ["not_enrolled", "no_templates", "off", "patch_denied",
                                      "size_denied", "unavailable"])
def test_otherwise_it_is_denied_sensor_mismatch_as_before(pipes, synthetic_bursts, overlap,
                                                          identity):
    _, on, off = pipes
    p = on if overlap else off
    g = synthetic_bursts["genuine"][0]

    def plain(burst, out):
        out.binding = 40.0
        raise Deny("sensor_mismatch", "please present your palm again")
    p.binding, p.identity = plain, None
    before = p.decide(g)                       # what a binding deny decides today
    p.binding = _held
    p.identity = {"not_enrolled": _Identity("not_enrolled"), "no_templates": _Identity(None),
                  "off": None, "patch_denied": _Identity(deny="sensor_identity"),
                  "size_denied": _Identity(deny="sensor_identity"),
                  "unavailable": _Identity(deny="liveness_unavailable")}[identity]
    d = p.decide(g)
    for f in ("decision", "reason", "prompt", "user_id", "candidate", "score", "threshold",
              "template_version", "binding", "sensor_identity", "hand_size",
              "sensor_identity_by", "sensor_identity_raw", "sensor_identity_bucket",
              "sensor_identity_raw_bucket", "binding_size_term"):
        assert getattr(d, f) == getattr(before, f), f
    assert (d.decision, d.reason, d.user_id, d.binding_size_term) == \
        ("deny", "sensor_mismatch", None, None)


def test_a_held_deny_comes_before_a_no_match(pipes, synthetic_bursts):
    _, on, _ = pipes
    on.binding, on.identity = _held, _Identity("checked")
    d = on.decide(synthetic_bursts["impostor"][0])
    assert (d.reason, d.user_id, d.candidate) == ("sensor_mismatch", None, None)


def test_enrolment_and_split_keep_the_full_score(pipes, synthetic_bursts):
    cfg, on, _ = pipes
    on.binding, on.identity = _held, _Identity("checked")
    with pytest.raises(Deny) as e:                 # enrolment: the binding denies
        on.screen(synthetic_bursts["enrol"][0][0])
    assert e.value.reason == "sensor_mismatch"
    on.split = object()                            # split mode: the chain's deny decides first
    try:
        d = on.decide(synthetic_bursts["genuine"][0])
    finally:
        on.split = None
    assert (d.reason, d.binding_size_term) == ("sensor_mismatch", None)


def test_the_audit_and_the_attempts_as_for_any_sensor_mismatch(pipes, synthetic_bursts):
    cfg, on, _ = pipes
    on.binding = _held
    with Gate(cfg, pipeline=on, relay=MemoryRelay()) as gate:
        on.identity = _Identity("checked")
        assert gate.present(synthetic_bursts["genuine"][0]).opened
        on.identity = _Identity("not_enrolled")
        failures = gate.limiter.failures
        d = gate.present(synthetic_bursts["genuine"][0])
        assert (d.reason, d.user_id) == ("sensor_mismatch", None)
        assert gate.limiter.failures == failures + 1         # counted, as any deny
        recs = [r.payload for r in gate.store.audit.records() if r.kind == "decision"]
    opened, denied = recs[-2], recs[-1]
    assert opened["decision"] == "open" and opened["binding_size_term"] == "released"
    assert opened["user_id"] == "person-000"
    assert denied["reason"] == "sensor_mismatch" and "user_id" not in denied
    assert "binding_size_term" not in denied and "hand_size" not in denied
    assert np.isfinite(len(recs))


@pytest.mark.parametrize("overlap", [True, False])
@pytest.mark.parametrize("identity", ["not_enrolled", "size_denied", "no_match"])
def test_a_held_deny_shows_the_stages_of_a_binding_deny(pipes, synthetic_bursts, overlap,
                                                        identity):
    """The journal, the status file and the log read ``stages_ms`` (Decision.summary): a held
    deny must not show the match and identity stages a binding deny never shows -- an
    ``identity`` time there says the palm matched an enrolled person."""
    _, on, off = pipes
    p = on if overlap else off
    g = synthetic_bursts["impostor" if identity == "no_match" else "genuine"][0]

    def plain(burst, out):
        out.binding = 40.0
        raise Deny("sensor_mismatch", "please present your palm again")
    p.binding, p.identity = plain, None
    before = p.decide(g)
    p.binding = _held
    p.identity = {"not_enrolled": _Identity("not_enrolled"), "no_match": _Identity("checked"),
                  "size_denied": _Identity(deny="sensor_identity")}[identity]
    d = p.decide(g)
    assert d.reason == before.reason == "sensor_mismatch"
    assert set(d.stages_ms) == set(before.stages_ms)
    assert d.critical_path == before.critical_path
    assert d.summary().keys() == before.summary().keys()
    assert set(d.summary()["stages_ms"]) == set(before.summary()["stages_ms"])
