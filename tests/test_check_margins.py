"""device.eval.check_margins: the pure pass/summary logic (the measurement itself renders and
enrols, docs/results.md)."""
import math

from device.eval.check_margins import passes, summary

TH = {"thr": 0.5, "max_score": 30.0, "min_agreement": 0.86, "max_off": 0.055}


def row(cls="skeleton_phantom", **kw):
    r = {"class": cls, "presence": None, "p_live": 0.9, "binding": 10.0, "agreement": 0.9,
         "size_off": 0.01}
    r.update(kw)
    return r


def test_passes_each_check_on_its_own():
    assert all(passes(row(), TH).values())
    p = passes(row(agreement=0.85), TH)
    assert not p["identity"] and p["live"] and p["binding"]
    assert not passes(row(p_live=0.5), TH)["live"]              # strictly above
    assert passes(row(binding=30.0), TH)["binding"]             # at most
    assert not passes(row(presence="no_hand_in_sensor"), TH)["presence"]


def test_not_measured_fails_secure():
    p = passes(row(p_live=None, binding=math.inf, agreement=None, size_off=float("nan")), TH)
    assert not (p["live"] or p["binding"] or p["identity"] or p["size"])


def test_summary_counts_the_one_check_that_stopped_it():
    rows = [row(), row(agreement=0.8), row(agreement=0.8, binding=40.0),
            row("bona_fide", binding=0.0)]
    s = summary(rows, TH)
    assert s["skeleton_phantom"]["n"] == 3
    assert s["skeleton_phantom"]["pass_all"] == 1
    assert s["skeleton_phantom"]["stopped_only_by"] == {"identity": 1}
    assert s["skeleton_phantom"]["pass"]["binding"] == 2
    assert s["bona_fide"]["terms"]["binding"]["max"] == 0.0


NIR = dict(TH, min_palm_lines=0.17, min_lines_sum=0.74)


def test_nir_checks_palm_lines_and_lines_sum_where_the_thresholds_have_them():
    r = row(palm_lines=0.2, lines_sum=1.1)
    assert set(passes(r, TH)) == {"presence", "live", "binding", "identity", "size"}
    p = passes(r, NIR)
    assert set(p) == {"presence", "live", "binding", "palm_lines", "identity", "lines_sum",
                      "size"} and all(p.values())
    p = passes(row(palm_lines=0.16, lines_sum=0.7), NIR)
    assert not p["palm_lines"] and not p["lines_sum"] and p["identity"]
    assert not passes(row(palm_lines=None, lines_sum=None), NIR)["lines_sum"]
    s = summary([row(palm_lines=0.2, lines_sum=0.7)], NIR)
    assert s["skeleton_phantom"]["stopped_only_by"] == {"lines_sum": 1}


def test_against_the_gates_own_decisions():
    from device.eval.check_margins import against_gate
    rows = [row(decision="open", reason=None), row(agreement=0.8, decision="deny",
                                                   reason="sensor_identity"),
            row(decision="deny", reason="not_live"), row(decision="deny", reason="no_match")]
    g = against_gate(rows, TH)
    assert g["compared"] == 3 and g["agree"] == 2 and g["pass_all_gate_denied"] == 1
    assert g["not_compared"] == {"no_match": 1}


def test_passes_asks_the_unsure_sum_under_unsure_below_as_the_gate():
    th = dict(NIR, unsure_below=0.5, min_lines_sum_unsure=0.87)
    assert passes(row(p_live=0.3, palm_lines=0.2, lines_sum=0.80), th)["lines_sum"] is False
    assert passes(row(p_live=0.3, palm_lines=0.2, lines_sum=0.87), th)["lines_sum"]
    assert passes(row(p_live=0.5, palm_lines=0.2, lines_sum=0.80), th)["lines_sum"]
    assert passes(row(p_live=0.3, palm_lines=0.2, lines_sum=0.80), NIR)["lines_sum"]


def test_passes_releases_the_xray_size_term_as_the_gate_does():
    # device/gate/binding_release.py: a binding over max_score only by the size term is
    # released when the bone patch and the hand size pass (X-ray; NIR rows have no term)
    r = row(binding=40.0, size=25.0)                    # 40 > 30, 40 - 25 <= 30
    assert passes(r, TH)["binding"]
    assert all(passes(r, TH).values())
    assert not passes(dict(r, agreement=0.8), TH)["binding"]      # bone patch fails
    assert not passes(dict(r, size_off=0.2), TH)["binding"]       # hand size fails
    assert not passes(dict(r, size=5.0), TH)["binding"]           # 35 > 30 without it
    assert not passes(row(binding=40.0), TH)["binding"]           # no term: NIR
    assert not passes(dict(r, size=float("nan")), TH)["binding"]  # term not measured
    assert passes(dict(r, binding_wo_size=12.0), TH)["binding"]   # a fused row's own
    assert not passes(dict(r, binding_wo_size=31.0), TH)["binding"]


def test_raw_binding_and_the_release_stay_visible():
    from device.eval.check_margins import binding_released
    r = row(binding=40.0, size=25.0)
    assert binding_released(r, TH)
    assert not binding_released(row(), TH)                         # passes on its own
    assert not binding_released(dict(r, agreement=0.8), TH)
    s = summary([r, row(), row(binding=40.0)], TH)["skeleton_phantom"]
    assert s["pass"]["binding"] == 2 and s["pass_all"] == 2
    assert s["binding_raw_pass"] == 1 and s["binding_released"] == 1


