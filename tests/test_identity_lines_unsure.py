"""An unsure liveness opens only with strong palm lines: under the signed ``unsure_below``
p(live) the lines sum must reach the signed ``min_lines_sum_unsure`` (else ``min_lines_sum``);
p(live) unknown at the identity stage asks the strict sum; a file without them as before."""
from types import SimpleNamespace

import pytest

from device.gate import sensor_identity as S
from device.gate.decision import Deny
from device.gate.sensor_identity_stage import SensorIdentityStage

BASE = {"min_agreement": 0.29, "min_lines_sum": 0.74}
UNSURE = dict(BASE, unsure_below=0.5, min_lines_sum_unsure=0.87)


def _doc(**kw):
    return {"sensor_identity": dict(BASE, **kw)}


def test_identity_numbers_read_the_unsure_pair():
    n = S.identity_numbers(_doc(unsure_below=0.5, min_lines_sum_unsure=0.87))
    assert (n["unsure_below"], n["min_lines_sum_unsure"]) == (0.5, 0.87)
    n = S.identity_numbers(_doc())
    assert "unsure_below" not in n and "min_lines_sum_unsure" not in n


@pytest.mark.parametrize("kw", [
    {"unsure_below": float("nan"), "min_lines_sum_unsure": 0.87},
    {"unsure_below": True, "min_lines_sum_unsure": 0.87},
    {"unsure_below": "0.5", "min_lines_sum_unsure": 0.87},
    {"unsure_below": 0.0, "min_lines_sum_unsure": 0.87},
    {"unsure_below": 1.5, "min_lines_sum_unsure": 0.87},
    {"unsure_below": 0.5, "min_lines_sum_unsure": float("nan")},
    {"unsure_below": 0.5, "min_lines_sum_unsure": False},
    {"unsure_below": 0.5, "min_lines_sum_unsure": 2.5},
    {"unsure_below": 0.5, "min_lines_sum_unsure": 0.70},      # looser than min_lines_sum
    {"unsure_below": 0.5},                                    # one of the pair alone
    {"min_lines_sum_unsure": 0.87},
])
def test_identity_numbers_reject_a_malformed_unsure_pair(kw):
    with pytest.raises(ValueError):
        S.identity_numbers(_doc(**kw))


def test_identity_numbers_reject_the_unsure_pair_without_min_lines_sum():
    with pytest.raises(ValueError):
        S.identity_numbers({"sensor_identity": {"min_agreement": 0.29, "unsure_below": 0.5,
                                                "min_lines_sum_unsure": 0.87}})


def test_the_least_sum_by_p_live():
    f = S.least_lines_sum
    assert f(UNSURE, 0.3) == 0.87 and f(UNSURE, 0.4999) == 0.87
    assert f(UNSURE, 0.5) == 0.74 and f(UNSURE, 0.9) == 0.74          # at or above: as now
    assert f(UNSURE, None) == 0.87 and f(UNSURE, float("nan")) == 0.87  # unknown: strict
    assert f(BASE, 0.3) == 0.74 and f(BASE, None) == 0.74              # no pair: as today
    assert f({"min_agreement": 0.29}, 0.3) is None                     # no sum at all


def _stage():
    return SensorIdentityStage.__new__(SensorIdentityStage)


def _out(palm_lines, p_live):
    return SimpleNamespace(palm_lines=palm_lines, p_live=p_live, sensor_identity=None)


def test_check_lines_sum_asks_more_when_liveness_is_unsure():
    st = _stage()
    out = _out(0.30, 0.30)                     # sum 0.80 at p(live) 0.30: below 0.87
    with pytest.raises(Deny) as e:
        st.check_lines_sum(0.50, out, UNSURE)
    assert e.value.reason == "sensor_identity"
    assert (out.sensor_identity, out.sensor_identity_by) == ("denied", "lines")
    at = dict(UNSURE, min_lines_sum_unsure=0.875)           # sums exact in binary
    st.check_lines_sum(0.625, _out(0.25, 0.30), at)         # at the unsure sum: passes
    st.check_lines_sum(0.50, _out(0.30, 0.50), UNSURE)      # p(live) at 0.5: 0.74 asked
    st.check_lines_sum(0.50, _out(0.30, 0.30), BASE)        # no pair in the file: as today
    with pytest.raises(Deny):                               # sum under 0.74: denied anyway
        st.check_lines_sum(0.40, _out(0.30, 0.90), UNSURE)
    with pytest.raises(Deny):                               # p(live) not known: strict
        st.check_lines_sum(0.50, _out(0.30, None), UNSURE)
    with pytest.raises(Deny):
        st.check_lines_sum(0.50, SimpleNamespace(palm_lines=0.30), UNSURE)


def test_the_signed_nir_file_carries_the_unsure_pair_and_xray_none():
    from device.gate.binding_numbers import load_binding_numbers
    n = S.identity_numbers(load_binding_numbers("nir").doc)
    assert n["unsure_below"] == 0.5 and n["min_lines_sum_unsure"] == 0.87
    x = S.identity_numbers(load_binding_numbers("xray").doc)
    assert "unsure_below" not in x and "min_lines_sum_unsure" not in x


def test_the_gate_knows_p_live_at_the_identity_stage_in_both_pipelines(tmp_path,
                                                                       synthetic_bursts):
    """Through the real pipeline: a genuine that opens is denied sensor_identity by the lines
    once its p(live) lies under unsure_below and its sum under the unsure sum; at unsure_below
    (not under it) it opens -- overlapped and sequential alike."""
    from device.gate.enrol import enrol_user
    from tests.test_sensor_identity_stage import _decide, _gate
    b = synthetic_bursts
    pipe, st = _gate(tmp_path)
    try:
        enrol_user(pipe, st, "alice", b["enrol"][0])
        d = _decide(pipe, st, b["genuine"][0])
        assert d.decision == "open" and d.p_live is not None and d.palm_lines is not None
        n = pipe.identity.numbers
        n["min_lines_sum"] = d.sensor_identity_score + d.palm_lines - 0.01
        n["min_lines_sum_unsure"] = d.sensor_identity_score + d.palm_lines + 0.01
        for overlap in (True, False):
            pipe.cfg.gate.overlap = overlap
            n["unsure_below"] = d.p_live + 1e-6
            e = _decide(pipe, st, b["genuine"][0])
            assert (e.decision, e.reason) == ("deny", "sensor_identity")
            assert (e.sensor_identity, e.sensor_identity_by) == ("denied", "lines")
            n["unsure_below"] = d.p_live
            e = _decide(pipe, st, b["genuine"][0])
            assert e.decision == "open", e.reason
    finally:
        pipe.close()
        st.close()
