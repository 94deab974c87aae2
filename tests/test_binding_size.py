"""X-ray binding by the hand's size and the fingers' directions (device/gate/binding_size.py),
on the drawn hands of conftest (drawn_xray_hand), whose joints and bones are known."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import DRAWN_PX_MM as PX_MM
from conftest import drawn_joint_stats as _stats
from conftest import drawn_xray_hand as _hand
from conftest import xray_probes

from device.gate import binding_joints as J
from device.gate import binding_size as S


def _size_stats(**kw):
    st = _stats(sigma=3.0)
    st.update(size_lo=-0.02, size_hi=0.02, size_slack=S.SIZE_SLACK, size_gain=S.SIZE_GAIN,
              lateral_mu=[[0.0, 0.0]] * 5, lateral_sigma=[[1.0, 1.0]] * 5,
              lateral_free=S.LATERAL_FREE, lateral_gain=S.LATERAL_GAIN)
    st.update(kw)
    return st


def test_joint_scores_is_joint_score_row_by_row():
    rng = np.random.default_rng(3)
    c = rng.uniform(0, J.CAP, (40, 15))
    c[rng.random((40, 15)) < 0.3] = np.nan
    c[0] = np.nan                                      # nothing seen
    want = np.array([J.joint_score(x) for x in c])
    assert np.allclose(S.joint_scores(c), want)


def test_the_size_search_at_zero_is_the_joint_score():
    img, lm = _hand()
    st = _stats(sigma=3.0)
    curve = S.size_curve(img, lm, PX_MM, st)
    i0 = S.STRETCH_GRID.index(0.0)
    assert curve[i0] == pytest.approx(J.joint_score(J.joint_costs(img, lm, PX_MM, st)[0]))


@pytest.mark.parametrize("scale", [0.8, 0.88, 1.0, 1.15, 1.25])
def test_the_sizes_that_fit_are_the_frames_size(scale):
    """The bones drawn ``scale`` times longer than the landmarks say: the sizes that fit lie
    around ``scale - 1``, and only a live hand's (1.0) meets the live range."""
    img, lm = _hand(scale=scale)
    lo, hi = S.size_interval(S.size_curve(img, lm, PX_MM, _stats(sigma=3.0)))
    assert lo - 0.03 <= scale - 1.0 <= hi + 0.03
    assert hi - lo < 0.2
    ex = S.size_excess((lo, hi), -0.02, 0.02)
    assert (ex == 0.0) == (scale == 1.0)
    if scale != 1.0:
        assert ex > 4.0


def test_size_interval_and_excess():
    g = S.STRETCH_GRID
    curve = np.full(len(g), 5.0)
    curve[g.index(0.1)] = 1.0
    curve[g.index(0.12)] = 1.8
    assert S.size_interval(curve, 1.0) == (0.1, 0.12)
    assert S.size_interval(np.full(len(g), np.nan)) == (g[0], g[-1])   # nothing seen: any
    assert S.size_excess((0.1, 0.12), -0.01, 0.02) == pytest.approx(8.0)
    assert S.size_excess((-0.2, -0.05), -0.01, 0.02) == pytest.approx(4.0)
    assert S.size_excess((-0.2, 0.3), -0.01, 0.02) == 0.0


def test_lateral_offsets_find_the_bone_beside_its_axis():
    img, lm = _hand()
    on = S.lateral_offsets(img, lm, PX_MM)
    assert np.all(np.isfinite(on)) and np.abs(on).max() < 0.6
    shifted = cv2.warpAffine(img, np.float32([[1, 0, 3], [0, 1, 0]]), img.shape[::-1],
                             borderMode=cv2.BORDER_REPLICATE)
    off = S.lateral_offsets(shifted, lm, PX_MM)
    n = S.lateral_normals(lm)
    assert np.allclose(off, 3.0 * n[..., 0], atol=0.6)     # the shift seen across each bone
    cut = img.copy()
    cut[:, :] = np.nan
    assert np.all(np.isnan(S.lateral_offsets(cut, lm, PX_MM)))


def test_lateral_score_forgives_a_shifted_hand_not_fingers_of_their_own():
    _, lm = _hand()
    n = S.lateral_normals(lm)
    mu, sig = np.zeros((5, 2)), np.ones((5, 2))
    shift = n @ np.array([2.5, -1.5])                      # the whole hand 3 mm off
    assert S.lateral_score(shift, mu, sig) > 2.0
    assert S.lateral_score(shift, mu, sig, n) == pytest.approx(0.0, abs=1e-9)
    own = shift + np.array([[2.0, 2.5], [-2.0, -2.5], [2.0, 3.0], [-2.0, -2.0], [0.0, 0.0]])
    assert S.lateral_score(own, mu, sig, n) > 2.0           # each finger its own way
    assert S.lateral_score(np.full((5, 2), np.nan), mu, sig, n) == 0.0
    few = np.full((5, 2), np.nan)
    few[:2, 0] = 2.0                                       # too few bones to take a shift out
    assert S.lateral_score(few, mu, sig, n) == pytest.approx(4.0)


