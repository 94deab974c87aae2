"""The X-ray binding's pooled fit: the finger cap, the threshold rule, several seeds."""
import copy

import numpy as np
import pytest

from device.eval import binding_eval as E
from device.gate import binding_geometry as G
from device.gate import sensor_binding as B
from device.gate.binding_numbers import load_binding_numbers, parse_numbers
from device.models.model import ModelError


def test_the_finger_cap_limits_what_one_finger_adds():
    g = G.probe_groups()
    e = np.zeros(len(g))
    e[g == 2] = 10.0                       # the index finger far off
    e[g == 4] = 10.0                       # and the ring finger
    e[np.flatnonzero(g == 0)[0]] = 1.0     # the palm a little
    n2, n4 = int((g == 2).sum()), int((g == 4).sum())
    assert B.trimmed_excess(e, g) == pytest.approx(1.0 + 10.0 * min(n2, n4))
    assert B.trimmed_excess(e, g, 20.0) == pytest.approx(1.0 + 20.0)
    assert B.trimmed_excess(e, g, 1e9) == B.trimmed_excess(e, g)   # a cap never reached


def test_a_malformed_finger_cap_fails_secure():
    n = load_binding_numbers("xray")
    doc = copy.deepcopy(n.doc)
    doc["probe_ranges"]["finger_cap"] = 20.0
    assert parse_numbers(doc, "xray", "binding_xray.json").stats["finger_cap"] == 20.0
    doc["probe_ranges"]["finger_cap"] = -1
    with pytest.raises(ModelError):
        parse_numbers(doc, "xray", "binding_xray.json")
    m = B.HandProbes(values=np.zeros(len(G.probe_groups())), landmarks=np.zeros((21, 2)),
                     views=2, height_mm=0.0, sdf=(np.zeros((4, 4)),))
    assert B.binding_score(m, "nir", dict(doc["probe_ranges"])) == float("inf")
    assert "finger_cap" not in load_binding_numbers("nir").stats   # NIR as it was


def test_the_threshold_rule_leaves_out_hands_that_could_not_be_placed():
    rows = [{"kind": "bona_fide", "score": float(s)} for s in range(1, 201)]
    rows += [{"kind": "bona_fide", "score": 1e9}] * 5 + [{"kind": "bona_fide", "score": None}]
    rows += [{"kind": "attack", "score": 1e9}]
    assert E.max_score_at(rows) == pytest.approx(
        np.ceil(np.quantile(np.arange(1, 201), 0.995) * 10) / 10)
    assert "placed" in E.THRESHOLD_RULE


def test_several_seeds_are_pooled_with_inputs_indexed_by_row(monkeypatch):
    def fake(sensor, seed, nb, nm, inputs=None, **kw):
        rows = [{"kind": "bona_fide" if j < nb else "attack", "score": float(seed)}
                for j in range(nb + nm)]
        if inputs is not None:
            inputs.extend((j, f"frame{seed}-{j}", {}, {}) for j in range(nb + nm))
        return rows
    monkeypatch.setattr(E, "evaluate", fake)
    inputs: list = []
    rows = E.evaluate_seeds("xray", [5, 21], [3, 2], [1], inputs)
    assert [r["seed"] for r in rows] == [5] * 4 + [21] * 3
    assert [r["kind"] for r in rows].count("attack") == 2
    assert [(j, f) for j, f, *_ in inputs][4] == (4, "frame21-0")
    with pytest.raises(ValueError):
        E.evaluate_seeds("xray", [5, 21, 31], [3, 2], [1], [])


def test_the_xray_field_is_not_cut_short_by_a_bright_hand():
    g = np.full((128, 128), 250, np.uint8)               # the collimator's bright rim
    g[10:120, 15:113] = 20                               # the exposed field, dark
    g[80:120, 20:108] = 200                              # a bright hand across its lower part
    rs, cs = B.open_field(g)
    assert rs.stop < 85                                  # the median rule stops above the hand
    rw, cw = B.open_field(g, widest=True)
    assert rw.start == rs.start and rw.stop >= 115 and cw == cs
    clean = np.full((128, 128), 250, np.uint8)
    clean[10:120, 15:113] = 20
    clean[30:80, 40:80] = 200
    assert B.open_field(clean, widest=True) == B.open_field(clean)   # nothing to widen
    assert B.WIDEST_FIELD == {"xray": True, "nir": False}


def test_a_forced_variant_renders_every_mixed_presentation_of_it():
    """``--variant``: both mixed species, each of that variant (the accomplice's hand of the
    victim's side for ``other_hand``)."""
    rows = E.evaluate("xray", 5, 0, 2, variant="other_hand")
    assert [r["variant"] for r in rows] == ["other_hand", "other_hand"]
    assert {r["species"] for r in rows} == {"mixed_replica_views", "mixed_replica_sensor"}
