"""The views' hand against the enrolled hand's size (device/gate/hand_size.py): the pure
functions, the template bytes that carry the size, and the identity stage through the real
pipeline, store and shipped (signed) numbers: sized templates check it, templates kept without
a size skip it, a size not the presented hand's denies, a tampered template denies."""
import numpy as np
import pytest

from device.gate import hand_size as H
from device.gate import sensor_identity as S


def _hand(rng, scale=1.0):
    return rng.normal(0, 40, (21, 3)) * scale


def test_size_is_the_pairs_distances_in_mm_and_the_ratio_the_scale():
    rng = np.random.default_rng(0)
    P = _hand(rng)
    s = H.hand_size(P * 3.0, 3.0)                       # 3 px a mm
    assert s.shape == (len(H.SIZE_PAIRS),) and s.dtype == np.float32
    assert np.allclose(s[0], np.linalg.norm(P[0] - P[5]), rtol=1e-5)
    e = [H.hand_size(P, 1.0), H.hand_size(P * 1.01, 1.0)]
    assert H.size_ratio(e, H.hand_size(P * 1.2, 1.0)) == pytest.approx(1.2 / 1.005, rel=0.01)
    assert H.size_ratio(e, H.hand_size(P, 1.0)) == pytest.approx(1.0, abs=0.01)
    assert H.size_off(1.1) == pytest.approx(0.1) and H.size_off(1 / 1.1) == pytest.approx(0.1)
    assert H.size_off(float("nan")) == float("inf") and H.size_off(0.0) == float("inf")


def test_missing_landmarks_and_too_few_distances():
    rng = np.random.default_rng(1)
    P = _hand(rng)
    assert H.hand_size(None, 1.0) is None and H.hand_size(P, 0.0) is None
    assert H.hand_size(P[:20], 1.0) is None
    Q = P.copy()
    Q[[6, 10, 14, 18, 2]] = np.nan                      # a finger joint of each finger
    s = H.hand_size(Q, 1.0)
    assert np.isnan(s).sum() == 10
    e = [H.hand_size(P, 1.0)]
    assert H.size_ratio(e, s) == pytest.approx(1.0)     # 14 distances left
    assert np.isnan(H.size_ratio(e, s, min_distances=15))
    assert np.isnan(H.size_ratio([], s)) and np.isnan(H.size_ratio(e, None))
    assert np.isnan(H.size_ratio(e, np.full(len(H.SIZE_PAIRS), np.nan)))


def test_template_bytes_carry_the_size_sealed_with_the_patch():
    rng = np.random.default_rng(2)
    patch = (rng.normal(size=(8, 8)).astype(np.float32),
             (rng.random((8, 8)) > 0.5).astype(np.float32))
    size = H.hand_size(_hand(rng), 1.0)
    old = S.patch_to_bytes(patch)
    new = S.patch_to_bytes(patch, size)
    assert old[4] == 1 and new[4] == 2 and new.startswith(old[:4])
    (l1, w1), z1 = S.template_from_bytes(old)
    (l2, w2), z2 = S.template_from_bytes(new)
    assert z1 is None and np.array_equal(z2, size)
    assert np.array_equal(l1, l2) and np.array_equal(w1, w2)
    assert np.array_equal(S.patch_from_bytes(new)[1], w1)
    for bad in (new[:-1], new + b"\0", old + b"\0", new[:len(old)],
                new[:len(old)] + b"\x05" + new[len(old) + 1:]):
        with pytest.raises(ValueError):
            S.template_from_bytes(bad)


def test_size_numbers_are_checked():
    assert H.size_numbers({}) is None
    assert H.size_numbers({"hand_size": {"max_off": 0.06}}) == \
        {"max_off": 0.06, "min_distances": H.MIN_DISTANCES}
    for bad in ({"max_off": 0}, {"max_off": 1.5}, {"max_off": True}, {"max_off": "0.1"},
                {"max_off": 0.1, "min_distances": 0}, {"max_off": 0.1, "min_distances": 99},
                [0.1]):
        with pytest.raises(ValueError):
            H.size_numbers({"hand_size": bad})


def test_shipped_numbers_have_a_tolerance_for_both_sensors():
    from device.gate.binding_numbers import load_binding_numbers
    for sensor in ("nir", "xray"):
        n = S.identity_numbers(load_binding_numbers(sensor).doc)
        assert 0 < n["hand_size"]["max_off"] < 0.1


