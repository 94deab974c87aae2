"""The seed-000 fusion's training on degraded captures: one view passes through, the view
weights, the capture / degradation sampling, the evaluation rows, the ONNX export (fp32 parity
for any view count, int8 runs its MatMuls in int8)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from tools.train.recognition_fusion import Fusion  # noqa: E402
from tools.train.recognition_fusion_data import (KINDS, captures, dequant,  # noqa: E402
                                                 version_index, view_versions)

torch.set_num_threads(1)


def unit(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g), dim=-1)


def perturbed(seed=3):
    f = Fusion()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in f.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return f.eval()


def test_one_view_passes_through_a_trained_fusion():
    f = perturbed()
    c = unit(2, 1, 25, 49, 16)
    with torch.no_grad():
        out, w = f(c)
    assert torch.allclose(out, c[:, 0], atol=1e-6)
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-6)


def test_view_weights_are_a_distribution_and_change_with_training():
    c = unit(2, 3, 25, 49, 16)
    a = perturbed().view_weights(c)
    assert a.shape == (2, 3, 25, 49)
    assert torch.allclose(a.sum(1), torch.ones(2, 25, 49), atol=1e-5)
    assert float(a.std()) > 0.01
    assert torch.allclose(Fusion().eval().view_weights(c), torch.full_like(a, 1 / 3))


def test_view_versions_and_captures():
    rng = np.random.default_rng(0)
    v = view_versions(rng, 200, 3, 2, reps=2)
    assert v.shape == (200, 3) and ((v > 0).sum(1) == 2).all()
    assert v.max() < 1 + 2 * len(KINDS)
    bad = v[v > 0]
    assert set(((bad - 1) % len(KINDS)).tolist()) == set(range(len(KINDS)))
    # the two degraded views of a capture take different kinds
    k = np.where(v > 0, (v - 1) % len(KINDS), -1)
    assert all(len(set(r[r >= 0].tolist())) == 2 for r in k)
    mixed = view_versions(rng, 300, 3, (0, 1, 2), reps=1)
    assert set((mixed > 0).sum(1).tolist()) == {0, 1, 2}
    assert version_index(0, 0) == 1 and version_index(len(KINDS) - 1, 1) == 2 * len(KINDS)
    lab = np.repeat(np.arange(2), 20)
    ses = np.tile(np.repeat([1, 2], 10), 2)
    sets, l_, s_ = captures(lab, ses, 3, stride=1)
    assert sets.shape == (2 * 2 * 8, 3) and (np.diff(sets, axis=1) == 1).all()
    assert all((lab[s] == l).all() and (ses[s] == k).all() for s, l, k in zip(sets, l_, s_))


def toy_cellset(palms=6, samples=4, versions=6, noise=0.6, seed=0):
    from tools.train.recognition_fusion_train import CellSet
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(palms, 1, 1, 49, 16))
    n = palms * 2 * samples
    lab = np.repeat(np.arange(palms), 2 * samples)
    ses = np.tile(np.repeat([1, 2], samples), palms)
    x = base[lab] + noise * rng.normal(size=(n, versions, 25, 49, 16))
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    cells = np.clip(np.rint(x * 127), -127, 127).astype(np.int8)
    return CellSet(cells, lab, ses, reps=1)


def test_dequant_is_unit():
    d = toy_cellset()
    f = dequant(d.cells[:2])
    np.testing.assert_allclose(np.linalg.norm(f, axis=-1), 1.0, atol=1e-5)


def test_eval_rows_on_the_same_captures():
    from tools.train.recognition_fusion_eval import table
    d = toy_cellset()
    t = table({"init": Fusion().eval()}, d, np.arange(6),
              {"2views": (2, 0), "1view": (1, 0)}, log=lambda *_: None)
    r = t["2views"]
    assert set(r) == {"init", "mean_of_views", "pair_mean", "pair_best"}
    assert r["init"]["genuine"] == r["pair_best"]["genuine"] == 6 * 3 * 3
    # an untrained fusion is the mean of the views (its importance is uniform)
    assert r["init"]["eer"] == pytest.approx(r["mean_of_views"]["eer"], abs=1e-9)
    assert set(t["1view"]) == {"init", "mean_of_views"}


def test_training_step_runs_and_moves_the_trust():
    from tools.train.recognition_fusion_train import train_fusion
    d = toy_cellset(noise=3.0)
    net = train_fusion(d, np.arange(6), steps=3, batch_palms=4, lr=1e-2, bad=(1,),
                       views=(3,), log=lambda *_: None)
    assert net.trust_s.weight.abs().sum() > 0


def test_training_on_the_hybrid_feature_runs():
    """The loss on the gate's hybrid feature: classical cells weighted by the fusion's view
    weights beside the fused learned cells (98 cells)."""
    from tools.train.recognition_fusion_train import train_fusion
    d = toy_cellset(noise=3.0)
    c = toy_cellset(noise=3.0, seed=1)
    net = train_fusion(d, np.arange(6), steps=3, batch_palms=4, lr=1e-2, bad=(1,),
                       views=(3,), classical=c, log=lambda *_: None)
    assert net.trust_s.weight.abs().sum() > 0


def test_export_gives_the_view_weights(tmp_path):
    pytest.importorskip("onnxruntime")
    from tools.train.recognition_fusion_export import export_fp32
    from tools.train.sensor_quant import session
    f = perturbed()
    export_fp32(f, tmp_path / "f.onnx")
    c = unit(3, 25, 49, 16, seed=4)
    fused, imp, w = session(tmp_path / "f.onnx").run(None, {"cells": c.numpy()})
    np.testing.assert_allclose(w, f.view_weights(c[None])[0].numpy(), atol=2e-4)
    assert w.shape == (3, 25, 49) and np.allclose(w.sum(0), 1, atol=1e-5)


def test_export_parity_and_int8(tmp_path):
    pytest.importorskip("onnxruntime")
    from tools.train.recognition_fusion_export import (calibration_frames, export_fp32,
                                                       export_int8, parity)
    f = perturbed()
    export_fp32(f, tmp_path / "f.onnx")
    assert parity(f, tmp_path / "f.onnx") < 1e-4              # V = 1, 2, 3, 5
    d = toy_cellset()
    rep = export_int8(tmp_path / "f.onnx", tmp_path / "f8.onnx",
                      calibration_frames(d, np.arange(6), n=4))
    assert rep["int8"].get("QLinearMatMul", 0) > 0
    assert parity(f, tmp_path / "f8.onnx") < 2.01              # runs for any V


def test_cli_knows_fusion():
    from tools.train.__main__ import main
    with pytest.raises(SystemExit):
        main(["fusion", "--profile", "nope"])


def test_shipped_fusion_trusts_the_clean_view_on_real_palms():
    """The shipped int8 fusion (runtime path, signed manifest): one view passes through; with
    two of three views degraded (glare, exposure), its fused query matches the other session's
    clean template better than the mean of the views does, on 4 validation palms."""
    from device.eval.degrade import degrade
    from device.recognition.cells import shift_max_scores
    from device.recognition.learned import LearnedExtractor, unit_cells
    from tools.paths import real_dir
    from tools.train.realdata import load_layout, split_subjects
    try:
        root = real_dir("tongji")
    except FileNotFoundError:
        pytest.skip("real Tongji palms not available")
    ps = load_layout(root)
    _, val = split_subjects(len(ps.subjects), 0.2, 0)
    ex = LearnedExtractor(precision="int8", threads=1)
    better = 0
    for s in val[:4]:
        one = ps.images[(ps.labels == s) & (ps.sessions == 1)]
        two = ps.images[(ps.labels == s) & (ps.sessions == 2)]
        c1 = ex.cells(one[:1])
        # (the int8 cell net's cells are unit only to a few %; the fusion normalises)
        np.testing.assert_allclose(ex.fuse(c1), unit_cells(c1[0]), atol=1e-5)
        views = [two[0], degrade(two[1], "glare", np.random.default_rng(int(s))),
                 degrade(two[2], "exposure", np.random.default_rng(int(s) + 1))]
        cells = ex.cells(views)
        t = ex.template_set(one[:3])[None]
        fused = shift_max_scores(ex.fuse(cells)[None], t, ex.importance)[0, 0]
        mean = shift_max_scores(unit_cells(cells.mean(0))[None], t, ex.importance)[0, 0]
        better += fused > mean
    assert better >= 3
