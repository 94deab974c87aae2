"""Resampled copies of sensor captures (tools/train/resample_aug.py) and how a fine-tune round
adds them to its pool (tools/train/sensor_rounds.py, the ``resample`` table of profile xaug)."""
import numpy as np
import pytest

from tools.train.resample_aug import (INTERPOLATIONS, resample_capture, resampled_copies,
                                      similarity, warp)


def _caps(n=6, seed=0):
    rng = np.random.default_rng(seed)
    base = np.zeros((128, 128), np.float32)
    base[30:100, 40:90] = 170
    return np.stack([np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
                     for _ in range(n)])


@pytest.mark.parametrize("interp", ["nearest", "linear", "cubic"])
def test_the_identity_warp_keeps_the_capture(interp):
    c = _caps(1)[0].astype(np.float32)
    assert np.array_equal(warp(c, similarity(c.shape, 0, 1, 0, 0), interp), c)


def test_area_resampling_averages_and_keeps_the_mean():
    c = _caps(1)[0].astype(np.float32)
    out = warp(c, similarity(c.shape, 0, 1, 0, 0), "area")
    assert out.shape == c.shape
    assert abs(out.mean() - c.mean()) < 1.0 and out.std() < c.std()


def test_a_half_pixel_shift_moves_the_grid():
    c = _caps(1)[0].astype(np.float32)
    out = warp(c, similarity(c.shape, 0, 1, 0.5, 0), "linear")
    assert np.abs(out - c).mean() > 1.0
    # the hand's edge moved by half a pixel: its column centroid by about 0.5
    w = np.arange(128)
    shift = (out.sum(0) * w).sum() / out.sum() - (c.sum(0) * w).sum() / c.sum()
    assert 0.3 < shift < 0.7


def test_copies_are_reproducible_and_copy_major():
    caps = _caps()
    a = resampled_copies(caps, 2, seed=3)
    b = resampled_copies(caps, 2, seed=3)
    assert a.shape == (12, 128, 128) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, resampled_copies(caps, 2, seed=4))
    assert not np.array_equal(a[:6], a[6:])          # the second copy draws afresh



def test_every_interpolation_can_be_drawn(monkeypatch):
    import tools.train.resample_aug as A
    used = []
    real = A.warp
    monkeypatch.setattr(A, "warp", lambda c, m, i: used.append(i) or real(c, m, i))
    rng = np.random.default_rng(0)
    for _ in range(40):
        A.resample_capture(_caps(1)[0], rng)
    assert set(used) == set(INTERPOLATIONS)


def test_a_round_pool_gets_its_copies_and_mines_the_originals_only():
    from tools.train.sensor_rounds import resampled_pool
    caps = _caps()
    mine = np.array([True, False, True, True, False, True])
    n, all_caps, all_mine = resampled_pool({"resample": {"copies": 2, "seed": 1}}, caps, mine)
    assert n == 2 and len(all_caps) == 18 and np.array_equal(all_caps[:6], caps)
    assert np.array_equal(all_mine, np.concatenate([mine, np.zeros(12, bool)]))
    assert resampled_pool({}, caps, mine)[0] == 0


def test_copies_are_drawn_as_often_as_their_originals(monkeypatch):
    from tools.train import sensor_rounds as R
    seen = {}

    def fake_train(images, y, *, weights, **kw):
        seen.update(images=images, y=y, w=weights)
        return kw["model"], []

    monkeypatch.setattr(R, "train_liveness", fake_train)
    cls = np.array(["bona_fide"] * 3 + ["photo"] * 2 + ["no_bones"])
    imgs = np.zeros((18, 4, 4), np.float16)
    ft = {"photo_share": 0.5, "hard_q": 0.34, "hard_extra": 4.0, "steps": 1, "seed": 0,
          "lr": 1e-4}
    scores = np.array([0.9, 0.1, 0.5, 0.8, 0.2, 0.3])
    R.finetune_liveness("m", imgs, cls, np.zeros(6, bool), np.ones(6, bool), scores, "xray",
                        ft, log=lambda m: None, copies=2)
    w, y = seen["w"], seen["y"]
    assert len(w) == len(y) == 18 and abs(w.sum() - 1) < 1e-9
    assert np.allclose(w[:6], w[6:12]) and np.allclose(w[:6], w[12:])
    assert np.array_equal(y, np.tile([1, 1, 1, 0, 0, 0], 3))
    assert w[1] > w[0]                       # the hard bona fide (lowest p(live)), in every copy
