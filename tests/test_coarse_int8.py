"""The int8 coarse pass (device/protect/coarse_int8.py) and the view fusion of the classical
cells (device/recognition/cells.py, mean_fusion)."""
import numpy as np
import pytest

from device.protect import coarse_int8 as ci
from device.recognition.cells import mean_fusion


def test_max_products_is_the_exact_integer_product(monkeypatch):
    rng = np.random.default_rng(0)
    index = ci.index_codes(rng.uniform(-1, 1, (1000, 392)))
    q, scale = ci.query_codes(rng.standard_normal((25, 392)))
    want = ((index.astype(np.int64) - ci.ZERO) @ q.astype(np.int64)).max(1)
    monkeypatch.setattr(ci, "BLOCK", 300)                    # several blocks
    assert np.array_equal(ci.max_products(index, q), want)
    # where onnxruntime cannot run the graph, numpy gives the same integers
    monkeypatch.setattr(ci._Session, "session", None)
    monkeypatch.setattr(ci._Session, "failed", "test")
    assert np.array_equal(ci.max_products(index, q), want)
    assert ci.max_products(index[:0], q).shape == (0,)


def test_worst_case_products_are_exact_on_every_cpu():
    """The largest codes on both sides: a pair of products must fit VPMADDUBSW's int16 (x86
    without VNNI), so the product equals the exact integer one there too."""
    q, _ = ci.query_codes(np.array([[1.0] * 64, [-1.0] * 64]))
    assert np.abs(q).max() == ci.QUERY_MAX and 2 * 255 * ci.QUERY_MAX <= 32767
    for side in (255, 1):
        index = np.full((5, 64), side, np.uint8)
        want = ((index.astype(np.int64) - ci.ZERO) @ q.astype(np.int64)).max(1)
        assert np.array_equal(ci.max_products(index, q), want)


def test_codes_round_trip():
    x = np.linspace(-1, 1, 11, dtype=np.float32)
    assert np.abs((ci.index_codes(x).astype(np.float32) - ci.ZERO) / 127 - x).max() <= 0.5 / 127
    q = np.array([[0.5, -2.0], [1.0, 0.25]], np.float32)
    codes, s = ci.query_codes(q)
    assert codes.shape == (2, 2) and np.abs(codes.T * s - q).max() <= s / 2 + 1e-7


def test_mean_fusion_of_unit_cells():
    rng = np.random.default_rng(1)
    v = rng.standard_normal((3, 25, 49, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    f = mean_fusion(v)
    assert f.shape == (25, 49, 16)
    assert np.allclose(np.linalg.norm(f, axis=-1), 1, atol=1e-5)
    m = v.mean(0)
    assert np.allclose(f, m / np.linalg.norm(m, axis=-1, keepdims=True), atol=1e-6)
    assert np.allclose(mean_fusion(v[:1]), v[0], atol=1e-6)          # one view: itself
    # the fused cell is closer to each view than the views are to each other, on average
    assert (f * v).sum(-1).mean() > (v[0] * v[1]).sum(-1).mean()


def test_weighted_fusion_of_unit_cells():
    from device.recognition.cells import weighted_fusion
    rng = np.random.default_rng(1)
    v = rng.normal(size=(3, 2, 5, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    eq = np.full((3, 2, 5), 1 / 3, np.float32)
    np.testing.assert_allclose(weighted_fusion(v, eq), mean_fusion(v), atol=1e-6)
    one = np.zeros((3, 2, 5), np.float32)
    one[1] = 1.0                                          # all weight on view 1: view 1
    np.testing.assert_allclose(weighted_fusion(v, one), v[1], atol=1e-6)
    np.testing.assert_allclose(weighted_fusion(v[:1], one[:1] + 1), v[0], atol=1e-6)
    with pytest.raises(ValueError):
        weighted_fusion(v, eq[:, :, :4])
