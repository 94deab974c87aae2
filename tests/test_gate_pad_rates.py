"""The gate's ISO/IEC 30107-3 rates of `palmgate evaluate-liveness --enrol`
(device/eval/gate_pad_rates.py): failures to acquire apart, BPCER over all and over the
acquired, APCER = the gate opened, the stage score of the mode without enrolment."""
import pytest

from device.eval.gate_pad_rates import (DENIED, class_rates, gate_rates, is_fta,
                                        pad_check_reason, pad_reason, stage_score)


def _row(reason, user=None, own="p001", live=True):
    return {"decision": "open" if reason == "match" else "deny", "reason": reason,
            "user_id": user, "expected_user": own, "live": live}


def test_fta_is_a_view_quality_deny():
    assert is_fta("quality:motion_blur") and is_fta("quality:few_views")
    for r in ("not_live", "no_match", "sensor_mismatch", "corrupt_frame", "", None, "match"):
        assert not is_fta(r)


def test_pad_reason_keeps_the_stages_up_to_the_binding():
    for r in ("quality:blur", "no_hand_in_sensor", "not_live", "sensor_mismatch",
              "corrupt_frame", "error:sensor", "timeout:binding", "error:regions"):
        assert pad_reason(r) == r
    for r in ("match", "no_match", "sensor_identity", "error:feature", "timeout:match",
              "expired", "outside_schedule", None, ""):
        assert pad_reason(r) is None


def test_stage_score():
    assert stage_score(0.9, "match") == 0.9
    assert stage_score(0.9, "no_match") == 0.9        # a later stage: the PAD stages passed
    assert stage_score(0.2, "not_live") == 0.2
    assert stage_score(0.9, "sensor_mismatch") == DENIED
    assert stage_score(None, "quality:blur") == DENIED


def test_bona_fide_fta_split():
    rows = [_row("match", "p001"), _row("match", "p001"), _row("match", "p002"),   # other
            _row("no_match"), _row("quality:motion_blur"), _row("not_live")]
    c = class_rates(rows, live=True)
    assert c["fta"] == {"k": 1, "n": 6, "rate": pytest.approx(1 / 6, abs=1e-6)}
    assert c["acquired"] == 5 and c["opened_as_own"] == 2 and c["opened_as_other"] == 1
    assert c["bpcer_all"]["k"] == 4 and c["bpcer_all"]["n"] == 6       # FTA counted
    assert c["bpcer_acquired"] == {"k": 3, "n": 5, "rate": 0.6}         # FTA left out
    assert "apcer" not in c
    # why: the FTA, one PAD check (not_live), recognition twice (nobody found; somebody else)
    assert c["not_opened_by"] == {"fta": 1, "pad": 1, "recognition": 2, "other": 0}
    assert c["bpcer_pad"] == {"k": 1, "n": 5, "rate": 0.2}              # over the acquired


def test_pad_checks_are_the_sensor_stage_the_binding_and_the_identity_checks():
    for r in ("not_live", "sensor_mismatch", "no_hand_in_sensor", "corrupt_frame",
              "timeout:binding", "error:sensor", "sensor_identity", "error:identity",
              "timeout:identity"):
        assert pad_check_reason(r), r
    for r in ("quality:motion_blur", "no_match", "match", "timeout:feature", "expired", None):
        assert not pad_check_reason(r), r
    rows = [_row("sensor_identity", "p001"), _row("timeout:feature"), _row("match", "p001")]
    c = class_rates(rows, live=True)
    assert c["not_opened_by"] == {"fta": 0, "pad": 1, "recognition": 0, "other": 1}
    assert gate_rates(rows, {})["bpcer_pad"] == pytest.approx(1 / 3, abs=1e-6)


def test_attack_rates_and_the_worst_species():
    a = [_row("match", "p001", live=False), _row("not_live", live=False),
         _row("quality:blur", live=False), _row("match", "p007", live=False)]
    b = [_row("sensor_identity", live=False)] * 4
    g = gate_rates([_row("match", "p001"), _row("quality:blur")], {"a": a, "b": b})
    assert g["attack"]["a"]["apcer"] == {"k": 2, "n": 4, "rate": 0.5}      # as anyone
    assert g["attack"]["a"]["apcer_acquired"]["n"] == 3
    assert g["attack"]["a"]["opened_as_own"] == 1                          # the victim
    assert g["attack"]["b"]["identified_as_own"] == 0
    g2 = gate_rates([], {"c": [dict(_row("sensor_identity", live=False), user_id="p001")]})
    assert g2["attack"]["c"]["identified_as_own"] == 1 and g2["apcer_max"] == 0.0
    assert g["apcer_max"] == 0.5 and g["apcer_max_species"] == "a"
    assert g["apcer_max_acquired"] == pytest.approx(2 / 3, abs=1e-6)
    assert g["bpcer_all"] == 0.5 and g["bpcer_acquired"] == 0.0
    assert g["attack_fta"] == {"k": 1, "n": 8, "rate": 0.125}


def test_empty_classes_have_no_rate():
    c = class_rates([], live=True)
    assert c["bpcer_all"]["rate"] is None and c["bpcer_acquired"]["rate"] is None
    g = gate_rates([], {})
    assert g["apcer_max"] is None and g["bpcer_all"] is None


def test_people_who_failed_to_enrol_are_fte_not_bpcer():
    """ISO/IEC 19795-1: a person whose enrolment was refused is a failure to enrol; their
    presentations cannot open as them, so the BPCER of the enrolled is reported beside the
    one over all (which keeps them), with the FTE of the people."""
    rows = [dict(_row("match", "p001"), person=1), dict(_row("not_live"), person=1),
            dict(_row("no_match", own="p002"), person=2),
            dict(_row("no_match", own="p002"), person=2)]
    g = gate_rates(rows, {}, enrolled={1}, people=2)
    assert g["bpcer_all"] == 0.75                                       # everyone
    assert g["bona_fide_enrolled"]["n"] == 2
    assert g["bpcer_enrolled"] == 0.5 and g["bpcer_pad_enrolled"] == 0.5
    assert g["fte"] == {"k": 1, "n": 2, "rate": 0.5}
    assert "bpcer_enrolled" not in gate_rates(rows, {})                 # not given: not said
