"""ISO/IEC 30107-3 rates, threshold choice, and the `palmgate evaluate-liveness` contract on a
small fixed synthetic set (seed never used in training) and on a few held-out real NIR palms."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from device.models.model import DEFAULT_MODELS_DIR
from device.eval.liveness import (apcer, bpcer, bpcer_at_apcer, choose_threshold, pad_rates,
                                  threshold_at_apcer)


def test_rates_at_equality_follow_the_decision_rule():
    # live iff p > threshold: p == threshold is an attack decision
    assert apcer([0.5, 0.2], 0.5) == 0.0
    assert apcer([0.5000001, 0.2], 0.5) == 0.5
    assert bpcer([0.5, 0.9], 0.5) == 0.5
    assert bpcer([0.9, 0.9], 0.5) == 0.0


def test_bpcer_at_apcer_uses_the_worst_species():
    bona = np.linspace(0.3, 1.0, 100)
    attacks = {"a": np.linspace(0.0, 0.2, 100), "b": np.r_[np.linspace(0.0, 0.3, 95),
                                                           np.linspace(0.6, 0.7, 5)]}
    thr = threshold_at_apcer(attacks, 0.05)
    assert max(apcer(v, thr) for v in attacks.values()) <= 0.05
    assert bpcer_at_apcer(bona, attacks, 0.05) == pytest.approx(bpcer(bona, thr))
    thr1 = threshold_at_apcer(attacks, 0.01)
    assert thr1 == pytest.approx(0.675) and max(apcer(v, thr1) for v in attacks.values()) <= 0.01
    assert bpcer_at_apcer(bona, attacks, 0.01) > bpcer_at_apcer(bona, attacks, 0.05)


def test_threshold_choice_separates_and_report_handles_empty_parts():
    bona = np.array([0.9, 0.95, 0.99])
    attacks = {"x": np.array([0.01, 0.1]), "y": np.array([0.2])}
    t = choose_threshold(bona, attacks)
    assert 0.2 < t < 0.9
    r = pad_rates(bona, attacks, t)
    assert r["apcer_max"] == 0 and r["bpcer"] == 0 and r["threshold"] == t
    r = pad_rates(bona, {}, 0.5)
    assert r["apcer"] == {} and r["apcer_max"] is None and r["bpcer20"] is None
    r = pad_rates(np.array([]), attacks, 0.5)
    assert r["bpcer"] is None and r["apcer_max"] == 0


@pytest.fixture(scope="module")
def xray_set(tmp_path_factory):
    from device.synth.sensor_sets import write_liveness
    d = tmp_path_factory.mktemp("livex")
    write_liveness(d, "xray", 12, 4, seed=4242)
    return d


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "device.cli", *args], capture_output=True,
                          text=True, timeout=300)


def test_evaluate_liveness_contract(xray_set, tmp_path):
    r = _cli("evaluate-liveness", str(xray_set), "--sensor", "xray", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "report.json").read_text())
    for k in ("apcer", "apcer_max", "bpcer", "bpcer20", "bpcer100", "threshold"):
        assert k in rep
    from device.synth.attacks import SPECIES
    assert set(rep["apcer"]) == set(SPECIES["xray"])
    man = json.loads((DEFAULT_MODELS_DIR / "manifest.json").read_text())["models"]
    assert rep["threshold"] == man["liveness_xray.onnx"]["threshold"]
    s = np.load(tmp_path / "scores.npz")
    assert s["bona_fide"].shape == (12,) and s["attack"].shape == (4 * len(rep["apcer"]),)
    assert set(s["attack_species"]) == set(rep["apcer"])
    assert rep["bpcer"] == pytest.approx(np.mean(s["bona_fide"] <= rep["threshold"]))
    assert (tmp_path / "det.png").stat().st_size > 1000
    # the shipped model on this small unseen set: at most one error on the species it was
    # trained and measured on (its manifest's held-out species); the composite species a model
    # never saw are measured in docs/results.md, not bounded here
    from device.synth.attacks_composite import XRAY_COMPOSITE_SPECIES
    trained = set(man["liveness_xray.onnx"]["metrics"]["heldout"]["n_attack"]) \
        - set(XRAY_COMPOSITE_SPECIES)
    errors = rep["errors"]["bona_fide_rejected"] + sum(
        n for sp, n in rep["errors"]["attacks_accepted"].items() if sp in trained)
    assert errors <= 1, rep


def test_int8_agrees_with_fp32(xray_set, tmp_path):
    from device.eval.liveness import evaluate_liveness
    a = evaluate_liveness(xray_set, "xray", tmp_path / "fp32")
    b = evaluate_liveness(xray_set, "xray", tmp_path / "int8", precision="int8")
    sa, sb = np.load(tmp_path / "fp32/scores.npz"), np.load(tmp_path / "int8/scores.npz")
    da = np.r_[sa["bona_fide"] > a["threshold"], sa["attack"] > a["threshold"]]
    db = np.r_[sb["bona_fide"] > b["threshold"], sb["attack"] > b["threshold"]]
    assert np.mean(da != db) <= 1 / 32
    man = json.loads((DEFAULT_MODELS_DIR / "manifest.json").read_text())["models"]
    for rep, name in ((a, "phantom_xray.onnx"), (b, "phantom_xray_int8.onnx")):
        if name in man:                 # the report names the phantom check that ran
            assert rep["models"]["phantom"] == name
            assert rep["models"]["phantom_threshold"] == man[name]["threshold"]
            assert rep["models"]["phantom_sha256"] == man[name]["sha256"]


def test_bona_fide_only_real_nir(tmp_path):
    from tools.train.sensor import real_nir_files, real_nir_split
    split = real_nir_split()
    if not split["test"]:
        pytest.skip("real NIR set not available")
    files = real_nir_files(split["test"][:2])           # palms no model saw
    d = tmp_path / "real" / "bona_fide"
    d.mkdir(parents=True)
    for f in files:
        os.symlink(f, d / f"{f.parent.name}_{f.name}")
    r = _cli("evaluate-liveness", str(tmp_path / "real"), "--sensor", "nir", "--out",
             str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    assert rep["n_bona_fide"] == len(files) and rep["apcer"] == {}
    assert rep["bpcer"] == 0.0
    assert rep["apcer_max"] is None and rep["bpcer20"] is None


def test_missing_folder_is_a_clean_error(tmp_path):
    r = _cli("evaluate-liveness", str(tmp_path / "nope"), "--sensor", "xray", "--out",
             str(tmp_path / "o"))
    assert r.returncode == 2 and "not found" in r.stderr