# ------------------------------------------------------------------ through the real gate
from tests.test_sensor_identity_stage import _decide, _gate  # noqa: E402 - the same set-up


def _rewrite(st, user, f):
    """The user's sensor templates replaced through the store (audited writes), each blob
    passed through ``f``."""
    from device.store import sensor_templates as ST
    blobs = [f(b) for b in ST.read(st, user)]
    with st.transaction():
        ST.delete(st, user)
        ST.insert(st, user, 1, blobs)


def test_sized_templates_check_it_old_ones_skip_it_another_size_denies(
        tmp_path, synthetic_bursts):
    from device.gate.enrol import enrol_user
    b = synthetic_bursts
    pipe, st = _gate(tmp_path)
    try:
        enrol_user(pipe, st, "alice", b["enrol"][0])
        d = _decide(pipe, st, b["genuine"][0])
        assert d.decision == "open" and d.user_id == "alice", d.reason
        assert d.hand_size == "checked" and d.sensor_identity == "checked"
        assert abs(d.hand_size_ratio - 1) <= \
            pipe.identity.numbers["hand_size"]["max_off"]
        ratio = d.hand_size_ratio

        def scaled(k):
            def f(blob):
                p, z = S.template_from_bytes(blob)
                return S.patch_to_bytes(p, z * k)
            return f
        _rewrite(st, "alice", scaled(1.2))              # enrolled 20 % larger
        d = _decide(pipe, st, b["genuine"][0])
        assert (d.decision, d.reason, d.user_id) == ("deny", "sensor_identity", "alice")
        assert d.hand_size == "denied" and d.hand_size_ratio == pytest.approx(ratio / 1.2,
                                                                              rel=1e-3)
        pipe.cfg.gate.overlap = False                   # the sequential pipeline alike
        assert _decide(pipe, st, b["genuine"][0]).hand_size == "denied"
        pipe.cfg.gate.overlap = True
        _rewrite(st, "alice", lambda blob: S.patch_to_bytes(S.patch_from_bytes(blob)))
        d = _decide(pipe, st, b["genuine"][0])           # as enrolled before the size
        assert d.decision == "open" and d.hand_size == "not_enrolled", d.reason
        assert d.sensor_identity == "checked"
    finally:
        pipe.close()
        st.close()


def test_a_tampered_template_denies(tmp_path, synthetic_bursts):
    from device.gate.enrol import enrol_user
    b = synthetic_bursts
    pipe, st = _gate(tmp_path)
    try:
        enrol_user(pipe, st, "alice", b["enrol"][0])
        row = st.conn.execute("SELECT rowid, sealed FROM sensor_templates").fetchone()
        sealed = bytearray(row[1])
        sealed[-5] ^= 0x40                              # the size's last distance, raw
        st.conn.execute("UPDATE sensor_templates SET sealed=? WHERE rowid=?",
                        (bytes(sealed), row[0]))
        st.conn.commit()
        d = _decide(pipe, st, b["genuine"][0])
        assert d.decision == "deny" and d.reason.startswith("error:"), d.reason
    finally:
        pipe.close()
        st.close()


# ------------------------------------------------------------------ enrolment keeps a size
def test_an_enrolment_presentation_without_a_measured_size_keeps_no_unsized_template(
        tmp_path, synthetic_bursts):
    """A sensor template kept without a size would skip the size check at every decision
    (``not_enrolled``): the presentation's sensor template is dropped instead, and with none
    left the enrolment is refused, as for a presentation without a palm patch."""
    from device.gate.enrol import EnrolmentRefused, enrol_user
    from device.store import sensor_templates as ST
    b = synthetic_bursts
    pipe, st = _gate(tmp_path)
    try:
        real = pipe.identity.size
        pipe.identity.size = lambda probes: None             # the size not measured
        with pytest.raises(EnrolmentRefused) as e:
            enrol_user(pipe, st, "alice", b["enrol"][0])
        assert e.value.reason == "sensor_identity"
        assert st.get_user("alice") is None and ST.count(st) == 0
        calls = []

        def few(probes):                                   # first: 5 distances only
            z = real(probes)
            if not calls:
                z = z.copy()
                z[5:] = np.nan
            calls.append(1)
            return z
        pipe.identity.size = few
        r = enrol_user(pipe, st, "alice", b["enrol"][0])
        assert r["sensor_templates"] == 1
        sizes = [S.template_from_bytes(x)[1] for x in ST.read(st, "alice")]
        assert all(z is not None and np.isfinite(z).sum() >= H.MIN_DISTANCES for z in sizes)
    finally:
        pipe.close()
        st.close()