def test_size_term_adds_nothing_for_a_live_hand_and_much_for_a_scaled_one():
    img, lm = _hand()
    assert S.size_term(img, lm, PX_MM, _size_stats()) == 0.0
    assert S.size_term(img, lm, PX_MM, _stats()) == 0.0           # numbers without the term
    big, _ = _hand(scale=1.15)
    assert S.size_term(big, lm, PX_MM, _size_stats()) >= 4 * S.SIZE_GAIN * 2.5


def test_fit_size_stats_reads_the_live_hands():
    img, lm = _hand()
    js = _stats(sigma=3.0)
    st = S.fit_size_stats([(img, lm, PX_MM)] * 5, js, q=0.01)
    live = S.size_interval(S.size_curve(img, lm, PX_MM, js))
    assert S.size_excess(live, st["size_lo"], st["size_hi"]) == 0.0
    big, _ = _hand(scale=1.2)
    other = S.size_interval(S.size_curve(big, lm, PX_MM, js))
    assert S.size_excess(other, st["size_lo"], st["size_hi"]) > 5.0
    assert np.allclose(st["lateral_mu"], 0.0, atol=0.6)
    assert np.min(st["lateral_sigma"]) >= S.MIN_LATERAL_SIGMA
    assert {"size_slack", "size_gain", "size_q", "lateral_free", "lateral_gain"} <= set(st)


# ------------------------------------------------------------------ rendered presentations
@pytest.fixture(scope="module")
def people():
    from device.synth.source import SyntheticPeople
    return SyntheticPeople(seed=0, views=3, sensor="xray")


def _size_term(front_end, shot):
    """The size and finger directions' term of one rendered X-ray presentation with the
    signed numbers."""
    from device.gate.binding_numbers import shipped_stats
    m = xray_probes(front_end, shot)
    return S.size_term(m.bones, m.landmarks, m.px_mm, shipped_stats("xray")["joints"])


def test_a_live_hand_has_the_views_size_and_finger_directions(front_end, people):
    from device.synth import bound
    rng = np.random.default_rng(5)
    geom, ident = people._person(0)
    tex = people.synth.palms(ident, 1, rng)[0]
    shot = bound.render_bound(geom, tex, rng, people.rig, "xray")
    assert _size_term(front_end, shot) == 0.0


@pytest.mark.parametrize("species", ["mixed_replica_sensor", "mixed_replica_views"])
def test_a_replica_of_another_size_has_another_size(front_end, people, species):
    """One fixed scale replica per side; the rates over hundreds are in docs/results.md."""
    from device.synth.mixed import render_mixed
    rng = np.random.default_rng(1)
    geom, ident = people._person(0)
    tex = people.synth.palms(ident, 1, rng)[0]
    g2, id2 = people._person(1)
    tex2 = people.synth.palms(id2, 1, rng)[0]
    shot, meta = render_mixed(species, geom, tex, g2, tex2, rng, people.rig, "xray",
                              variant="scale")
    assert abs(meta["scale"] - 1.0) >= 0.1
    assert _size_term(front_end, shot) > 0.0


# ------------------------------------------------------------------ the signed numbers
SIZE_KEYS = ("size_lo", "size_hi", "size_slack", "size_gain", "lateral_mu", "lateral_sigma",
             "lateral_free", "lateral_gain")


def _shipped_xray():
    import json

    from conftest import SHIPPED
    return json.loads((SHIPPED / "binding_xray.json").read_text())


def _with_joints(doc, **kw):
    """``doc`` with its ``joints`` numbers changed (a value None: the key left out)."""
    import copy
    d = copy.deepcopy(doc)
    j = d["probe_ranges"]["joints"]
    for k, v in kw.items():
        if v is None:
            j.pop(k, None)
        else:
            j[k] = v
    return d


@pytest.mark.parametrize("bad", [
    {"size_lo": None},                                  # part of the term: never silently off
    {"lateral_mu": None},
    {"size_hi": float("nan")},                          # max(0, x - NaN) is 0: the term off
    {"lateral_free": float("nan")},
    {"size_slack": float("nan")}, {"size_slack": -1.0},  # no size fits: raised at each one
    {"size_gain": -4.0}, {"lateral_gain": -48.0},       # a negative term lowers the score
    {"size_lo": 0.5},                                   # lo above hi
    {"size_lo": "x"}, {"size_gain": True}, {"size_gain": 10 ** 400},
    {"lateral_mu": [0.0, 0.0]},                         # broadcast against (5, 2) silently
    {"lateral_sigma": 1.0}, {"lateral_sigma": [[0.0, 0.0]] * 5},   # z inf: bones dropped
    {"lateral_mu": [[0.0, 0.0]] * 4}, {"lateral_mu": [[0.0, float("nan")]] * 5},
    {"mu": [0.0] * 14}, {"sigma": [0.0] * 15}, {"dip": [float("nan")] * 15},
    {"stretch_gain": -8.0}, {"stretch_hi": None},
])
def test_malformed_size_or_bone_numbers_are_refused_with_a_clear_reason(bad):
    from device.gate.binding_numbers import parse_numbers
    from device.models.model import ModelError
    doc = _shipped_xray()
    parse_numbers(doc, "xray", "f")
    with pytest.raises(ModelError, match="joints"):
        parse_numbers(_with_joints(doc, **bad), "xray", "f")


