"""A low liveness band held for the palm lines (NIR): a presentation whose p(live) lies in
[signed ``low_live_floor``, the liveness threshold) is not denied at the sensor stage but held;
it opens only when every later check passes and its lines sum reaches the signed
``min_lines_sum_low``, else it is denied ``not_live`` as before. A file without the pair
decides as before."""
import math
from types import SimpleNamespace

import pytest

from device.gate import liveness_band as LB
from device.gate import sensor_identity as S
from device.gate.decision import Deny
from device.gate.sensor_identity_stage import SensorIdentityStage

BASE = {"min_agreement": 0.29, "min_lines_sum": 0.74, "unsure_below": 0.5,
        "min_lines_sum_unsure": 0.87}
BAND = dict(BASE, low_live_floor=0.10, min_lines_sum_low=1.08)


def _doc(**kw):
    return {"sensor_identity": dict(BASE, **kw)}


def test_identity_numbers_read_the_band_pair():
    n = S.identity_numbers(_doc(low_live_floor=0.10, min_lines_sum_low=1.08))
    assert (n["low_live_floor"], n["min_lines_sum_low"]) == (0.10, 1.08)
    n = S.identity_numbers(_doc())
    assert "low_live_floor" not in n and "min_lines_sum_low" not in n


@pytest.mark.parametrize("kw", [
    {"low_live_floor": float("nan"), "min_lines_sum_low": 1.08},
    {"low_live_floor": True, "min_lines_sum_low": 1.08},
    {"low_live_floor": 0.0, "min_lines_sum_low": 1.08},
    {"low_live_floor": 1.0, "min_lines_sum_low": 1.08},
    {"low_live_floor": 0.10, "min_lines_sum_low": float("inf")},
    {"low_live_floor": 0.10, "min_lines_sum_low": 2.5},
    {"low_live_floor": 0.10, "min_lines_sum_low": 0.80},      # looser than the unsure sum
    {"low_live_floor": 0.10},                                 # one of the pair alone
    {"min_lines_sum_low": 1.08},
])
def test_identity_numbers_reject_a_malformed_band_pair(kw):
    with pytest.raises(ValueError):
        S.identity_numbers(_doc(**kw))


def test_the_band_pair_needs_min_lines_sum():
    with pytest.raises(ValueError):
        S.identity_numbers({"sensor_identity": {"min_agreement": 0.29, "low_live_floor": 0.1,
                                                "min_lines_sum_low": 1.08}})


def test_in_band():
    f = LB.in_band
    assert f(0.10, 0.1531, BAND) and f(0.1530, 0.1531, BAND)
    assert not f(0.0999, 0.1531, BAND) and not f(0.1531, 0.1531, BAND)   # live: not held
    assert not f(None, 0.1531, BAND) and not f(math.nan, 0.1531, BAND)
    assert not f(0.12, None, BAND) and not f(0.12, 0.1531, BASE)          # no pair: never
    assert not f(0.12, 0.1531, None)


def test_the_least_sum_of_a_held_presentation():
    f = S.least_lines_sum
    assert f(BAND, 0.12, live=False) == 1.08
    assert f(BAND, 0.12) == 0.87 and f(BAND, 0.12, live=True) == 0.87    # as before
    assert f(BAND, 0.9, live=True) == 0.74
    assert f(BASE, 0.12, live=False) == 0.87          # no band: the strictest it has


def test_check_lines_sum_asks_the_band_sum_of_a_presentation_not_live():
    st = SensorIdentityStage.__new__(SensorIdentityStage)
    out = SimpleNamespace(palm_lines=0.5, p_live=0.12, live=False, sensor_identity=None)
    with pytest.raises(Deny):                          # 0.5 + 0.5 = 1.0 < 1.08
        st.check_lines_sum(0.5, out, BAND)
    st.check_lines_sum(0.625, SimpleNamespace(palm_lines=0.5, p_live=0.12, live=False),
                       dict(BAND, min_lines_sum_low=1.125))       # at the band sum: passes
    st.check_lines_sum(0.5, SimpleNamespace(palm_lines=0.5, p_live=0.12, live=True), BAND)


