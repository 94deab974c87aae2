"""`palmgate evaluate --views N --fusion attention|mean | --pair-rule best|mean --degrade K`,
the report's FRR and pair counts, and the protected scores against the old pairwise path."""
import json

import numpy as np
import pytest

from device.cli import main as palmgate
from device.eval.capture_scores import combine_view_pairs, fuse_captures, mean_fusion
from device.eval.metrics import frr_at_far, tar_at_far, verification_summary
from device.eval.recognition import evaluate, scoring_rule
from device.recognition.matchers import get_matcher
from device.synth.palm_sets import write_palms
from device.synth.palms import PalmSynthesizer


@pytest.fixture(scope="module")
def palms(tmp_path_factory):
    root = tmp_path_factory.mktemp("palms")
    write_palms(root, subjects=4, sessions=2, samples=4, seed=5, synth=PalmSynthesizer())
    return root


def test_default_rule_is_the_learned_fusion_where_the_feature_has_one():
    assert scoring_rule(get_matcher("hybrid"), 3) == ("fusion", "attention")
    assert scoring_rule(get_matcher("cells"), 3) == ("pairs", "mean")
    assert scoring_rule(get_matcher("bocv"), 3) == ("pairs", "mean")
    assert scoring_rule(get_matcher("cells"), 3, fusion="mean") == ("fusion", "mean")
    assert scoring_rule(get_matcher("hybrid"), 3, pair_rule="best") == ("pairs", "best")
    with pytest.raises(ValueError):
        scoring_rule(get_matcher("cells"), 3, fusion="attention")     # no learned fusion
    with pytest.raises(ValueError):
        scoring_rule(get_matcher("bocv"), 3, fusion="mean")           # no cells
    with pytest.raises(ValueError):
        scoring_rule(get_matcher("cells"), 3, fusion="mean", pair_rule="best")


