import numpy as np
import pytest

from device.eval.degrade import KINDS, degrade, degrade_random


def _roi(seed=0, n=128):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n]
    x = 120 + 40 * np.sin(xx / 6.0 + yy / 11.0) + rng.normal(0, 8, (n, n))
    return np.clip(x, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_keeps_shape_dtype_and_changes_the_roi(kind):
    roi = _roi()
    out = degrade(roi, kind, np.random.default_rng(1))
    assert out.shape == roi.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - roi).mean() > 2.0
    assert np.array_equal(roi, _roi())                # input untouched


@pytest.mark.parametrize("kind", KINDS)
def test_seeded(kind):
    roi = _roi(3, 96)
    a = degrade(roi, kind, np.random.default_rng(7))
    b = degrade(roi, kind, np.random.default_rng(7))
    assert np.array_equal(a, b)
    assert a.shape == (96, 96)


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        degrade(_roi(), "fog", np.random.default_rng(0))
    with pytest.raises(ValueError):
        degrade(_roi().astype(np.float32), "blur", np.random.default_rng(0))


def test_random_kind():
    out, kind = degrade_random(_roi(), np.random.default_rng(2))
    assert kind in KINDS and out.shape == (128, 128)


def test_blur_removes_detail_and_glare_saturates():
    roi = _roi()
    lap = lambda x: np.abs(np.diff(x.astype(float), axis=1)).mean()  # noqa: E731
    assert lap(degrade(roi, "blur", np.random.default_rng(0))) < 0.6 * lap(roi)
    assert (degrade(roi, "glare", np.random.default_rng(0)) == 255).sum() > 20
