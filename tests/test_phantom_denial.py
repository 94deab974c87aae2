"""A presentation the X-ray phantom check refused (device/models/phantom.py) is denied wherever
the sensor stage's result is read: the check fails secure on a NaN or a short output, the gate
keeps its detail and p(phantom), and the evaluations' stage scores and per-check passes count it
denied (its p(live) is above the liveness threshold)."""
from types import SimpleNamespace

import numpy as np
import pytest

from device.models.model import ModelError
from device.models.phantom import PHANTOM_DETAIL, is_phantom
from device.models.sensor_branch import NOT_LIVE, Presentation, SensorBranch


def _phantom_denied():
    return Presentation(False, 0.99, 0.5, np.zeros((256, 256), np.float32), NOT_LIVE, 0.9,
                        PHANTOM_DETAIL, p_phantom=0.95)


def _liveness_denied():
    return Presentation(False, 0.2, 0.5, np.zeros((256, 256), np.float32), NOT_LIVE, 0.9,
                        "p(live) not above the threshold")


def test_nan_is_a_phantom():
    assert bool(is_phantom(np.nan, 0.6))
    assert list(is_phantom([0.5, np.nan, 0.7], 0.6)) == [False, True, True]


def _branch(outputs):
    sb = SensorBranch.__new__(SensorBranch)
    sb.phantom = lambda im: np.asarray(outputs, np.float64)
    sb.phantom.threshold = 0.6
    return sb


def _passed(n):
    return [Presentation(True, 0.99, 0.5, np.zeros((256, 256), np.float32), None, 0.9)
            for _ in range(n)]


def test_phantom_check_fails_secure_on_nan_and_short_output():
    ps = _passed(2)
    _branch([0.1, np.nan])._phantoms(ps)
    assert ps[0].live and ps[0].reason is None
    assert not ps[1].live and ps[1].reason == NOT_LIVE
    with pytest.raises(ModelError):
        _branch([0.1])._phantoms(_passed(2))          # one frame would go unchecked


class _PhantomDeniedStage:
    """The pipeline's sensor stage stand-in: every frame denied by the phantom check."""
    branch = None

    def __call__(self, frame):
        return _phantom_denied()


def test_gate_keeps_the_phantom_detail_and_score():
    from device.gate.decision import Decision, Deny
    from device.gate.pipeline import Pipeline
    out = Decision()
    with pytest.raises(Deny) as e:
        Pipeline._sensor(SimpleNamespace(sensor=_PhantomDeniedStage(),
                                         second_look=lambda *a: False),   # no look taken
                         SimpleNamespace(sensor=None), out)
    assert e.value.reason == NOT_LIVE and e.value.detail == PHANTOM_DETAIL
    assert out.p_phantom == 0.95 and out.live is False


def test_stage_scores_count_a_phantom_denied():
    from device.eval import gate_pad_rates as G
    from device.eval import liveness as L
    fake = SimpleNamespace(judge=lambda frames: [_phantom_denied(), _liveness_denied()])
    s, why = L.stage_scores(fake, [None, None])
    assert s[0] == L.DENIED and s[1] == pytest.approx(0.2) and why == [NOT_LIVE, NOT_LIVE]
    assert L.stage_score(0.99, NOT_LIVE, 0.95) == L.DENIED
    assert L.stage_score(0.99, None, 0.1) == pytest.approx(0.99)
    assert G.stage_score(0.99, NOT_LIVE, 0.95) == G.DENIED
    assert G.stage_score(0.2, NOT_LIVE) == pytest.approx(0.2)


def test_check_margins_live_fails_for_a_phantom():
    from device.eval.check_margins import raw_passes
    th = {"thr": 0.5, "max_score": 30.0, "min_agreement": 0.86, "max_off": 0.055}
    r = {"presence": None, "p_live": 0.99, "binding": 10.0, "agreement": 0.9,
         "size_off": 0.01}
    assert raw_passes(r, th)["live"]
    assert not raw_passes(dict(r, phantom=True), th)["live"]


def _audited(d):
    from device.gate.gate import Gate
    rec = {}
    gate = SimpleNamespace(
        cfg=SimpleNamespace(gate=SimpleNamespace(terminal="t1", mode="identify")),
        pipeline=SimpleNamespace(liveness_threshold=0.5),
        store=SimpleNamespace(audit=SimpleNamespace(append=lambda kind, **p: rec.update(p))))
    Gate._audit(gate, d)
    return rec


def test_audit_says_the_phantom_check_refused_without_its_score():
    from device.gate.decision import Decision
    rec = _audited(Decision(reason=NOT_LIVE, p_live=0.99, live=False, p_phantom=0.95))
    assert rec["liveness"] == "not_live" and rec["phantom"] == "refused"
    assert 0.95 not in rec.values() and "p_phantom" not in rec
    rec = _audited(Decision(decision="open", reason="match", p_live=0.99, live=True,
                            p_phantom=0.1))
    assert rec["phantom"] == "passed"
    assert "phantom" not in _audited(Decision(reason=NOT_LIVE, p_live=0.2, live=False))


def test_the_real_audit_log_takes_every_field_the_gate_writes():
    """The fake store above takes any field; the store's audit log refuses fields it does not
    know (device/store/audit.py ALLOWED), and a refused record is audit_unavailable: every
    X-ray presentation the phantom check ran on was denied (palmgate bench, 2026-12-07)."""
    from device.gate.decision import Decision
    from device.store.audit import ALLOWED
    for d in (Decision(reason=NOT_LIVE, p_live=0.99, live=False, p_phantom=0.95),
              Decision(decision="open", reason="match", p_live=0.99, live=True, p_phantom=0.1)):
        assert set(_audited(d)) <= ALLOWED
