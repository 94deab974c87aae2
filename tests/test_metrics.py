import numpy as np
import pytest

from device.eval.metrics import d_prime, eer, tar_at_far, threshold_at_far


def test_eer_separated_and_overlapping():
    assert eer([0.9, 0.8, 0.7], [0.1, 0.2, 0.3]) == 0.0
    rng = np.random.default_rng(0)
    g, i = rng.normal(1, 1, 20000), rng.normal(-1, 1, 20000)
    # two unit normals 2 apart: EER = Phi(-1) = 0.1587
    assert eer(g, i) == pytest.approx(0.1587, abs=0.01)


def test_eer_identical_distributions_is_half():
    rng = np.random.default_rng(1)
    x = rng.normal(size=5000)
    assert eer(x, rng.permutation(x)) == pytest.approx(0.5, abs=0.02)


def test_tar_at_far_counts_impostors_above_threshold():
    imp = np.arange(1000) / 1000.0          # 0.000 .. 0.999
    thr = threshold_at_far(imp, 1e-2)       # at most 10 impostors accepted
    assert np.sum(imp >= thr) <= 10
    assert tar_at_far([0.995, 0.5], imp, 1e-2) == 0.5
    # TAR cannot rise as FAR falls
    g = np.random.default_rng(2).uniform(0.9, 1.0, 100)
    tars = [tar_at_far(g, imp, f) for f in (1e-1, 1e-2, 1e-3)]
    assert tars == sorted(tars, reverse=True)


def test_d_prime():
    assert d_prime([1.0, 3.0], [-1.0, -3.0]) == pytest.approx(4 / 1.0)
    with pytest.raises(ValueError):
        d_prime([], [1.0])
