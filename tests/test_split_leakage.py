"""One node's view: transcripts look uniform; the first-layer least-squares attack works with
plaintext kernels (claim 9) and not from a claim-8 shard."""
import numpy as np
import pytest

from device.recognition.cells import CellExtractor, shift_max_scores
from device.eval.split_bench import drawn_palm
from device.split.cellnet import CellNet
from device.split.dealer import Dealer
from device.eval.split_leakage import (input_correlation, ls_reconstruct, node1_transcript,
                                  node0_first_layer_view, node0_kernels, psnr_affine,
                                  uniformity_pvalue)
from device.split.local import LocalPair
from device.split.ring import Prg, encode


@pytest.fixture(scope="module")
def setup():
    ext = CellExtractor()
    rng = np.random.default_rng(11)
    return ext, CellNet.from_extractor(ext), [drawn_palm(rng) for _ in range(2)]


def test_uniformity_test_has_power():
    assert uniformity_pvalue(Prg(b"u" * 32).ring((20_000,))) > 1e-3
    assert uniformity_pvalue(encode(np.random.default_rng(0).normal(size=20_000), 20)) < 1e-6


def test_every_message_node1_receives_looks_uniform(setup):
    ext, net, palms = setup
    pair = LocalPair(Dealer(net, "shared", capacity=2, seed=b"l" * 32), seed=b"i" * 32)
    msgs = node1_transcript(pair, palms[0], palms[1:])
    assert len(msgs) == 10
    ps = [uniformity_pvalue(m) for m in msgs]
    assert min(ps) * 8 * len(ps) > 1e-3, ps            # Bonferroni over bytes x messages
    first = [m for m in msgs if m.size == 128 * 128][0]
    assert input_correlation(first, palms[1]) < 0.05


def test_least_squares_reconstruction_claim9_vs_claim8(setup):
    ext, net, palms = setup
    roi = palms[0].astype(np.float64)
    T = ext.template(palms[0])[None]
    res = {}
    for mode in ("plain", "shared"):
        pair = LocalPair(Dealer(net, mode, capacity=2, seed=b"r" * 32), seed=b"j" * 32)
        own, vals = node0_first_layer_view(pair, palms[0])
        assert abs(own.mean() - 0.5) < 0.1
        est = ls_reconstruct(node0_kernels(pair.shards[0]), own, vals, lam=1e-2, iters=120)
        e = est - est.min()
        e = (255 * e / e.max()).astype(np.float32)
        res[mode] = (psnr_affine(est, roi),
                     float(shift_max_scores(ext.query(e)[None], T, ext.importance)[0, 0]))
    chance = 20 * np.log10(255 / roi.std())
    assert res["plain"][0] > chance + 2 and res["plain"][1] > 0.8
    assert res["shared"][0] < chance + 0.5 and res["shared"][1] < 0.5
