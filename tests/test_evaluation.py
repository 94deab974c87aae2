"""`palmgate evaluate`: captures, protocols, report/scores/DET outputs, FTA, matchers."""
import json

import numpy as np
import pytest

from device.cli import main as palmgate
from device.eval.recognition import capture_pairs, evaluate, make_captures
from device.sources.layout import SampleRef
from device.recognition.orientation_codes import BOCV, CompCode
from device.synth.palm_sets import write_palms
from device.synth.palms import PalmSynthesizer


@pytest.fixture(scope="module")
def palms(tmp_path_factory):
    root = tmp_path_factory.mktemp("palms")
    write_palms(root, subjects=5, sessions=2, samples=3, seed=11, synth=PalmSynthesizer())
    return root


def _refs(subjects=2, sessions=2, samples=4):
    return [SampleRef(f"{s:03d}", se, k, f"{s}/{se}_{k}.png") for s in range(subjects)
            for se in range(1, sessions + 1) for k in range(1, samples + 1)]


def test_captures_are_consecutive_samples_of_one_session():
    caps = make_captures(_refs(samples=7), views=3)
    assert len(caps) == 2 * 2 * 2                      # remainder of 7 // 3 dropped
    assert [r.sample for r in caps[0].refs] == [1, 2, 3]
    assert all(len({(r.subject, r.session) for r in c.refs}) == 1 for c in caps)


def test_protocol_pair_counts():
    caps = make_captures(_refs(subjects=3, samples=2), views=1)
    i, j, gen = capture_pairs(caps, "cross-session")
    assert len(i) == 6 * 6 and gen.sum() == 3 * 2 * 2
    i, j, gen = capture_pairs(caps, "all-pairs")
    assert len(i) == 12 * 11 // 2 and gen.sum() == 3 * (4 * 3 // 2)
    with pytest.raises(ValueError):
        capture_pairs(caps, "bogus")


@pytest.mark.parametrize("matcher", ["bocv", "compcode", "cells"])
def test_evaluate_writes_the_contract(palms, tmp_path, matcher):
    rep = evaluate(palms, views=1, matcher=matcher, out=tmp_path)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved == rep
    assert set(rep["tar"]) == {"1e-3", "1e-4", "1e-5"}
    assert rep["n_genuine"] == 5 * 3 * 3 and rep["n_impostor"] == 15 * 15 - 45
    sc = np.load(tmp_path / "scores.npz")
    assert len(sc["genuine"]) == rep["n_genuine"] and len(sc["impostor"]) == rep["n_impostor"]
    assert sc["genuine_pairs"].shape == (rep["n_genuine"], 2)
    assert sc["genuine"].mean() > sc["impostor"].mean()
    assert (tmp_path / "det.png").stat().st_size > 1000


def test_corrupt_image_counts_as_failure_to_acquire(palms, tmp_path):
    import shutil
    d = tmp_path / "set"
    shutil.copytree(palms, d)
    (d / "0000" / "1_01.png").write_bytes(b"not an image")
    rep = evaluate(d, views=1, matcher="bocv")
    assert rep["fta"] == pytest.approx(1 / 30)


def test_cli_evaluate_and_clear_errors(palms, tmp_path, capsys):
    assert palmgate(["evaluate", str(palms), "--views", "3", "--matcher", "bocv",
                     "--out", str(tmp_path)]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["views"] == 3 and rep["n_genuine"] == 5
    assert palmgate(["evaluate", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert palmgate(["evaluate", str(palms), "--matcher", "nope", "--out", str(tmp_path)]) == 2


def test_orientation_codes_identical_images_score_one():
    rng = np.random.default_rng(0)
    img = (rng.random((2, 128, 128)) * 255).astype(np.uint8)
    for m in (BOCV(), CompCode()):
        c = m.encode(img)
        s = m.scores(c, c)
        assert np.allclose(np.diag(s), 1.0) and s[0, 1] < 0.9


def test_evaluate_protected_enrols_one_side_and_keeps_the_contract(palms, tmp_path, capsys):
    plain = evaluate(palms, views=1, matcher="cells")
    assert palmgate(["evaluate", str(palms), "--protected", "--matcher", "cells",
                     "--out", str(tmp_path)]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["protected"] is True and rep["matcher"] == "cells-protected"
    assert rep["n_genuine"] == plain["n_genuine"] and rep["n_impostor"] == plain["n_impostor"]
    assert rep["protection"]["t"] == pytest.approx(0.9)
    assert set(rep["accept_rates_at_shipped_thresholds"]) == {"1e-3", "1e-4"}
    sc = np.load(tmp_path / "scores.npz")
    assert sc["genuine"].mean() > sc["impostor"].mean()
    # protected scores are not the plaintext ones (every score leans toward 1 as t grows)
    assert sc["impostor"].mean() > 0.5
    assert palmgate(["evaluate", str(palms), "--protected", "--matcher", "bocv",
                     "--out", str(tmp_path)]) == 2
    assert palmgate(["evaluate", str(palms), "--precision", "int8", "--matcher", "cells",
                     "--out", str(tmp_path)]) == 2


def test_default_matcher_is_the_hybrid_feature_in_both_precisions(palms, tmp_path, capsys):
    """DESIGN's command without --matcher: the gate's most accurate feature, int8 included."""
    for precision in ("fp32", "int8"):
        assert palmgate(["evaluate", str(palms), "--precision", precision, "--protected",
                         "--out", str(tmp_path / precision)]) == 0
        rep = json.loads(capsys.readouterr().out)
        assert rep["matcher"] == "hybrid-protected" and rep["precision"] == precision
        assert rep["n_genuine"] == 5 * 3 * 3
