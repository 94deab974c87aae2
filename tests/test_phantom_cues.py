"""The skeleton phantom's three renderer cues made lifelike one by one (a training-data option,
issue 21: docs/results.md "Phantom cues drawn independently"): the default is unchanged and each
cue changes the frame without changing the scene's random draws."""
import numpy as np
import pytest

from device.synth import sensor as S
from device.synth.attacks_composite import PHANTOM_CUES, skeleton_phantom_scene
from device.synth.sensor_sets import identity


def _frame(seed, **kw):
    from functools import partial
    rng = np.random.default_rng([seed, 3])
    img = S.render_scene(partial(skeleton_phantom_scene, **kw), identity(seed, 0), rng, "xray",
                         tuple(S.CAPTURE_SIZE["xray"]), 1)
    return img, rng.random()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_default_is_the_phantom_as_before(seed):
    a, ra = _frame(seed)
    b, rb = _frame(seed, lifelike=frozenset())
    assert np.array_equal(a, b) and ra == rb


def test_each_cue_changes_the_frame_not_the_draws():
    base, r0 = _frame(4)
    for cue in PHANTOM_CUES:
        img, r = _frame(4, lifelike=frozenset({cue}))
        assert r == r0                     # the same draws: only the physics differs
        assert not np.array_equal(img, base), cue


def test_an_unknown_cue_is_refused():
    with pytest.raises(ValueError):
        _frame(5, lifelike=frozenset({"wire"}))


def test_training_cue_draws_keep_at_least_one_phantom_cue():
    from tools.train.phantom_data import lifelike_cues
    seen = [lifelike_cues(46029, i) for i in range(400)]
    assert all(len(s) < len(PHANTOM_CUES) for s in seen)      # at least one cue present
    assert all(s <= set(PHANTOM_CUES) for s in seen)
    assert len({frozenset(s) for s in seen}) == 2 ** len(PHANTOM_CUES) - 1
    assert seen == [lifelike_cues(46029, i) for i in range(400)]   # a function of (seed, i)


def test_training_class_renders_a_phantom_frame():
    from tools.train.phantom_data import LABEL, render_frame
    img = render_frame("phantom_cues", 46029, 0)
    assert img.shape == tuple(S.CAPTURE_SIZE["xray"]) and LABEL["phantom_cues"] == 1