def test_hand_size_takes_any_real_scale():
    """A numpy scalar scale (float32) is a scale, not 'no size' (which enrolment would keep
    as a template without a size)."""
    P = _hand(np.random.default_rng(3))
    ref = H.hand_size(P, 2.0)
    for px in (np.float32(2.0), np.float64(2.0), 2):
        z = H.hand_size(P, px)
        assert z is not None and np.allclose(z, ref, rtol=1e-5)
    for bad in (0, -1.0, float("nan"), float("inf"), np.float32("nan"), None, "2", True):
        assert H.hand_size(P, bad) is None


def nir_status(tmp_path, tiny_models, capsys, users: dict) -> dict:
    """`palmgate status` of an NIR gate (identity check ``when_enrolled``) whose store holds
    ``users``: each user's sensor template bytes (none: no sensor templates)."""
    import json

    from conftest import write_toml

    from device.cli import main
    from device.gate.gate import open_store
    from device.protect.core import enrol
    from device.store import sensor_templates as ST
    from tests.conftest import gate_config
    cfg = gate_config(tmp_path, tiny_models, liveness={"sensor": "nir",
                                                       "sensor_identity": "when_enrolled"})
    f = write_toml(tmp_path / "x.toml", cfg)
    v = np.random.default_rng(0).standard_normal((49, 16))
    with open_store(cfg) as st, st.transaction():
        for uid, blobs in users.items():
            ver = st.enrol(uid, [enrol(v / np.linalg.norm(v, axis=-1, keepdims=True))],
                           audit={"sensor_templates": len(blobs)})
            if blobs:
                ST.insert(st, uid, ver, blobs, "nir_palm_patch")
    main(["status", "--config", str(f)])
    return json.loads(capsys.readouterr().out)


def test_status_says_which_users_the_size_check_skips_and_its_tolerance(
        tmp_path, tiny_models, capsys):
    """`palmgate status`: the signed tolerance in force beside the binding numbers, and how
    many users hold sensor templates of this gate's kind none of which carries a size (each
    passes the size check unchecked, ``not_enrolled``: re-enrol them)."""
    patch = (np.zeros((8, 8), np.float32), np.ones((8, 8), np.float32))
    size = H.hand_size(_hand(np.random.default_rng(0)), 1.0)
    rep = nir_status(tmp_path, tiny_models, capsys, {
        uid: [S.patch_to_bytes(patch, size if z else None) for z in sized]
        for uid, sized in (("alice", (True, False)), ("bob", (False, False)), ("carol", ()))})
    assert rep["store"]["users_without_hand_size"] == 1, rep["store"]     # bob
    assert rep["store"]["users_without_sensor_templates"] == 1, rep["store"]   # carol
    assert rep["models"]["binding_nir.json"]["hand_size_max_off"] == pytest.approx(0.055)


def test_the_gate_audits_a_hand_size_denial_and_counts_it_as_a_failed_attempt(
        tmp_path, synthetic_bursts):
    """Through the gate (relay, audit, attempt limiter): a hand-size denial is audited with
    ``hand_size = denied`` and ``reason = sensor_identity``, never pulses the relay and counts
    against the identified user; the genuine presentation's record says ``checked``."""
    import json

    from device.gate.enrol import enrol_user
    from device.gate.gate import Gate
    from device.gate.pipeline import Pipeline
    from device.relays.factory import MemoryRelay
    from tests.conftest import gate_config
    b = synthetic_bursts
    cfg = gate_config(tmp_path, liveness={})
    relay = MemoryRelay()
    with Gate(cfg, pipeline=Pipeline(cfg), relay=relay) as gate:
        enrol_user(gate.pipeline, gate.store, "alice", b["enrol"][0])
        gate.pipeline.load_gallery(gate.store)
        d = gate.present(b["genuine"][0])
        assert d.decision == "open" and d.hand_size == "checked", d.reason

        def scaled(blob):
            p, z = S.template_from_bytes(blob)
            return S.patch_to_bytes(p, z * 1.2)
        _rewrite(gate.store, "alice", scaled)
        gate.pipeline.load_gallery(gate.store)
        pulses = sum(1 for _, _, on in relay.events if on)
        d = gate.present(b["genuine"][0])
        assert (d.decision, d.reason, d.hand_size) == ("deny", "sensor_identity", "denied")
        assert sum(1 for _, _, on in relay.events if on) == pulses
        assert gate.limiter.user_failures("alice") == 1
        recs = [json.loads(p) for (p,) in gate.store.conn.execute(
            "SELECT payload FROM audit WHERE kind='decision' ORDER BY seq")]
        assert [(r["decision"], r.get("hand_size"), r.get("sensor_identity_by"))
                for r in recs[-2:]] == [("open", "checked", None),
                                        ("deny", "denied", "size")], recs[-2:]


