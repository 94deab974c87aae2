"""Seed 004 generation model (spec §6 checks 20-27) in PyTorch; tiny and fast."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tools.train.generator import (FEATURES, GenerationModel, PalmGenerator,  # noqa: E402
                                   StyleEncoder, identity_loss, l1_loss)


def _count(module, kind):
    return sum(isinstance(m, kind) for m in module.modules())


def test_architecture_counts_and_shapes():
    enc, gen = StyleEncoder(), PalmGenerator()
    assert _count(enc, torch.nn.Conv2d) == 3                     # check 20
    assert _count(gen.down, torch.nn.Conv2d) == 3
    assert _count(gen.up, torch.nn.ConvTranspose2d) == 3
    x = torch.rand(2, 1, 128, 128)
    cond = enc(x)
    assert cond.shape == (2, FEATURES) == (2, 64)
    feat = gen.down(x * 2 - 1)
    assert feat.shape == (2, 64, 16, 16)
    out = gen(x, cond)
    assert out.shape == x.shape                                  # check 22
    assert float(out.detach().min()) >= 0 and float(out.detach().max()) <= 1


def test_fusion_is_elementwise_product():                        # check 21
    gen = PalmGenerator().eval()
    cand, cond = torch.rand(1, 1, 128, 128), torch.randn(1, 64)
    captured = {}
    h = gen.up.register_forward_pre_hook(lambda m, a: captured.setdefault("fused", a[0]))
    gen(cand, cond)
    h.remove()
    expect = gen.down(cand * 2 - 1) * cond[:, :, None, None]
    assert captured["fused"].shape == expect.shape
    assert torch.allclose(captured["fused"], expect)


def test_losses():                                               # checks 23-24
    a = torch.rand(2, 1, 8, 8)
    assert float(l1_loss(a, a)) == 0.0 and float(l1_loss(a, a + 0.1)) > 0
    f = torch.randn(4, 16)
    assert float(identity_loss(f, f)) == pytest.approx(0.0, abs=1e-6)
    assert float(identity_loss(f, -f)) == pytest.approx(2.0, abs=1e-6)
    assert 0.0 <= float(identity_loss(f, torch.randn(4, 16))) <= 2.0


def test_losses_fall_when_overfitting_a_small_subset():          # check 27
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    from device.synth.bezier import sample_candidate
    from device.synth.candidate_render import render_candidate
    cand = torch.from_numpy(np.stack([render_candidate(sample_candidate(rng))
                                      for _ in range(4)]))[:, None]
    target = (0.6 - 0.4 * cand).clamp(0, 1)          # a palm-like target drawn from the lines
    model = GenerationModel()
    feat = torch.nn.Sequential(torch.nn.AvgPool2d(8), torch.nn.Flatten())  # frozen stand-in
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    first = None
    for _ in range(40):
        out = model(cand, target)
        l1, lid = l1_loss(out, target), identity_loss(feat(target - 0.5), feat(out - 0.5))
        first = first or (float(l1), float(lid))
        opt.zero_grad()
        (10 * l1 + lid).backward()
        opt.step()
    assert float(l1) < 0.5 * first[0]
    assert float(lid) < first[1]
