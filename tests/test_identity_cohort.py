"""The NIR identity agreement normalised by the person's cohort (device/gate/identity_cohort.py):
the pure functions, the template bytes that carry the pair, and the stage judging a user with
the pair normalised and a user enrolled before (no pair) exactly as before."""
import numpy as np
import pytest

from device.gate import identity_cohort as IC
from device.gate import sensor_identity as S

C = {"file": "identity_cohort_nir.npz", "ref_mean": 0.18, "ref_sd": 0.04,
     "min_agreement": 0.287, "min_lines_sum": 0.74}


def _patch(seed, n=80):
    rng = np.random.default_rng(seed)
    lines = rng.normal(size=(n, n)).astype(np.float32)
    w = np.zeros((n, n), np.float32)
    w[10:70, 10:70] = 1
    return lines, w


def test_normalised_maps_the_persons_cohort_onto_the_reference_scale():
    assert IC.normalised(0.30, (0.16, 0.02), C) == pytest.approx(0.18 + 0.04 * 7.0)
    assert IC.normalised(0.18, (0.18, 0.04), C) == pytest.approx(0.18)   # a median person: as raw
    assert np.isnan(IC.normalised(float("nan"), (0.16, 0.02), C))


def test_judged_normalises_only_with_the_persons_pair_and_a_signed_cohort():
    assert IC.judged(0.30, (0.16, 0.02), C) == IC.normalised(0.30, (0.16, 0.02), C)
    assert IC.judged(0.30, None, C) == 0.30                 # enrolled before: raw
    assert IC.judged(0.30, (0.16, 0.02), None) == 0.30      # no signed cohort: raw
    assert np.isnan(IC.judged(float("nan"), None, C))


def test_the_real_nir_measurement_judges_as_the_gates_stage(monkeypatch):
    """device.eval.real_nir_identity's scorer and the stage's scored() are the one rule: a
    palm whose pair is made normalised, one whose pair is not raw, no cohort raw."""
    from device.eval import real_nir_identity as R
    from device.gate.sensor_identity_stage import SensorIdentityStage
    pairs = {"a": (0.16, 0.02), "b": None}
    monkeypatch.setattr(IC, "load_cohort", lambda name, models_dir=None: ["cohort"])
    monkeypatch.setattr(S, "cohort_pair", lambda t, cohort, shift: pairs[t[0]])
    monkeypatch.setattr(S, "best_agreement", lambda t, x, shift, refine=(): 0.30)
    tmpl = {"a": ["a"], "b": ["b"]}
    st = SensorIdentityStage.__new__(SensorIdentityStage)
    for c in (C, None):
        score = R._scorer(tmpl, 6.0, c)
        for p in ("a", "b"):
            st.pair = pairs[p]
            assert score(p, "probe") == st.scored(0.30, {"cohort": c})
    assert R._scorer(tmpl, 6.0, C)("a", "probe") == pytest.approx(0.18 + 0.04 * 7.0)
    assert R._scorer(tmpl, 6.0, C)("b", "probe") == 0.30


def test_cohort_pair_is_cohort_stats_of_the_gates_best_agreement():
    tm = [_patch(0)]
    coh = [_patch(k) for k in range(1, 61)]
    pair = S.cohort_pair(tm, coh, 6.0)
    assert pair is not None
    assert pair == IC.cohort_stats(tm, coh, lambda t, p: S.best_agreement(t, p, 6.0))
    assert S.cohort_pair(tm, coh[:10], 6.0) is None and S.cohort_pair([], coh) is None


def test_in_force_takes_the_cohorts_limits_only_for_a_normalised_score():
    n = {"min_agreement": 0.2899, "min_lines_sum": 0.75, "cohort": C}
    assert IC.in_force(n, False) is n
    m = IC.in_force(n, True)
    assert (m["min_agreement"], m["min_lines_sum"]) == (0.287, 0.74)
    assert IC.in_force({"min_agreement": 0.2899}, True)["min_agreement"] == 0.2899