def test_released_only_a_held_not_live_with_the_identity_checked():
    d = LB.LowLiveDeny("not_live", "", "p(live) in the low band")
    ok = SimpleNamespace(user_id="alice", sensor_identity="checked", palm_lines=0.4)
    assert LB.released(d, ok)
    assert not LB.released(d, SimpleNamespace(user_id=None, sensor_identity="checked",
                                              palm_lines=0.4))
    assert not LB.released(d, SimpleNamespace(user_id="alice", sensor_identity="denied",
                                              palm_lines=0.4))
    assert not LB.released(d, SimpleNamespace(user_id="alice", sensor_identity="checked",
                                              palm_lines=None))     # no lines: sum not asked
    assert not LB.released(Deny("not_live", "", ""), ok)
    assert not LB.released(None, ok)


def test_the_gate_holds_the_band_and_opens_only_with_the_band_sum(tmp_path,
                                                                   synthetic_bursts):
    """Through the real pipeline, overlapped and sequential: a genuine whose p(live) is put
    just under the liveness threshold is denied not_live without the pair, opens
    (``liveness_band`` released) with its lines sum at the band sum, and is denied not_live
    (not sensor_identity) with the band sum above its sum or the floor above its p(live)."""
    from device.gate.enrol import enrol_user
    from tests.test_sensor_identity_stage import _decide, _gate
    b = synthetic_bursts
    pipe, st = _gate(tmp_path)
    try:
        enrol_user(pipe, st, "alice", b["enrol"][0])
        d = _decide(pipe, st, b["genuine"][0])
        assert d.decision == "open" and d.p_live is not None and d.palm_lines is not None
        s = d.sensor_identity_score + d.palm_lines
        n = pipe.identity.numbers
        n.pop("low_live_floor", None), n.pop("min_lines_sum_low", None)
        pipe.sensor.branch.threshold = d.p_live + 1e-6        # now just not live
        for overlap in (True, False):
            pipe.cfg.gate.overlap = overlap
            e = _decide(pipe, st, b["genuine"][0])
            assert (e.decision, e.reason) == ("deny", "not_live")
            n.update(low_live_floor=d.p_live, min_lines_sum_low=s - 1e-6)
            e = _decide(pipe, st, b["genuine"][0])
            assert (e.decision, e.user_id) == ("open", "alice"), e.reason
            assert e.liveness_band == "released" and e.live is False
            n["min_lines_sum_low"] = s + 1e-6
            e = _decide(pipe, st, b["genuine"][0])
            assert (e.decision, e.reason) == ("deny", "not_live")
            assert e.liveness_band is None and e.user_id is None
            n.update(low_live_floor=d.p_live + 1e-6 / 2, min_lines_sum_low=s - 1e-6)
            e = _decide(pipe, st, b["genuine"][0])
            assert (e.decision, e.reason) == ("deny", "not_live")
            n.pop("low_live_floor"), n.pop("min_lines_sum_low")
    finally:
        pipe.close()
        st.close()


def test_the_audit_names_a_released_band():
    from device.gate.decision import Decision
    from device.gate.gate import Gate
    got = []
    g = SimpleNamespace(cfg=SimpleNamespace(gate=SimpleNamespace(terminal="t", mode="m")),
                        pipeline=SimpleNamespace(liveness_threshold=0.1531),
                        store=SimpleNamespace(audit=SimpleNamespace(
                            append=lambda kind, **p: got.append(p))))
    d = Decision(decision="open", reason="match", user_id="alice", p_live=0.12, live=False,
                 liveness_band="released")
    Gate._audit(g, d)
    assert got[-1]["liveness_band"] == "released" and got[-1]["liveness"] == "not_live"
    Gate._audit(g, Decision(decision="deny", reason="not_live", p_live=0.12, live=False))
    assert "liveness_band" not in got[-1]
