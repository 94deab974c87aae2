"""The BPCER-capped threshold rule of the composite-species rounds and the SR output cache
(tools/train/sensor_scoring.threshold_at_bpcer, tools/train/sensor_cache.SRCache)."""
import numpy as np
import pytest

from device.models.sensor_branch import is_live
from tools.train.sensor_scoring import choose, threshold_at_bpcer


def test_threshold_at_bpcer_keeps_each_group_at_the_cap():
    rng = np.random.default_rng(0)
    syn = rng.uniform(0.2, 1.0, 1000)
    real = rng.uniform(0.5, 1.0, 600)
    t = threshold_at_bpcer([syn, real], 0.005)
    assert np.mean(~is_live(syn, t)) <= 0.005
    assert np.mean(~is_live(real, t)) <= 0.005
    # the highest such threshold: the group that binds refuses exactly its allowance
    assert np.sum(~is_live(syn, t)) == 5 or np.sum(~is_live(real, t)) == 3


def test_threshold_at_bpcer_zero_refuses_none():
    g = np.array([0.3, 0.6, 0.9])
    t = threshold_at_bpcer([g], 0.0)
    assert is_live(g, t).all()


def test_choose_with_max_bpcer_ignores_attacks():
    p = np.array([0.9, 0.8, 0.95, 0.85, 0.99])
    cls = np.array(["bona_fide", "bona_fide", "x", "x", "bona_fide"])
    t = choose(p, cls, None, max_bpcer=0.0)
    assert is_live(p[cls == "bona_fide"], t).all()


def test_threshold_at_bpcer_needs_scores():
    with pytest.raises(ValueError):
        threshold_at_bpcer([np.zeros(0)], 0.005)


class _FakeSR:
    """An onnxruntime-like session: 2x nearest upsampling (counts its calls)."""

    def __init__(self):
        self.calls = 0

    def run(self, _out, feeds):
        self.calls += 1
        x = feeds["capture"]
        return [x.repeat(2, axis=2).repeat(2, axis=3)]


def test_sr_cache_computes_once_and_keys_by_content(tmp_path):
    from tools.train.sensor_cache import SRCache

    sr_file = tmp_path / "sr.onnx"
    sr_file.write_bytes(b"not a model, only hashed")
    sess = _FakeSR()
    cache = SRCache(sess, sr_file, tmp_path / "cache")
    caps = np.random.default_rng(1).integers(0, 256, (5, 8, 8), dtype=np.uint8)
    a = cache.outputs(caps)
    n = sess.calls
    b = cache.outputs(caps)
    assert sess.calls == n and a.dtype == np.float16 and a.shape == (5, 16, 16)
    np.testing.assert_array_equal(a, b)
    c = cache.outputs(caps, np.float32)
    assert c.dtype == np.float32 and sess.calls > n
    caps2 = caps.copy()
    caps2[0, 0, 0] ^= 1
    assert cache.path(caps2) != cache.path(caps)