@pytest.mark.parametrize("joints", [{}, [], "x", {"mu": [0.0] * 15}])
def test_a_malformed_joints_block_is_refused(joints):
    from device.gate.binding_numbers import parse_numbers
    from device.models.model import ModelError
    doc = _shipped_xray()
    doc["probe_ranges"]["joints"] = joints
    with pytest.raises(ModelError, match="joints"):
        parse_numbers(doc, "xray", "f")


def test_numbers_without_the_term_are_the_documented_older_binding():
    """A signed file from before the term (bone numbers, no size numbers) is read, and the
    term adds nothing: the score is the bones' and the outline's, as that file's threshold
    was chosen for."""
    from device.gate.binding_numbers import parse_numbers
    old = _with_joints(_shipped_xray(), **{k: None for k in SIZE_KEYS + ("size_q",)})
    st = parse_numbers(old, "xray", "f").stats["joints"]
    big, lm = _hand(scale=1.15)
    assert S.size_term(big, lm, PX_MM, st) == 0.0


def test_size_term_refuses_part_of_its_numbers():
    """Numbers handed to the score directly (an evaluation's fit): part of the term is an
    error, never the term switched off."""
    img, lm = _hand(scale=1.15)
    for k in SIZE_KEYS:
        st = _size_stats()
        del st[k]
        with pytest.raises(ValueError, match=k):
            S.size_term(img, lm, PX_MM, st)
    with pytest.raises(ValueError, match="size_hi"):
        S.size_term(img, lm, PX_MM, _size_stats(size_hi=float("nan")))


def test_a_stage_with_malformed_signed_size_numbers_denies_with_the_reason(tiny_models,
                                                                          trust_test_key):
    """Signed, yet part of the term missing: the stage is unavailable and says why."""
    import hashlib
    import json
    import os

    from conftest import binding_stage, sign_models

    from device.gate.decision import Decision, Deny
    from device.sources.replay import Burst
    f = tiny_models / "binding_xray.json"
    os.unlink(f)                                 # a link to the shipped file: replace it
    f.write_text(json.dumps(_with_joints(_shipped_xray(), size_hi=None)))
    man = json.loads((tiny_models / "manifest.json").read_text())
    man["models"]["binding_xray.json"]["sha256"] = hashlib.sha256(f.read_bytes()).hexdigest()
    (tiny_models / "manifest.json").write_text(json.dumps(man))
    stage = binding_stage("xray", sign_models(tiny_models, trust_test_key))
    assert stage.numbers is None and "size_hi" in stage.error
    with pytest.raises(Deny) as e:
        stage(Burst([np.zeros((480, 640, 3), np.uint8)] * 3, np.zeros((128, 128), np.uint8),
                    {}), Decision())
    assert e.value.reason == "liveness_unavailable" and "size_hi" in e.value.detail


@pytest.mark.parametrize("case", ["same point", "nan landmark", "no field", "tiny frame",
                                  "inf bones", "fingers out", "zero-length finger", "black"])
def test_degenerate_inputs_give_a_finite_term_or_none(case):
    """Few or no joints, degenerate landmarks, fingers out of the field: the term is a finite
    number >= 0 (0: judged by the outline and the bones, as the joints it does not see), never
    NaN, negative or an exception."""
    img, lm = _hand()
    if case == "same point":
        lm = np.tile(lm[0], (21, 1))
    elif case == "nan landmark":
        lm = lm.copy()
        lm[7] = np.nan
    elif case == "no field":
        img = np.full_like(img, np.nan)
    elif case == "tiny frame":
        img = np.full((3, 3), 20.0, np.float32)
    elif case == "inf bones":
        img = np.where(img > 100, np.inf, img).astype(np.float32)
    elif case == "fingers out":
        lm = lm + 1000.0
    elif case == "zero-length finger":
        lm = lm.copy()
        lm[[6, 7, 8]] = lm[5]
    elif case == "black":
        img = np.zeros_like(img)
    t = S.size_term(img, lm, PX_MM, _size_stats())
    assert np.isfinite(t) and t >= 0.0