def test_cohort_numbers_are_checked():
    assert IC.cohort_numbers({}) is None
    assert IC.cohort_numbers({"cohort": C}) == C
    for bad in ({**C, "ref_sd": 0.0}, {**C, "file": "../x.npz"}, {**C, "min_agreement": "x"},
                {k: v for k, v in C.items() if k != "min_lines_sum"}, [1]):
        with pytest.raises(ValueError):
            IC.cohort_numbers({"cohort": bad})


def test_cohort_stats_of_the_best_agreement_over_the_cohort():
    tm = [_patch(0)]
    coh = [_patch(k) for k in range(1, 61)]
    m, s = IC.cohort_stats(tm, coh, S.best_agreement)
    b = np.array([S.best_agreement(tm, c) for c in coh])
    assert (m, s) == pytest.approx((b.mean(), b.std()))
    assert IC.cohort_stats(tm, coh[:10], S.best_agreement) is None     # too few compared
    assert IC.cohort_stats([], coh, S.best_agreement) is None


def test_user_stats_only_when_every_template_carries_the_same_pair():
    assert IC.user_stats([(0.1, 0.02), (0.1, 0.02)]) == (0.1, 0.02)
    assert IC.user_stats([(0.1, 0.02), None]) is None
    assert IC.user_stats([(0.1, 0.02), (0.2, 0.02)]) is None
    assert IC.user_stats([]) is None


def test_template_bytes_of_format_3_carry_the_pair_older_formats_none():
    p, size = _patch(1), np.arange(1, 25, dtype=np.float32)
    new = S.patch_to_bytes(p, size, cohort=(0.17, 0.03))
    (l, w), z, st = S.template_parts(new)
    assert np.allclose(l, p[0], atol=1e-2) and np.array_equal(w, p[1])
    assert np.allclose(z, size) and st == pytest.approx((0.17, 0.03))
    assert S.template_from_bytes(new)[1] is not None               # (patch, size) as before
    for old in (S.patch_to_bytes(p), S.patch_to_bytes(p, size)):
        assert S.template_parts(old)[2] is None
    with pytest.raises(ValueError):
        S.patch_to_bytes(p, None, cohort=(0.17, 0.03))             # the pair needs the size
    with pytest.raises(ValueError):
        S.template_parts(new[:-1])
    with pytest.raises(ValueError):
        S.template_parts(S.patch_to_bytes(p, size, cohort=(0.17, 0.0)))


def test_cohort_file_round_trip():
    coh = [_patch(k) for k in range(3)]
    back = IC.cohort_from_bytes(IC.cohort_to_bytes(coh))
    assert len(back) == 3 and np.allclose(back[1][0], coh[1][0], atol=1e-2)
    assert np.array_equal(back[2][1], coh[2][1])


def test_the_shipped_nir_numbers_name_a_signed_cohort():
    from device.gate.binding_numbers import load_binding_numbers
    n = S.identity_numbers(load_binding_numbers("nir").doc)
    c = n["cohort"]
    assert c is not None and c["min_agreement"] < 1 and c["ref_sd"] > 0
    assert len(IC.load_cohort(c["file"])) >= IC.MIN_COMPARED