def test_mean_fusion_is_the_renormalised_mean_of_unit_cells():
    rng = np.random.default_rng(0)
    v = rng.standard_normal((3, 25, 49, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    f = mean_fusion(v)
    assert np.allclose(np.linalg.norm(f, axis=-1), 1, atol=1e-5)
    assert np.allclose(f, v.mean(0) / np.linalg.norm(v.mean(0), axis=-1, keepdims=True),
                       atol=1e-6)
    caps = fuse_captures(v, np.array([[0, 1], [2, 2]]), "mean")
    assert caps.shape == (2, 25, 49, 16) and np.allclose(caps[1], v[2], atol=1e-6)


def test_pair_rules_take_the_best_or_the_mean_of_the_view_pairs():
    s = np.arange(16, dtype=float).reshape(4, 4)          # images 0..3 x images 0..3
    a = np.array([[0, 1], [2, 3]])                        # two captures of two views
    best = combine_view_pairs(s, np.array([0, 1]), np.array([1, 0]), a, a, "best")
    mean = combine_view_pairs(s, np.array([0, 1]), np.array([1, 0]), a, a, "mean")
    assert best.tolist() == [s[1, 3], s[3, 1]]
    assert mean.tolist() == [s[np.ix_([0, 1], [2, 3])].mean(), s[np.ix_([2, 3], [0, 1])].mean()]


def test_report_gives_frr_and_the_numbers_of_pairs():
    g, i = np.linspace(0.5, 1, 100), np.linspace(0, 0.6, 100000)
    r = verification_summary(g, i)
    assert r["n_genuine"] == 100 and r["n_impostor"] == 100000 and r["far_floor"] == 1e-5
    assert r["frr"]["1e-4"] == pytest.approx(1 - r["tar"]["1e-4"])
    assert frr_at_far(g, i, 1e-4) == pytest.approx(1 - tar_at_far(g, i, 1e-4))


@pytest.mark.parametrize("args", [["--fusion", "mean"], ["--pair-rule", "best"],
                                  ["--pair-rule", "mean"]])
def test_views_fusion_and_pair_rules_from_the_command_line(palms, tmp_path, capsys, args):
    assert palmgate(["evaluate", str(palms), "--matcher", "cells", "--views", "2",
                     *args, "--degrade", "1", "--out", str(tmp_path)]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["views"] == 2 and rep["degraded_views"] == 1
    assert sum(rep["degradations"].values()) == 4 * 2 * 2      # one view of every capture
    assert rep.get("fusion", rep.get("pair_rule")) == args[1]
    assert rep["n_genuine"] == 4 * 2 * 2 and rep["n_impostor"] == 8 * 8 - 16
    assert set(rep["frr"]) == {"1e-4"} and set(rep["seconds"]) == {"features", "matching"}


def test_degradations_are_drawn_from_the_seed(palms):
    a = evaluate(palms, views=2, matcher="cells", degrade=2, seed=3)
    b = evaluate(palms, views=2, matcher="cells", degrade=2, seed=3)
    c = evaluate(palms, views=2, matcher="cells", degrade=0)
    assert a["degradations"] == b["degradations"] and a["eer"] == b["eer"]
    assert "degradations" not in c
    with pytest.raises(ValueError):
        evaluate(palms, views=2, matcher="cells", degrade=3)


def test_protected_evaluation_equals_the_old_pairwise_path(palms, tmp_path):
    """The old path enrolled every image and scored probes one at a time through the
    gallery's exact pass; with the same keys the blocked path gives the same scores."""
    from device.eval.recognition import load_rois
    from device.protect.defaults import DEFAULT_CONFIG
    from device.protect.gallery import enrol_and_score
    from device.sources.layout import scan
    rep = evaluate(palms, views=1, matcher="cells", protected=True, key_seed=9, out=tmp_path,
                   threads=2)
    refs = scan(palms)
    m = get_matcher("cells")
    codes = m.encode(load_rois(refs)[0])
    s1 = np.array([r.session == 1 for r in refs])
    old, _, _ = enrol_and_score(DEFAULT_CONFIG, m.extractor.importance, codes.templates[s1],
                                codes.queries[~s1], np.random.default_rng(9))
    subj = np.array([r.subject for r in refs])
    same = subj[s1][:, None] == subj[~s1][None, :]
    sc = np.load(tmp_path / "scores.npz")
    old = old.T                                          # (enrolled, probe), pair order
    assert np.abs(np.sort(sc["genuine"]) - np.sort(old[same])).max() < 2e-6
    assert np.abs(np.sort(sc["impostor"]) - np.sort(old[~same])).max() < 2e-6
    assert rep["n_genuine"] == same.sum() and rep["n_impostor"] == (~same).sum()


def test_protected_fused_views(palms, tmp_path, capsys):
    assert palmgate(["evaluate", str(palms), "--protected", "--views", "2", "--fusion",
                     "mean", "--out", str(tmp_path)]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["matcher"] == "hybrid-protected" and rep["fusion"] == "mean"
    assert rep["n_genuine"] == 4 * 2 * 2


def test_protected_pair_rules_combine_the_protected_view_scores(palms, tmp_path):
    """best >= mean for every pair (same keys), and with one view both are the plain
    protected score."""
    kw = dict(views=2, matcher="cells", protected=True, key_seed=4)
    evaluate(palms, pair_rule="best", out=tmp_path / "best", **kw)
    evaluate(palms, pair_rule="mean", out=tmp_path / "mean", **kw)
    b, m = np.load(tmp_path / "best" / "scores.npz"), np.load(tmp_path / "mean" / "scores.npz")
    assert len(b["impostor"]) == 8 * 8 - 16
    assert np.all(b["genuine"] >= m["genuine"] - 1e-7)
    assert np.all(b["impostor"] >= m["impostor"] - 1e-7)
    assert np.any(b["impostor"] > m["impostor"] + 1e-4)
    one = [evaluate(palms, views=1, matcher="cells", protected=True, key_seed=4,
                    pair_rule=r, out=tmp_path / r) for r in ("best", "mean")]
    assert one[0]["eer"] == one[1]["eer"] and one[0]["tar"] == one[1]["tar"]


def test_features_in_chunks_give_the_same_scores(palms, tmp_path, monkeypatch):
    import device.eval.recognition as rec
    evaluate(palms, views=2, matcher="cells", fusion="mean", out=tmp_path / "a")
    monkeypatch.setattr(rec, "FEATURE_CHUNK", 3)          # one capture of two views at a time
    evaluate(palms, views=2, matcher="cells", fusion="mean", out=tmp_path / "b")
    a, b = np.load(tmp_path / "a" / "scores.npz"), np.load(tmp_path / "b" / "scores.npz")
    assert np.abs(a["impostor"] - b["impostor"]).max() < 1e-6
    assert np.abs(a["genuine"] - b["genuine"]).max() < 1e-6