def test_a_size_not_measured_or_not_signed_denies_it_never_skips(tmp_path, synthetic_bursts):
    """A sized user: the presented size not measured (no landmarks, NaN distances) denies
    ``sensor_identity``; an enrolled size of NaNs denies; no signed hand_size numbers deny
    ``liveness_unavailable``; malformed ones (NaN, negative tolerance) too. None of them
    reads as ``not_enrolled``."""
    from device.gate.enrol import enrol_user
    b = synthetic_bursts
    pipe, st = _gate(tmp_path)
    try:
        enrol_user(pipe, st, "alice", b["enrol"][0])
        real = pipe.identity.size
        for fake in (lambda p: None, lambda p: np.full(len(H.SIZE_PAIRS), np.nan),
                     lambda p: np.full(len(H.SIZE_PAIRS), np.inf)):
            pipe.identity.size = fake
            d = _decide(pipe, st, b["genuine"][0])
            assert (d.decision, d.reason, d.hand_size) == ("deny", "sensor_identity",
                                                           "denied")
        pipe.identity.size = real
        numbers = pipe.identity.numbers
        pipe.identity.numbers = dict(numbers, hand_size=None)
        d = _decide(pipe, st, b["genuine"][0])
        assert (d.decision, d.reason) == ("deny", "liveness_unavailable")
        for bad in ({"max_off": float("nan")}, {"max_off": -0.05}, {}):
            with pytest.raises(ValueError):
                S.identity_numbers({"sensor_identity": {"min_agreement": 0.3,
                                                        "hand_size": bad}})
        pipe.identity.numbers = numbers
        _rewrite(st, "alice", lambda blob: S.patch_to_bytes(
            S.patch_from_bytes(blob), np.full(len(H.SIZE_PAIRS), np.nan, np.float32)))
        d = _decide(pipe, st, b["genuine"][0])
        assert (d.decision, d.reason, d.hand_size) == ("deny", "sensor_identity", "denied")
    finally:
        pipe.close()
        st.close()


def test_a_user_with_sized_and_unsized_templates_is_checked(tmp_path, synthetic_bursts):
    """One template without a size beside a sized one: the check runs on the sized one (a
    template without a size does not switch it off for the user)."""
    from device.gate.enrol import enrol_user
    b = synthetic_bursts
    pipe, st = _gate(tmp_path)
    try:
        enrol_user(pipe, st, "alice", b["enrol"][0])
        seen = []

        def first_unsized(blob):
            p, z = S.template_from_bytes(blob)
            seen.append(1)
            return S.patch_to_bytes(p, None if len(seen) == 1 else z * 1.2)
        _rewrite(st, "alice", first_unsized)
        d = _decide(pipe, st, b["genuine"][0])
        assert (d.decision, d.hand_size) == ("deny", "denied"), d.reason
    finally:
        pipe.close()
        st.close()


def test_the_size_measurement_enrols_each_person_from_the_presentations_asked():
    """``hand_size_eval measure --enrol-presentations N``: the first try's N enrolment
    presentations (as enrol_people takes them) give the enrolled size; 2 by default, so the
    commands recorded before reproduce."""
    from device.eval import hand_size_eval as E
    assert list(E.enrol_numbers()) == [0, 1]
    assert list(E.enrol_numbers(3)) == [0, 1, 2]
    with pytest.raises(ValueError):
        E.enrol_numbers(0)
