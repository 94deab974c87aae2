"""The unit-response split feature (cells_unit.npz): exact against its plaintext extractor,
no ring overflow on a worst-case image, and node 0 opens one squared norm per owned pixel at
the first non-linearity (never a response)."""
import numpy as np
import pytest

from device.recognition.cells import (UNIT_CELLS_FILE, CellExtractor, FeatureError,
                                      orientation_responses)
from device.eval.split_bench import drawn_palm
from device.split.cellnet import (F_KL, F_KM, CellNet, encode_kernels, feature_extractor,
                                  query_from_dense)
from device.split.dealer import Dealer
from device.eval.split_leakage import node0_unit_view, node1_transcript, uniformity_pvalue
from device.split.local import LocalPair
from device.split.node import shard_threshold


@pytest.fixture(scope="module")
def unit():
    ext = feature_extractor("unit")
    return ext, CellNet.shipped("unit")


def _cos(a, b):
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_kernels_are_rounded_to_zero_sum(unit):
    _, net = unit
    for frac in (F_KL, F_KM):
        k = encode_kernels(net.gabor, frac).view(np.int64)
        assert (k.sum(axis=0) == 0).all()
        assert np.abs(k - net.gabor * 2.0 ** frac).max() <= 1.5


@pytest.mark.parametrize("mode", ["shared", "plain"])
def test_split_unit_feature_equals_plaintext(unit, mode):
    ext, net = unit
    rng = np.random.default_rng(21)
    pair = LocalPair(Dealer(net, mode, capacity=2, seed=b"u" * 32), seed=b"v" * 32)
    for roi in (drawn_palm(rng), drawn_palm(rng)):
        _, dense = pair.identify(roi, threshold=0.0, reveal=True)
        q = query_from_dense(dense)
        assert _cos(q, ext.query(roi)) >= 0.9999
        assert np.abs(q - ext.query(roi)).max() < 2e-4


def test_worst_case_image_does_not_wrap(unit):
    """The largest response a kernel can give (255 where it is positive, 0 elsewhere) stays
    inside the ring's bounds: the split feature still equals the plaintext one."""
    ext, net = unit
    k = ext.bank[0]
    roi = np.zeros((128, 128), np.uint8)
    roi[40:85, 40:85] = np.where(k > 0, 255, 0)
    pair = LocalPair(Dealer(net, "shared", capacity=2, seed=b"w" * 32), seed=b"x" * 32)
    _, dense = pair.identify(roi, threshold=0.0, reveal=True)
    assert _cos(query_from_dense(dense), ext.query(roi)) >= 0.9999


def test_node0_opens_one_squared_norm_per_owned_pixel(unit):
    ext, net = unit
    roi = drawn_palm(np.random.default_rng(3))
    pair = LocalPair(Dealer(net, "shared", capacity=2, seed=b"n" * 32), seed=b"m" * 32)
    own, vals = node0_unit_view(pair, roi)
    assert vals.shape == (int(own.sum()), 1) and abs(own.mean() - 0.5) < 0.05
    r = orientation_responses(roi, ext.bank).reshape(6, -1).T.astype(np.float64)
    n2 = (r * r).sum(1)[own]
    assert np.allclose(vals[:, 0], n2, rtol=1e-3, atol=1e-3)


def test_every_message_node1_receives_looks_uniform(unit):
    _, net = unit
    rng = np.random.default_rng(12)
    palms = [drawn_palm(rng) for _ in range(2)]
    pair = LocalPair(Dealer(net, "shared", capacity=2, seed=b"l" * 32), seed=b"i" * 32)
    msgs = node1_transcript(pair, palms[0], palms[1:])
    assert len(msgs) == 14                     # 2 x (E1, E_lo|E_r, norms, E_s, E2, cells) + 2
    ps = [uniformity_pvalue(m) for m in msgs]
    assert min(ps) * 8 * len(ps) > 1e-3, ps


def test_shards_name_their_feature_and_threshold(unit):
    _, net = unit
    s0, _ = Dealer(net, "shared", capacity=2, seed=b"t" * 32).model_shards()
    assert s0["feature"] == "unit" and s0["activation"] == "unit"
    assert shard_threshold(s0) == 0.49 and shard_threshold({}) == 0.45


def test_unknown_activation_is_refused():
    params = CellExtractor(name=UNIT_CELLS_FILE).params()
    params["activation"] = np.str_("relu")
    with pytest.raises(FeatureError, match="activation"):
        CellExtractor.from_arrays(**params)