def test_against_gate_counts_a_released_binding_as_passing():
    from device.eval.check_margins import against_gate
    rows = [row(binding=40.0, size=25.0, decision="open", reason=None)]
    g = against_gate(rows, TH)
    assert g["compared"] == 1 and g["agree"] == 1 and g["fails_gate_opened"] == 0


def test_a_person_without_the_cohort_pair_is_a_clear_error_not_a_wrong_scale():
    """Where the signed NIR numbers name a cohort the thresholds in force are the normalised
    score's; a person whose templates lack the pair (an older build's enrolment) is judged raw
    by the gate, so the measurement names them instead of judging a raw score by the
    cohort's limit. X-ray (no cohort) and a person with the pair go on."""
    import pytest

    from device.eval.check_margins import judged_as_thresholds
    cohort = {"min_agreement": 0.29, "cohort": {"min_agreement": 0.287}}
    judged_as_thresholds(cohort, True, 3)
    judged_as_thresholds({"min_agreement": 0.86}, False, 3)
    with pytest.raises(ValueError, match="person 3: .*without the NIR cohort pair"):
        judged_as_thresholds(cohort, False, 3)


def test_burst_terms_refuses_a_person_enrolled_without_the_pair():
    from types import SimpleNamespace as NS

    import pytest

    from device.eval.check_margins import burst_terms
    from device.gate.sensor_identity_stage import SensorIdentityStage
    n = {"min_agreement": 0.29, "shift_mm": 6.0, "hand_size": {"max_off": 0.05},
         "cohort": {"ref_mean": 0.18, "ref_sd": 0.04, "min_agreement": 0.287}}
    st = SensorIdentityStage.__new__(SensorIdentityStage)
    st.numbers, st.sizes = n, []

    def templates(uid, pair):
        st.pair = pair
        return ["patch"]
    st.agreement = lambda tm, frame, probes, n: 0.5
    pipe = NS(calibrate=lambda raw: NS(views=[], sensor="frame"),
              sensor=lambda f: NS(reason=None, p_live=0.9),
              binding=NS(score=lambda v, f, lms: NS(probes=NS(), score=1.0, texture=None)),
              identity=st)
    st.templates = lambda uid: templates(uid, (0.16, 0.02))
    assert burst_terms(pipe, None, NS(), 3, {"found": True})["agreement"] == 0.5
    st.templates = lambda uid: templates(uid, None)              # an older build's templates
    with pytest.raises(ValueError, match="person 3"):
        burst_terms(pipe, None, NS(), 3, {"found": True})
    st.numbers = dict(n, cohort=None)                            # no signed cohort: raw, fine
    assert burst_terms(pipe, None, NS(), 3, {"found": True})["agreement"] == 0.5


def test_against_gate_leaves_out_rows_decided_by_the_second_look():
    """"Passes all" judges frame 0; where the gate took its second look (frame 0 denied
    not_live inside a band, re-captures fused) the gate decided on three frames, so such a row
    is not compared with frame 0's checks: it is counted by how the look ended."""
    from device.eval.check_margins import against_gate
    rows = [row(p_live=0.3, decision="open", reason=None, second_look="opened"),
            row(p_live=0.3, decision="deny", reason="not_live", second_look="denied"),
            row(decision="open", reason=None, second_look=None)]
    g = against_gate(rows, TH)
    assert g["compared"] == 1 and g["agree"] == 1
    assert g["not_compared"] == {"second_look:opened": 1, "second_look:denied": 1}


def test_decide_gives_the_gate_its_re_captures(monkeypatch, tmp_path):
    """check_margins --decide decides as the gate: the presentation's burst gets the second
    look's re-captures (a recorded sensor_N.png or the set's lazy re-render) and the row says
    how a look ended."""
    from types import SimpleNamespace as NS

    import numpy as np

    import device.eval.check_margins as CM
    import device.sources.replay as R
    frame = np.zeros((4, 4), np.uint8)
    burst = NS(sensor=frame, more_sensor=None, views=[])
    monkeypatch.setattr(R, "read_burst", lambda folder: burst)
    monkeypatch.setattr(CM, "burst_terms", lambda pipe, joints, raw, person: {})
    seen = {}

    def decide(raw):
        seen["more"] = raw.more_sensor
        return NS(decision="open", reason=None, user_id="u", second_look="opened")
    asked = []

    def rec(cls, folder, frame0):
        asked.append((cls, str(folder), frame0 is frame))
        return "more"
    r = CM._terms(NS(decide=decide), None, tmp_path / "00001", 1, True, rec, "bona_fide")
    assert seen["more"] == "more" and asked == [("bona_fide", str(tmp_path / "00001"), True)]
    assert r["second_look"] == "opened" and r["decision"] == "open"
    burst.more_sensor = "recorded"                  # a folder with sensor_1.png .. keeps them
    CM._terms(NS(decide=decide), None, tmp_path / "00002", 1, True, rec, "bona_fide")
    assert seen["more"] == "recorded" and len(asked) == 1
