"""The palm-line check's operating point chosen on validation rows (device/eval/
palm_line_point.py): the pair that denies the most mixed presentations within the bona fide
share, and its writing into the signed file."""
import json
import os

import pytest

from device.eval.palm_line_point import choose_point, operating_points


def _rows():
    bf = [{"kind": "bona_fide", "score": s, "texture": t} for s, t in
          [(1.0, 0.5)] * 190 + [(2.0, 0.30), (3.0, 0.04), (40.0, 0.6), (1e9, None)] +
          [(1.0, 0.4)] * 6]
    at = [{"kind": "attack", "score": s, "texture": t} for s, t in
          [(0.5, 0.02)] * 50 + [(0.5, 0.2)] * 30 + [(50.0, 0.6)] * 20 + [(None, None)] * 3]
    return bf + at


def test_the_point_denies_the_most_mixed_within_the_share():
    p = choose_point(_rows(), 0.01)           # 200 bona fide: 2 may be denied
    # the unplaced hand is one; the outline kept at 40.0 leaves the other to the lines (the
    # 0.04 hand), so the lines may rise to 0.30 and deny every mixed presentation; the
    # outline at 3.0 would spend the share on the 40.0 hand (lines at 0.04: 70 denied)
    assert p["bona_fide_denied"] == 2 and p["bona_fide"] == 200 and p["mixed"] == 100
    assert (p["max_score"], p["min_agreement"], p["mixed_denied"]) == (40.0, 0.3, 100)
    q = choose_point(_rows(), 0.005)          # 1 may be denied: the unplaced hand
    assert (q["max_score"], q["min_agreement"], q["mixed_denied"]) == (40.0, 0.04, 70)
    assert p == choose_point(_rows(), 0.01)   # a pure function of the rows


def test_no_point_within_the_share_is_an_error():
    rows = [{"kind": "bona_fide", "score": 1e9, "texture": None}] * 10
    with pytest.raises(ValueError):
        choose_point(rows, 0.05)
    assert operating_points(rows) == {}


def test_the_point_is_written_into_the_signed_file(tiny_models, trust_test_key):
    from conftest import sign_models

    from device.eval.binding_release import current_doc
    from device.eval.palm_line_point import write_palm_lines
    from device.gate.binding_numbers import in_force, load_binding_numbers
    doc = current_doc("nir", tiny_models)
    os.unlink(tiny_models / "binding_nir.json")
    (tiny_models / "binding_nir.json").write_text(json.dumps(doc))
    mx, mn = write_palm_lines("nir", _rows(), "cmd", "data", models_dir=tiny_models)
    sign_models(tiny_models, trust_test_key)
    n = load_binding_numbers("nir", tiny_models)
    assert n.palm_lines["command"] == "cmd" and n.max_score == doc["max_score"]
    assert (in_force(n).max_score, in_force(n).min_agreement) == (mx, mn)


def test_the_palm_lines_keep_the_outline_provenance(tiny_models, trust_test_key):
    from device.eval.binding_release import current_doc, write_numbers
    from device.models.model import read_manifest
    doc = current_doc("nir", tiny_models)
    os.unlink(tiny_models / "binding_nir.json")
    (tiny_models / "binding_nir.json").write_text(json.dumps(doc))
    old = read_manifest(tiny_models)["models"]["binding_nir.json"]
    e = write_numbers("nir", {"palm_lines": {"min_agreement": 0.1, "max_score": 20.0}},
                      command="pl", data="d", metrics={"pl": 1}, models_dir=tiny_models,
                      add=True)
    assert e["command"].startswith(old["command"]) and e["command"].endswith("then: pl")
    assert e["metrics"] == dict(old["metrics"], pl=1)
