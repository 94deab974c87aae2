"""Learned palm cells + seed-000 fusion: shapes, the spec's acceptance checks on the fusion
(provenance of keys/queries, row-stochastic attention, one weight per content vector, mode
ablation, V >= 1), ONNX export parity through the runtime extractor, the matcher registry."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from device.recognition.learned import CENTRE, OTHER  # noqa: E402
from tools.train.recognition_cells import CellNet, pair_loss, shift_max  # noqa: E402
from tools.train.recognition_fusion import Fusion  # noqa: E402

torch.set_num_threads(1)


def unit(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g), dim=-1)


def test_cellnet_windows_are_shifted_pooled_cells():
    net = CellNet(8, 8).eval()
    x = torch.randn(2, 7, 64, 64)
    with torch.no_grad():
        c = net(x)
        dense = net.dense(x)
    assert c.shape == (2, 25, 49, 16)
    assert torch.allclose(c.norm(dim=-1), torch.ones(2, 25, 49), atol=1e-5)
    # shift index 12 is (0, 0): the central 28x28 window, cells of 4x4 map pixels
    want = F.avg_pool2d(dense[:, :, 2:30, 2:30], 4).flatten(2).transpose(1, 2)
    assert torch.allclose(c[:, 12], F.normalize(want, dim=-1), atol=1e-5)
    # shift index 0 is (-2, -2)
    want = F.avg_pool2d(dense[:, :, 0:28, 0:28], 4).flatten(2).transpose(1, 2)
    assert torch.allclose(c[:, 0], F.normalize(want, dim=-1), atol=1e-5)


def test_shift_max_and_loss():
    a = unit(4, 25, 49, 16)
    s = shift_max(a, a, 12)
    assert torch.allclose(torch.diagonal(s), torch.ones(4), atol=1e-5)
    good = pair_loss(a, a, 12, 32.0, 0.2)
    bad = pair_loss(a, unit(4, 25, 49, 16, seed=1), 12, 32.0, 0.2)
    assert good < bad


@pytest.mark.parametrize("mode", ["three", "content", "key+content", "query+content"])
def test_fusion_starts_as_mean_of_views(mode):
    f = Fusion(mode=mode).eval()
    c = unit(2, 3, 25, 49, 16)
    out, w = f(c)
    assert out.shape == (2, 25, 49, 16) and w.shape == (49,)
    assert torch.allclose(out, F.normalize(c.mean(1), dim=-1), atol=1e-2)
    assert float(w.detach().sum()) == pytest.approx(1.0, abs=1e-6)


def trained_like(mode="three"):
    f = Fusion(mode=mode)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in f.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
        f.gamma.fill_(1.0)
        f.log_tau.fill_(np.log(0.2))
    return f.eval()


def tokens(f, c):
    v = c.shape[1]
    x = c.transpose(1, 2).reshape(-1, v, 49, 16)
    ef = f._bn(f.bn_f, f.emb_f(x.index_select(2, f.centre).flatten(2)))
    es = f._bn(f.bn_s, f.emb_s(x.index_select(2, f.other).flatten(2)))
    return ef, es


def test_fusion_attention_provenance_and_weights():
    f = trained_like()
    c = unit(1, 3, 25, 49, 16)
    with torch.no_grad():
        ef, es = tokens(f, c)
        a, val, _ = f.attention(ef, es)
        assert a.shape == (25, f.heads, 6, 6)                  # 2V tokens per set
        assert torch.allclose(a.sum(-1), torch.ones(25, f.heads, 6), atol=1e-5)
        # keys depend on the first region only, queries on the second only
        c2 = c.clone()
        c2[..., torch.as_tensor(OTHER), :] = unit(1, 3, 25, 40, 16, seed=5)
        ef2, es2 = tokens(f, c2)
        assert torch.allclose(ef, ef2) and not torch.allclose(es, es2)
        c3 = c.clone()
        c3[..., torch.as_tensor(CENTRE), :] = unit(1, 3, 25, 9, 16, seed=6)
        ef3, es3 = tokens(f, c3)
        assert torch.allclose(es, es3) and not torch.allclose(ef, ef3)
        # the claim-2 fusion and the content-only embodiment weigh differently
        fc = Fusion(mode="content")
        fc.load_state_dict(f.state_dict())
        fc.eval()
        ac, _, _ = fc.attention(ef, es)
        assert not torch.allclose(a, ac)
        # content-only: a first-region token attends to second-region tokens only
        assert float(ac[..., :3, :3].abs().max()) == 0.0


def test_fusion_any_view_count_and_order_invariance():
    f = trained_like()
    with torch.no_grad():
        for v in (1, 2, 5):
            out, _ = f(unit(1, v, 25, 49, 16, seed=v))
            assert out.shape == (1, 25, 49, 16)
        c = unit(1, 3, 25, 49, 16)
        o1, _ = f(c)
        o2, _ = f(c[:, [2, 0, 1]])
        assert torch.allclose(o1, o2, atol=1e-5)               # no positional encoding


def test_fusion_gradients_flow_through_key_and_query_similarities():
    c = unit(4, 2, 25, 49, 16)
    grads = {}
    for mode in ("three", "content"):
        f = trained_like(mode).train()
        torch.manual_seed(0)
        out, w = f(c)
        pair_loss(out[:2], out[2:], 12, 32.0, 0.2, w).backward()
        grads[mode] = (f.wk.weight.grad.clone(), f.wq.weight.grad.clone())
    assert not torch.allclose(grads["three"][0], grads["content"][0])
    assert not torch.allclose(grads["three"][1], grads["content"][1])


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """A small untrained cell net and fusion exported as the runtime expects them."""
    pytest.importorskip("onnx")
    from tools.train.recognition_export import export_cells, export_fusion
    from device.models.model import DEFAULT_MODELS_DIR
    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    net = CellNet(8, 8).eval()
    fu = trained_like()
    export_cells(net, d / "recognition_cells.onnx")
    export_cells(net, d / "recognition_cells_int8.onnx")   # stands in for the int8 file
    export_fusion(fu, d / "recognition_fusion.onnx")
    export_fusion(fu, d / "recognition_fusion_int8.onnx")  # stands in for the int8 file
    (d / "cells_pca.npz").write_bytes((DEFAULT_MODELS_DIR / "cells_pca.npz").read_bytes())
    (d / "manifest.json").write_text(json.dumps({"format": 1, "models": {}}))
    return d, net, fu


def test_runtime_extractor_matches_torch(tiny_models):
    from device.recognition.learned import LearnedExtractor, load_bank, net_input
    d, net, fu = tiny_models
    ex = LearnedExtractor(d, verify=False)
    rng = np.random.default_rng(0)
    rois = rng.integers(0, 255, (3, 128, 128)).astype(np.uint8)
    t, q = ex.both(rois)
    assert t.shape == (3, 49, 16) and q.shape == (3, 25, 49, 16)
    assert ex.importance.shape == (49,) and ex.importance.sum() == pytest.approx(1, abs=1e-5)
    bank, beta = load_bank(d, verify=False)
    x = torch.from_numpy(np.stack([net_input(r, bank, beta) for r in rois]))
    with torch.no_grad():
        cells = net(x)
        want, _ = fu(cells[None])
    np.testing.assert_allclose(ex.query_set(rois), want[0].numpy(), atol=2e-4)
    np.testing.assert_allclose(ex.template_set(rois), want[0, 12].numpy(), atol=2e-4)
    with pytest.raises(ValueError, match="at least one view"):
        ex.query_set([])
    with pytest.raises(ValueError):
        ex.fuse(np.zeros((0, 25, 49, 16), np.float32))


def test_learned_matcher_registry(tiny_models, monkeypatch):
    import device.recognition.learned as L
    from device.recognition import matchers
    d, _, _ = tiny_models
    orig = L.LearnedExtractor.__init__

    def init(self, models_dir=None, precision="fp32", fusion=True, threads=0, verify=True):
        orig(self, d, precision, fusion, threads, verify=False)

    monkeypatch.setattr(L.LearnedExtractor, "__init__", init)
    rois = np.random.default_rng(1).integers(0, 255, (4, 128, 128)).astype(np.uint8)
    for name in ("learned", "learned-cells"):
        m = matchers.get_matcher(name, precision="int8")
        codes = m.encode(rois)
        s = m.scores(codes, codes)
        assert s.shape == (4, 4) and np.allclose(np.diag(s), s.max(1), atol=1e-5)
    fused = matchers.get_matcher("learned").encode_sets(rois, [[0, 1], [2, 3]])
    assert fused.templates.shape == (2, 49, 16) and fused.queries.shape == (2, 25, 49, 16)
    with pytest.raises(ValueError, match="classical"):
        matchers.get_matcher("bocv", precision="int8")
