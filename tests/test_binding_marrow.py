"""The X-ray bones' marrow (device/gate/binding_marrow.py): a filled bone against a shell, on
drawn profiles and the drawn hands of conftest (drawn_xray_hand), then on rendered
presentations (a live hand, a skeleton phantom) with the signed numbers."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import DRAWN_PX_MM as PX_MM
from conftest import drawn_xray_hand as _hand
from conftest import xray_probes

from device.gate import binding_joints as J
from device.gate import binding_marrow as M

NUMBERS = {"marrow_free": 0.03, "marrow_gain": M.MARROW_GAIN}


def _bump(o, centre=0.0, width=3.0):
    return 20.0 + 130.0 * np.exp(-0.5 * ((o - centre) / width) ** 2)


def _shell(o, centre=0.0):
    """Two cortical walls 3 mm either side of a darker middle."""
    return 20.0 + 100.0 * (np.exp(-0.5 * ((o - centre - 3) / 1.2) ** 2)
                           + np.exp(-0.5 * ((o - centre + 3) / 1.2) ** 2))


def test_a_filled_bone_is_not_hollow_and_a_shell_is():
    o = M.offsets()
    assert M.hollowness(_bump(o), o) <= 0.0
    assert M.hollowness(_bump(o, centre=2.5), o) <= 0.0       # off the axis: still filled
    assert M.hollowness(_shell(o), o) > 0.3
    assert M.hollowness(_shell(o, centre=-2.0), o) > 0.3


def test_hollowness_of_a_profile_it_cannot_read_is_nan():
    o = M.offsets()
    p = _bump(o)
    p[3] = np.nan
    assert np.isnan(M.hollowness(p, o))
    assert np.isnan(M.hollowness(np.full_like(o, 50.0), o))  # no range
    assert np.isnan(M.hollowness(_bump(o)[:-1], o))           # another length


def _hollow_hand():
    """The drawn hand with each finger a shell: a darker core down the middle of the bone."""
    img, lm = _hand()
    c = np.array([100.0, 150.0])
    core = img.copy()
    for chain in J.CHAINS:
        p0, p1 = lm[chain[0]], lm[chain[3]]
        u = (p1 - c) / np.linalg.norm(p1 - c)
        a, b = c + u * 5, c + u * 95
        cv2.line(core, tuple(int(round(v)) for v in a), tuple(int(round(v)) for v in b),
                 60.0, 2)
    return cv2.GaussianBlur(core, (0, 0), 0.5), lm


def test_a_hand_of_shells_scores_above_the_live_hand():
    img, lm = _hand()
    hollow, _ = _hollow_hand()
    live = M.marrow_score(img, lm, PX_MM)
    shells = M.marrow_score(hollow, lm, PX_MM)
    assert live == 0.0
    assert shells > 0.1
    assert M.marrow_term(img, lm, PX_MM, NUMBERS) == 0.0
    assert M.marrow_term(hollow, lm, PX_MM, NUMBERS) > 100.0


def test_no_bone_seen_adds_nothing():
    img, lm = _hand()
    assert M.marrow_score(np.full_like(img, np.nan), lm, PX_MM) == 0.0
    assert M.marrow_score(img, np.full_like(lm, np.nan), PX_MM) == 0.0


def test_without_marrow_numbers_the_term_is_off_and_part_of_them_is_refused():
    hollow, lm = _hollow_hand()
    assert M.marrow_term(hollow, lm, PX_MM, {}) == 0.0
    with pytest.raises(ValueError, match="marrow_gain"):
        M.marrow_term(hollow, lm, PX_MM, {"marrow_free": 0.03})


def test_fit_marrow_stats_reads_the_live_hands():
    img, lm = _hand()
    st = M.fit_marrow_stats([(img, lm, PX_MM)] * 5)
    assert st["marrow_free"] == 0.0 and st["marrow_gain"] == M.MARROW_GAIN
    assert M.marrow_numbers_problem(st) is None


# ------------------------------------------------------------------ rendered presentations
@pytest.fixture(scope="module")
def people():
    from device.synth.source import SyntheticPeople
    return SyntheticPeople(seed=0, views=3, sensor="xray")


def _marrow(front_end, shot):
    from device.gate.binding_numbers import shipped_stats
    m = xray_probes(front_end, shot)
    return M.marrow_term(m.bones, m.landmarks, m.px_mm, shipped_stats("xray")["joints"])


def test_a_live_hand_has_marrow(front_end, people):
    from device.synth import bound
    rng = np.random.default_rng(5)
    geom, ident = people._person(0)
    tex = people.synth.palms(ident, 1, rng)[0]
    shot = bound.render_bound(geom, tex, rng, people.rig, "xray")
    assert _marrow(front_end, shot) == 0.0


def test_a_skeleton_phantom_with_dried_bones_is_hollow(front_end, people):
    """One fixed phantom whose dried bones show (about a quarter of them do); the rates over
    hundreds are in docs/results.md."""
    from device.synth.species_presentations import render_species
    rng = np.random.default_rng(0)
    geom, ident = people._person(0)
    g2, id2 = people._person(1)
    tex = people.synth.palms(ident, 1, rng)[0]
    tex2 = people.synth.palms(id2, 1, rng)[0]
    shot, meta = render_species("skeleton_phantom", geom, tex, g2, tex2, rng, people.rig,
                                "xray")
    assert meta["species"] == "skeleton_phantom"
    assert _marrow(front_end, shot) > 0.0


# ------------------------------------------------------------------ the signed numbers
def _shipped_joints_doc(**kw):
    import copy
    import json

    from conftest import SHIPPED
    d = copy.deepcopy(json.loads((SHIPPED / "binding_xray.json").read_text()))
    for k, v in kw.items():
        if v is None:
            d["probe_ranges"]["joints"].pop(k, None)
        else:
            d["probe_ranges"]["joints"][k] = v
    return d


def test_the_signed_file_carries_the_marrow_numbers():
    from device.gate.binding_numbers import shipped_stats
    j = shipped_stats("xray")["joints"]
    assert M.marrow_numbers_problem(j) is None
    assert j["marrow_gain"] == M.MARROW_GAIN and 0 < j["marrow_free"] < 0.1


@pytest.mark.parametrize("bad", [
    {"marrow_free": None}, {"marrow_gain": None},           # part of the term: never silently off
    {"marrow_free": float("nan")}, {"marrow_gain": float("inf")},
    {"marrow_free": -0.01}, {"marrow_gain": -2000.0},       # a negative term lowers the score
    {"marrow_free": "x"}, {"marrow_gain": True},
])
def test_malformed_marrow_numbers_are_refused_with_a_clear_reason(bad):
    from device.gate.binding_numbers import parse_numbers
    from device.models.model import ModelError
    parse_numbers(_shipped_joints_doc(), "xray", "f")
    with pytest.raises(ModelError, match="marrow"):
        parse_numbers(_shipped_joints_doc(**bad), "xray", "f")


def test_a_free_level_no_marrow_score_can_reach_is_refused():
    """The marrow score is at most 1 (a rim cannot stand above the middle by more than the
    profile's range): a free level of 1 or more switches the term off without saying so."""
    from device.gate.binding_numbers import parse_numbers
    from device.models.model import ModelError
    o = M.offsets()
    deepest = np.zeros_like(o)                  # rims at the top, the middle at the bottom
    deepest[(np.abs(o) >= M.RIM_MM[0]) & (np.abs(o) <= M.RIM_MM[1])] = 1.0
    assert M.hollowness(deepest, o) <= 1.0
    for free in (1.0, 5.0):
        with pytest.raises(ModelError, match="marrow_free"):
            parse_numbers(_shipped_joints_doc(marrow_free=free), "xray", "f")
    assert M.marrow_numbers_problem({"marrow_free": 0.999, "marrow_gain": 1.0}) is None


def test_a_shell_with_a_dense_core_reads_filled():
    """A known limit (docs/sensor-branch.md, "What it does not stop"): the term reads the
    canal's density only, so a dense strip down each shell's middle reads as a live bone."""
    hollow, lm = _hollow_hand()
    cored = hollow.copy()
    c = np.array([100.0, 150.0])
    for chain in J.CHAINS:
        u = (lm[chain[3]] - c) / np.linalg.norm(lm[chain[3]] - c)
        a, b = c + u * 5, c + u * 95
        cv2.line(cored, tuple(int(round(v)) for v in a), tuple(int(round(v)) for v in b),
                 200.0, 1)
    assert M.marrow_score(hollow, lm, PX_MM) > 0.1
    assert M.marrow_score(cv2.GaussianBlur(cored, (0, 0), 0.5), lm, PX_MM) == 0.0


def test_a_file_from_before_the_term_is_read_but_said_so(caplog):
    """A file without the marrow numbers (a release from before the term, or a models folder
    rolled back to one) scores as before it -- and the log says the term is off."""
    import logging

    from device.gate.binding_numbers import parse_numbers
    with caplog.at_level(logging.WARNING, logger="palmgate.gate"):
        parse_numbers(_shipped_joints_doc(), "xray", "f")
    assert "marrow" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="palmgate.gate"):
        parse_numbers(_shipped_joints_doc(marrow_free=None, marrow_gain=None), "xray", "f")
    assert "marrow" in caplog.text and "off" in caplog.text
