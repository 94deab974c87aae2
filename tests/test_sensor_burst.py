"""A burst of sensor frames of one content (device.synth.sensor.render_burst): frame 0 is the
capture render_scene gives from the same generator state, the further frames redraw only the
frame (exposure, response, degradation) from their own generator."""
from __future__ import annotations

import numpy as np
import pytest

from device.synth import sensor as S
from device.synth.hand_geometry import sample_hand_geometry as sample_hand

SIZE = (64, 64)


def _geom():
    return sample_hand(np.random.default_rng(3))


def _old_render_scene(scene, geom, rng, sensor, size):
    """render_scene's capture as it was written before the burst (the documented steps)."""
    base = (size[0] * S.SR_SCALE, size[1] * S.SR_SCALE)
    content = scene(geom, rng, base)
    exp = S.sample_exposure(rng, sensor)
    img = S.sensor_response(content.paint(base), exp, rng, sensor, base[0])
    return S.degrade(img, rng, S.SR_SCALE)


@pytest.mark.parametrize("sensor", ["xray", "nir"])
def test_render_scene_unchanged(sensor):
    scene = S.bona_fide_xray_scene if sensor == "xray" else S.bona_fide_nir_scene
    a = S.render_scene(scene, _geom(), np.random.default_rng(7), sensor, SIZE)
    b = _old_render_scene(scene, _geom(), np.random.default_rng(7), sensor, SIZE)
    assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("sensor", ["xray", "nir"])
def test_burst_frame0_is_the_capture_and_rng_advances_alike(sensor):
    scene = S.bona_fide_xray_scene if sensor == "xray" else S.bona_fide_nir_scene
    r1, r2 = np.random.default_rng(9), np.random.default_rng(9)
    one = S.render_scene(scene, _geom(), r1, sensor, SIZE)
    frames = S.render_burst(scene, _geom(), r2, sensor, SIZE, k=3, frame_seed=[1, 2])
    assert len(frames) == 4
    assert frames[0].tobytes() == one.tobytes()
    assert r1.random() == r2.random()          # the caller's generator left where it was
    for f in frames[1:]:
        assert f.shape == one.shape and f.dtype == np.float32
        assert not np.array_equal(f, one)
        # same content: far closer to frame 0 than another hand's capture is
    other = S.render_scene(scene, sample_hand(np.random.default_rng(4)),
                           np.random.default_rng(10), sensor, SIZE)
    d_same = np.mean([np.corrcoef(f.ravel(), one.ravel())[0, 1] for f in frames[1:]])
    assert d_same > np.corrcoef(other.ravel(), one.ravel())[0, 1]


def test_burst_repeatable_and_seeded():
    scene = S.bona_fide_xray_scene
    a = S.render_burst(scene, _geom(), np.random.default_rng(5), "xray", SIZE, 2, 11)
    b = S.render_burst(scene, _geom(), np.random.default_rng(5), "xray", SIZE, 2, 11)
    c = S.render_burst(scene, _geom(), np.random.default_rng(5), "xray", SIZE, 2, 12)
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a, b))
    assert a[0].tobytes() == c[0].tobytes() and a[1].tobytes() != c[1].tobytes()


def test_burst_keep_exposure_redraws_only_noise():
    scene = S.bona_fide_nir_scene
    keep = S.render_burst(scene, _geom(), np.random.default_rng(5), "nir", SIZE, 2, 11,
                          keep_exposure=True)
    new = S.render_burst(scene, _geom(), np.random.default_rng(5), "nir", SIZE, 2, 11)
    assert keep[0].tobytes() == new[0].tobytes()
    # the same exposure settings: the frames' means stay close to frame 0's
    assert abs(float(keep[1].mean()) - float(keep[0].mean())) < 0.02
    assert not np.array_equal(keep[1], keep[0])


def test_burst_k0_and_bad_k():
    scene = S.bona_fide_xray_scene
    f = S.render_burst(scene, _geom(), np.random.default_rng(5), "xray", SIZE, 0, 1)
    assert len(f) == 1
    with pytest.raises(ValueError):
        S.render_burst(scene, _geom(), np.random.default_rng(5), "xray", SIZE, -1, 1)
