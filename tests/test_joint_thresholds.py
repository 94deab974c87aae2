"""device.eval.joint_thresholds: the sensor stage's PAD thresholds chosen together (pure)."""
import math

import numpy as np
import pytest

from device.eval.joint_thresholds import CHECKS, admitting, choose

TODAY = {"thr": 0.5, "max_score": 30.0, "min_agreement": 0.86, "max_off": 0.055}
C = {c.name: c for c in CHECKS}


def bona(i, **kw):
    rng = np.random.default_rng(i)
    r = {"class": "bona_fide", "presence": None, "p_live": float(1 - 10 ** rng.uniform(-4, -1)),
         "binding": float(rng.uniform(0, 20)), "agreement": float(rng.uniform(0.9, 0.97)),
         "size_off": float(rng.uniform(0, 0.03))}
    r.update(kw)
    return r


def attack(**kw):
    r = {"class": "skeleton_phantom", "presence": None, "p_live": 0.99, "binding": 5.0,
         "agreement": 0.5, "size_off": 0.01}
    r.update(kw)
    return r


BASE = [bona(i) for i in range(200)]


def test_admitting_rounds_past_the_value():
    assert admitting(C["binding"], 31.23) == pytest.approx(31.3)
    assert admitting(C["identity"], 0.85127) == pytest.approx(0.8512)
    assert admitting(C["live"], 0.3) == pytest.approx(0.2999)          # p(live) > thr
    assert admitting(C["size"], 0.0561) == pytest.approx(0.06)


def test_a_check_that_stops_no_attack_near_is_relaxed():
    rows = BASE + [bona(900, binding=33.0), attack(binding=60.0, agreement=0.97)]
    # the attack passes all but the binding, far above 33 (sd of the bona fide binding ~6)
    r = choose(rows, TODAY)
    assert r["thresholds"]["max_score"] == pytest.approx(33.0)
    assert r["bona_fide"]["denied_today"] == 1 and r["bona_fide"]["denied"] == 0
    assert r["attacks"]["pass_all"] == 0 and r["moved"] == ["binding"]


def test_no_room_near_an_attack_that_passes_every_other_check():
    rows = BASE + [bona(900, binding=33.0), attack(binding=34.0, agreement=0.97)]
    r = choose(rows, TODAY)
    assert r["thresholds"] == {**TODAY}
    assert r["moved"] == [] and r["bona_fide"]["denied"] == 1


def test_an_attack_left_on_one_thin_stopper_blocks_the_relaxation():
    # the attack fails the binding (far) and the bone patch by 0.005 (thin): relaxing the
    # binding leaves it on the bone patch alone, without room
    thin = attack(binding=40.0, agreement=0.855)
    r = choose(BASE + [bona(900, binding=41.0), thin], TODAY)
    assert r["thresholds"]["max_score"] == 30.0
    # with room on the bone patch the binding moves
    far = attack(binding=40.0, agreement=0.5)
    r = choose(BASE + [bona(900, binding=41.0), far], TODAY)
    assert r["thresholds"]["max_score"] == pytest.approx(41.0)


def test_jointly_two_checks_move_for_one_bona_fide_and_never_stricter():
    b = bona(900, binding=32.0, agreement=0.84)
    r = choose(BASE + [b, attack(binding=90.0, agreement=0.1)], TODAY)
    assert set(r["moved"]) == {"binding", "identity"}
    assert r["thresholds"]["min_agreement"] == pytest.approx(0.84)
    assert all(r["thresholds"][k] <= TODAY[k] for k in ("thr", "min_agreement"))
    assert all(r["thresholds"][k] >= TODAY[k] for k in ("max_score", "max_off"))


def test_attacks_passing_today_stay_and_presence_or_nan_is_room():
    rows = BASE + [bona(900, binding=33.0), attack(agreement=0.97),
                   attack(binding=33.5, agreement=0.97, presence="no_hand_in_sensor"),
                   attack(binding=33.5, agreement=math.nan)]
    r = choose(rows, TODAY)
    assert r["attacks"]["pass_all_today"] == 1 and r["attacks"]["pass_all"] == 1
    assert r["thresholds"]["max_score"] == pytest.approx(33.0)


def test_nir_checks_are_chosen_only_where_today_has_them():
    nir = dict(TODAY, min_palm_lines=0.17, min_lines_sum=0.74)
    rows = [dict(r, palm_lines=0.3 + 0.1 * r["agreement"], lines_sum=r["agreement"] + 0.3)
            for r in BASE]
    rows += [dict(bona(900), palm_lines=0.16, lines_sum=1.1),
             dict(attack(), palm_lines=0.1, lines_sum=0.6)]
    r = choose(rows, nir)
    assert set(r["thresholds"]) == set(nir)
    assert r["thresholds"]["min_palm_lines"] == pytest.approx(0.16)
    r = choose(rows, TODAY)
    assert "min_palm_lines" not in r["thresholds"]


def test_spread_is_the_bona_fide_tail_toward_the_threshold():
    # most bona fide bindings score 0 mm (no median absolute deviation): the unit is the
    # tail's, (median - 1st percentile) / 2.326 on the "passes more" scale
    rows = [bona(i, binding=0.0 if i % 4 else float(i % 28)) for i in range(200)]
    rows += [bona(900, binding=33.0), attack(binding=80.0, agreement=0.97)]
    r = choose(rows, TODAY)
    assert r["sd"]["binding"] > 0
    assert r["thresholds"]["max_score"] == pytest.approx(33.0)
