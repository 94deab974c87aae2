"""The palm lines both ways (the sensor identity agreement plus the binding's palm-line
agreement) under the signed ``min_lines_sum`` deny ``sensor_identity``."""
from types import SimpleNamespace

import pytest

from device.gate import sensor_identity as S
from device.gate.binding_numbers import load_binding_numbers
from device.gate.decision import Deny
from device.gate.sensor_identity_stage import SensorIdentityStage


def test_identity_numbers_read_and_check_min_lines_sum():
    n = S.identity_numbers({"sensor_identity": {"min_agreement": 0.29, "min_lines_sum": 0.74}})
    assert n["min_lines_sum"] == 0.74
    assert "min_lines_sum" not in S.identity_numbers({"sensor_identity": {"min_agreement": 0.29}})
    for bad in ("0.7", float("nan"), True, 3.0):
        with pytest.raises(ValueError):
            S.identity_numbers({"sensor_identity": {"min_agreement": 0.29, "min_lines_sum": bad}})


def test_lines_sum_is_the_sum_and_none_without_lines():
    assert S.lines_sum(0.5, 0.25) == pytest.approx(0.75)
    assert S.lines_sum(0.5, None) is None


def _stage():
    return SensorIdentityStage.__new__(SensorIdentityStage)


def test_check_lines_sum_denies_below_and_passes_at_or_above():
    st, n = _stage(), {"min_agreement": 0.29, "min_lines_sum": 0.74}
    out = SimpleNamespace(palm_lines=0.2, sensor_identity=None)
    st.check_lines_sum(0.55, out, n)                    # 0.75: passes
    assert out.sensor_identity is None
    out = SimpleNamespace(palm_lines=0.18, sensor_identity=None)
    with pytest.raises(Deny) as e:
        st.check_lines_sum(0.44, out, n)                # 0.62: a vein film's
    assert e.value.reason == "sensor_identity" and out.sensor_identity == "denied"
    assert out.sensor_identity_by == "lines"            # which of the identity checks
    nan = SimpleNamespace(palm_lines=float("nan"), sensor_identity=None)
    with pytest.raises(Deny):                           # not compared: fail secure
        st.check_lines_sum(0.9, nan, n)


def test_check_lines_sum_skipped_without_the_number_or_without_lines():
    st = _stage()
    st.check_lines_sum(0.3, SimpleNamespace(palm_lines=0.0), {"min_agreement": 0.29})
    st.check_lines_sum(0.3, SimpleNamespace(palm_lines=None),
                       {"min_agreement": 0.29, "min_lines_sum": 0.74})


def test_the_signed_nir_file_carries_min_lines_sum():
    n = S.identity_numbers(load_binding_numbers("nir").doc)
    assert 0.5 < n["min_lines_sum"] < 1.0


def test_the_gate_hands_the_binding_lines_to_the_sum_in_both_pipelines(tmp_path,
                                                                       synthetic_bursts):
    """Through the real pipeline: the genuine opens with the signed sum, carries the binding's
    palm-line agreement, and is denied sensor_identity once the sum asked for is out of its
    reach (overlapped and sequential alike)."""
    from device.gate.enrol import enrol_user
    from tests.test_sensor_identity_stage import _decide, _gate
    b = synthetic_bursts
    pipe, st = _gate(tmp_path)
    try:
        enrol_user(pipe, st, "alice", b["enrol"][0])
        d = _decide(pipe, st, b["genuine"][0])
        assert d.decision == "open" and d.palm_lines is not None
        out_of_reach = d.sensor_identity_score + d.palm_lines + 0.01
        pipe.identity.numbers["min_lines_sum"] = out_of_reach
        if pipe.identity.normalising(pipe.identity.numbers):    # the cohort's limit in force
            pipe.identity.numbers["cohort"]["min_lines_sum"] = out_of_reach
        for overlap in (True, False):
            pipe.cfg.gate.overlap = overlap
            d = _decide(pipe, st, b["genuine"][0])
            assert (d.decision, d.reason) == ("deny", "sensor_identity")
            assert (d.sensor_identity, d.sensor_identity_by) == ("denied", "lines")
    finally:
        pipe.close()
        st.close()
