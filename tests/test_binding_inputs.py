"""Bad input to the sensor binding (device/gate/sensor_binding.py, binding_texture.py,
binding_background.py) denies or raises a clear error, never passes: a sensor frame that is not
a finite image (NaN, inf, empty, an odd shape), an empty view, views without landmarks. The
pipeline's quality stage refuses a non-uint8 sensor frame before the binding runs; the stage
is public (the evaluations call it) and fails secure on its own."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import binding_stage, sensor_u8, view_landmarks

from device.gate import binding_background as BG
from device.gate import binding_texture as T
from device.gate import sensor_binding as B
from device.synth import bound


@pytest.fixture(scope="module")
def live_xray(front_end):
    """(views, uint8 sensor frame, landmarks) of one live X-ray presentation that binds."""
    from device.synth.source import SyntheticPeople
    people = SyntheticPeople(seed=0, views=3, sensor="xray")
    rng = np.random.default_rng(5)
    geom, ident = people._person(0)
    shot = bound.render_bound(geom, people.synth.palms(ident, 1, rng)[0], rng, people.rig,
                              "xray")
    return shot.views, sensor_u8(shot.sensor), view_landmarks(front_end, shot.views)


def _verdict(stage, views, frame, lms):
    from device.gate.decision import Decision, Deny
    from device.sources.replay import Burst
    out = Decision()
    out.landmarks.update(lms)
    try:
        stage(Burst(views, frame, {}), out)
        return "open"
    except Deny as e:
        return e.reason


def _bad_frames(frame):
    f = frame.astype(np.float32)
    nan_patch = f.copy()
    nan_patch[60:76, 60:76] = np.nan
    one_nan = f.copy()
    one_nan[64, 64] = np.nan
    inf = f.copy()
    inf[64, 64] = np.inf
    return {"nan patch": nan_patch, "one nan": one_nan, "inf": inf,
            "empty": np.zeros((0, 0), np.uint8), "1x1": np.zeros((1, 1), np.uint8),
            "one channel 3-D": frame[:, :, None], "4-D": frame[None, :, :, None],
            "bool": frame > 100, "not an array": frame.tolist()}


def test_the_live_presentation_binds(live_xray):
    assert _verdict(binding_stage("xray"), *live_xray) == "open"


@pytest.mark.parametrize("bad", list(_bad_frames(np.zeros((128, 128), np.uint8))))
@pytest.mark.parametrize("sensor", ["xray", "nir"])
def test_a_sensor_frame_that_is_not_a_finite_image_denies(live_xray, bad, sensor):
    views, frame, lms = live_xray
    bad_frame = _bad_frames(frame)[bad]
    assert _verdict(binding_stage(sensor), views, bad_frame, lms) == "sensor_mismatch"


def test_an_empty_view_is_left_out_and_none_with_landmarks_denies(live_xray):
    views, frame, lms = live_xray
    stage = binding_stage("xray")
    v = list(views)
    v[0] = np.zeros((0, 0, 3), np.uint8)                 # one empty view: two left
    assert _verdict(stage, v, frame, lms) == "open"
    v = [np.zeros((0, 0, 3), np.uint8)] * 3
    assert _verdict(stage, v, frame, lms) == "sensor_mismatch"
    assert _verdict(stage, views, frame, {}) == "sensor_mismatch"


def test_the_pure_functions_refuse_a_non_finite_frame():
    g = np.full((64, 64), 20.0, np.float32)
    g[20:40, 20:40] = 200.0
    bad = g.copy()
    bad[30, 30] = np.nan
    with pytest.raises(ValueError, match="finite"):
        B.sensor_hand(bad, 0.2)
    field = np.ones(g.shape, bool)
    with pytest.raises(ValueError, match="finite"):
        BG.ramp_cut(bad, field, 20.0, 200.0, 0.2)
    with pytest.raises(ValueError, match="shape"):
        BG.ramp_cut(g, field[:32], 20.0, 200.0, 0.2)
    lm = np.full((21, 2), 30.0)
    lm[list(T.PALM_LANDMARKS)] = [[30, 50], [15, 40], [20, 20], [28, 18], [36, 18], [44, 22]]
    assert np.isnan(T.texture_agreement(bad, {}, {}, lm, 1.0))


@pytest.mark.parametrize("bad", ["5 rows", "30 rows", "1-D", "text key", "not numbers"])
def test_malformed_landmarks_are_left_out(live_xray, bad):
    """A view's landmarks that are not (21, 2+) numbers under an int view index are left out
    (an IndexError or TypeError before): with all three malformed the hand cannot be placed;
    with one, the other two still bind."""
    views, frame, lms = live_xray
    wrong = {"5 rows": lambda k, v: (k, v[:5]), "30 rows": lambda k, v: (k, np.vstack([v, v[:9]])),
             "1-D": lambda k, v: (k, v.ravel()), "text key": lambda k, v: (str(k), v),
             "not numbers": lambda k, v: (k, [["a", "b"]] * 21)}[bad]
    stage = binding_stage("xray")
    assert _verdict(stage, views, frame, dict(wrong(k, v) for k, v in lms.items())) \
        == "sensor_mismatch"
    if len(lms) == 3:
        first = min(lms)
        one = dict(lms)
        del one[first]
        one.update([wrong(first, lms[first])])
        assert _verdict(stage, views, frame, one) == "open"