def test_a_user_with_the_pair_is_judged_normalised_one_without_as_before(
        tmp_path, synthetic_bursts):
    """... and the decision and its audit record carry both the score judged and the raw
    agreement (the audit as bands around their limits, never the values)."""
    from device.gate.enrol import enrol_user
    from device.gate.gate import Gate, open_store
    from device.gate.pipeline import Pipeline
    from device.relays.factory import MemoryRelay
    from device.store import sensor_templates as ST
    from device.store.audit import bucket_score
    from tests.conftest import gate_config
    b = synthetic_bursts
    cfg = gate_config(tmp_path, liveness={})
    pipe = Pipeline(cfg)
    st = open_store(cfg)
    pipe.attach_store(st)

    def audited():
        return [r.payload for r in st.audit.records() if r.kind == "decision"][-1]
    try:
        enrol_user(pipe, st, "alice", b["enrol"][0])
        pairs = [S.template_parts(x)[2] for x in ST.read(st, "alice")]
        assert pairs and IC.user_stats(pairs) is not None       # every template, one pair
        stage = pipe.identity
        n = stage.numbers
        with Gate(cfg, store=st, pipeline=pipe, relay=MemoryRelay()) as gate:
            d = gate.present(b["genuine"][0])
            assert d.decision == "open", d.reason
            assert d.sensor_identity == "checked" and stage.pair == IC.user_stats(pairs)
            raw = d.sensor_identity_raw
            assert d.sensor_identity_score == pytest.approx(
                IC.normalised(raw, IC.user_stats(pairs), n["cohort"]))
            assert d.sensor_identity_score != pytest.approx(raw)
            rec = audited()
            assert rec["sensor_identity_bucket"] == bucket_score(
                d.sensor_identity_score, n["cohort"]["min_agreement"])
            assert rec["sensor_identity_raw_bucket"] == bucket_score(raw, n["min_agreement"])
            # enrolled before: the same templates without the pair (format 2) -> the raw one
            with st.transaction():
                rows = ST.read(st, "alice")
                ST.delete(st, "alice")
                ST.insert(st, "alice", 1, [S.patch_to_bytes(*S.template_parts(x)[:2])
                                           for x in rows])
            d2 = gate.present(b["genuine"][0])
            assert d2.decision == "open", d2.reason
            assert stage.pair is None and d2.sensor_identity == "checked"
            assert d2.sensor_identity_score == d2.sensor_identity_raw
            rec = audited()
            assert rec["sensor_identity_bucket"] == rec["sensor_identity_raw_bucket"] == \
                bucket_score(d2.sensor_identity_raw, n["min_agreement"])
    finally:
        pipe.close()
        st.close()


def test_status_counts_the_users_judged_on_the_raw_agreement(tmp_path, tiny_models, capsys):
    """`palmgate status`: where the signed NIR numbers name a cohort, how many users hold
    NIR templates without the enrolment's cohort pair (enrolled before it: judged on the raw
    agreement until re-enrolled)."""
    from device.gate import hand_size as H
    from tests.test_hand_size import nir_status
    patch = (np.zeros((8, 8), np.float32), np.ones((8, 8), np.float32))
    size = H.hand_size(np.random.default_rng(0).normal(0, 40, (21, 3)), 1.0)
    rep = nir_status(tmp_path, tiny_models, capsys, {
        uid: [S.patch_to_bytes(patch, size, cohort=c) for c in pairs]
        for uid, pairs in (("alice", ((0.2, 0.04), (0.2, 0.04))), ("bob", (None, None)),
                           ("dave", ((0.2, 0.04), None)))})
    assert rep["store"]["users_without_cohort_pair"] == 2, rep["store"]     # bob, dave
    assert rep["store"]["users_without_hand_size"] == 0, rep["store"]


def test_status_reads_the_signed_binding_file_once(tmp_path, tiny_models, capsys, monkeypatch):
    """`palmgate status` parses the binding file once: the binding's report and the cohort's
    count take the same signed document."""
    import device.gate.binding_numbers as BN
    from tests.test_hand_size import nir_status
    real, loads = BN.load_binding_numbers, []

    def counted(sensor, models_dir=None, trusted_keys=None):
        loads.append(sensor)
        return real(sensor, models_dir, trusted_keys)
    monkeypatch.setattr(BN, "load_binding_numbers", counted)
    patch = (np.zeros((8, 8), np.float32), np.ones((8, 8), np.float32))
    rep = nir_status(tmp_path, tiny_models, capsys,
                     {"bob": [S.patch_to_bytes(patch, np.ones(12, np.float32))]})
    assert rep["store"]["users_without_cohort_pair"] == 1, rep["store"]
    assert loads == ["nir"]
