"""Split-mode arithmetic against the plaintext feature, per layer and end to end (two nodes in
one process over the real AES-GCM channel)."""
import numpy as np
import pytest

from device.recognition.cells import CellExtractor, shift_max_scores
from device.eval.split_bench import drawn_palm
from device.split.cellnet import (F_R, CellNet, gabor_patches, plain_dense, query_from_dense,
                                  template_from_dense)
from device.split.dealer import Dealer
from device.split.local import LocalPair, run_pair, split_input
from device.split.protocol import (activation_layer, avg_pool_sum, gabor_layer,
                                   max_pool_layer, naive_max_pool_fig9, ownership)
from device.split.ring import Prg, decode, encode, share


@pytest.fixture(scope="module")
def ext():
    return CellExtractor()


@pytest.fixture(scope="module")
def net(ext):
    return CellNet.from_extractor(ext)


@pytest.fixture(scope="module")
def palms():
    rng = np.random.default_rng(3)
    return [drawn_palm(rng) for _ in range(3)]


def cos(a, b):
    a, b = np.ravel(a), np.ravel(b)
    return a @ b / np.linalg.norm(a) / np.linalg.norm(b)


def test_layers_equal_the_cell_extractor(ext, net, palms):
    d = plain_dense(net, palms[0])
    assert np.abs(query_from_dense(d) - ext.query(palms[0])).max() < 1e-5
    assert np.abs(template_from_dense(d) - ext.template(palms[0])).max() < 1e-5


@pytest.mark.parametrize("mode", ["shared", "plain"])
def test_gabor_layer_shares_sum_to_plaintext(net, palms, mode):
    pair = LocalPair(Dealer(net, mode, capacity=2, seed=b"g" * 32), seed=b"h" * 32)
    x = split_input(palms[0], pair.prg)
    tri = pair.dealer.inference_triples()
    r0, r1 = run_pair(lambda role, ch, sh, t, xs: gabor_layer(role, ch, sh, t, xs),
                      pair.ch, pair.shards, tri, x)
    ref = gabor_patches(palms[0].astype(np.float64)) @ net.gabor
    assert np.abs(decode(r0 + r1, F_R) - ref).max() < 1e-3


@pytest.mark.parametrize("mode", ["shared", "plain"])
def test_split_feature_and_1n_decision_match_plaintext(ext, net, palms, mode):
    pair = LocalPair(Dealer(net, mode, capacity=4, seed=b"d" * 32), seed=b"t" * 32)
    q = query_from_dense(pair.feature(palms[1]))
    assert cos(q, ext.query(palms[1])) >= 0.9999
    t = pair.feature(palms[1], template=True) / net.importance[:, None]
    assert cos(t, ext.template(palms[1])) >= 0.9999
    for k, im in enumerate(palms):
        pair.enrol(f"u{k}", im)
    probe = np.roll(palms[2], 3, axis=1)
    acc, k, score, per_t = pair.identify(probe, threshold=0.3)
    ref = shift_max_scores(ext.query(probe)[None], ext.templates(palms), ext.importance)[0]
    assert np.abs(per_t - ref).max() < 1e-3
    assert k == int(ref.argmax()) == 2 and acc == (ref.max() >= 0.3)


def _pair_fn(fn, x, seed=b"m" * 32):
    prg = Prg(b"p" * 32)
    s = share(x, prg)
    from device.split.transport import socket_pair_channels
    ch = socket_pair_channels(b"k" * 32)
    return run_pair(lambda role, c, xs: fn(role, c, seed, xs), ch, s)


def test_masks_are_complementary_balanced_and_fresh():
    a = ownership(b"a" * 32, "l", 20_000)
    b = ownership(b"b" * 32, "l", 20_000)
    assert abs(a.mean() - 0.5) < 0.02 and not np.array_equal(a, b)
    assert not np.array_equal(a, ownership(b"a" * 32, "other layer", 20_000))


def test_sigmoid_by_mask_recovery_is_exact():
    v = np.random.default_rng(0).normal(size=(4, 8, 8))
    sig = lambda z: 1 / (1 + np.exp(-z))        # noqa: E731
    o0, o1 = _pair_fn(lambda r, c, s, xs: activation_layer(r, c, s, "act", xs, sig, 16, 16),
                      encode(v, 16))
    assert np.abs(decode(o0 + o1, 16) - sig(v)).max() < 1e-4


def test_max_pool_window_aligned_is_exact_and_fig9_is_not():
    v = np.random.default_rng(1).uniform(0, 1, size=(3, 8, 8))
    o0, o1 = _pair_fn(lambda r, c, s, xs: max_pool_layer(r, c, s, "pool", xs, 2, 16),
                      encode(v, 16))
    truth = v.reshape(3, 4, 2, 4, 2).max(axis=(2, 4))
    assert np.abs(decode(o0 + o1, 16) - truth).max() < 1e-4
    x = np.arange(1, 17, dtype=float).reshape(4, 4)
    assert not np.allclose(naive_max_pool_fig9(x), x.reshape(2, 2, 2, 2).max(axis=(1, 3)))


def test_average_pooling_on_shares_is_exact():
    v = encode(np.random.default_rng(2).normal(size=(2, 4, 4)), 16)
    s0, s1 = share(v, Prg(b"z" * 32))
    got = decode(avg_pool_sum(s0, 2) + avg_pool_sum(s1, 2), 16) / 4
    assert np.allclose(got, decode(v, 16).reshape(2, 2, 2, 2, 2).mean(axis=(2, 4)))


def test_every_layer_reconstructs_to_the_plaintext_layer(net, palms):
    """Gabor responses, soft orientation weights, projected cells and unit cells, each
    opened from the two shares, against the float64 reference of the same layer."""
    from device.split.cellnet import (F_S, F_U, F_Y, MAP, cell_patches, softmax_orient,
                                      unit_cells)
    from device.split.protocol import cell_layer, normalise_layer, softmax_layer
    pair = LocalPair(Dealer(net, "shared", capacity=2, seed=b"q" * 32), seed=b"w" * 32)
    x = split_input(palms[2], pair.prg)
    tri = pair.dealer.inference_triples()

    def node(role, ch, sh, t, xs):
        r = gabor_layer(role, ch, sh, t, xs)
        s = softmax_layer(role, ch, sh, t, r)
        y = cell_layer(role, ch, sh, t, s)
        return r, s, y, normalise_layer(role, ch, sh, t, y, template=False)

    a, b = run_pair(node, pair.ch, pair.shards, tri, x)
    r = gabor_patches(palms[2].astype(np.float64)) @ net.gabor
    s = softmax_orient(r, net.beta).T.reshape(-1, MAP, MAP)
    y = cell_patches(s) @ net.pca + net.bias
    assert np.abs(decode(a[0] + b[0], F_R) - r).max() < 1e-7
    assert np.abs(decode(a[1] + b[1], F_S) - s).max() < 1e-7
    assert np.abs(decode(a[2] + b[2], F_Y) - y).max() < 1e-6
    assert np.abs(decode(a[3] + b[3], F_U) - unit_cells(y)).max() < 1e-6


def test_a_tampered_frame_mid_query_aborts(net, palms):
    from device.split.transport import ChannelError
    pair = LocalPair(Dealer(net, "shared", capacity=2, seed=b"e" * 32), seed=b"f" * 32)
    pair.enrol("a", palms[0])
    for c in pair.ch:              # node 0 waits for the node that aborted: keep it short
        c.link.sock.settimeout(2)
    link = pair.ch[0].link
    real_write, count = link.write, [0]

    def flip_third(b):
        count[0] += 1
        if count[0] == 3:
            b = b[:40] + bytes([b[40] ^ 1]) + b[41:]
        real_write(b)

    link.write = flip_third
    with pytest.raises(ChannelError):
        pair.identify(palms[0], threshold=0.3)
