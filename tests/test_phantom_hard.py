"""Hard negatives for the X-ray phantom check (issue 21: docs/results.md "The phantom check
retrained with the live tail's hands"): the risk traits, the hard classes and their layout, the
threshold over several validation sets at 1 in N, and the training tool's options."""
import numpy as np
import pytest

from device.synth import sensor as S
from device.synth.sensor_sets import identity


class _Hand:
    def __init__(self, size=1.0, palm_thickness=25.0, joint_spaces=(1.7, 1.7),
                 cortex_fraction=0.25):
        self.size, self.palm_thickness = size, palm_thickness
        self.joint_spaces, self.cortex_fraction = joint_spaces, cortex_fraction


def test_risk_traits_count_the_four_limits():
    from tools.train.phantom_data import risk_traits
    assert risk_traits(_Hand()) == 0
    assert risk_traits(_Hand(size=0.95)) == 1
    assert risk_traits(_Hand(size=0.95, palm_thickness=23.0)) == 2
    assert risk_traits(_Hand(size=0.95, palm_thickness=23.0, joint_spaces=(1.5, 1.6))) == 3
    assert risk_traits(_Hand(0.95, 23.0, (1.5, 1.6), 0.31)) == 4
    assert risk_traits(_Hand(0.953, 23.85, (1.60, 1.60), 0.305)) == 0   # limits are strict


def test_risk_hands_are_the_first_with_three_traits():
    from tools.train.phantom_data import risk_hands, risk_traits
    hands = risk_hands(61999, 6)
    assert len(hands) == 6 and hands == sorted(hands)
    assert all(risk_traits(identity(61999, i)) >= 3 for i in hands)
    skipped = set(range(hands[-1])) - set(hands)
    assert skipped and all(risk_traits(identity(61999, i)) < 3 for i in skipped)


def test_hard_plan_casts_a_phantom_on_each_hard_hand():
    from tools.train.phantom_data import LABEL, hard_plan, risk_hands
    plan = hard_plan(61999, 5)
    hands = risk_hands(61999, 5)
    assert [c for c, _ in plan] == ["hard_placed"] * 3 + ["hard_scene"] * 2 + ["hard_phantom"] * 5
    assert [i for c, i in plan if c != "hard_phantom"] == hands
    assert [i for c, i in plan if c == "hard_phantom"] == hands
    assert sum(LABEL[c] for c, _ in plan) == 5


def test_hard_classes_draw_as_their_kind_from_their_own_generator():
    from tools.train.phantom_data import render_frame
    for hard, kind in (("hard_placed", "live_placed"), ("hard_phantom", "phantom")):
        a, b = render_frame(hard, 61999, 3), render_frame(kind, 61999, 3)
        assert a.shape == b.shape == tuple(S.CAPTURE_SIZE["xray"])
        assert not np.array_equal(a, b)                  # not the same draws
        assert np.array_equal(a, render_frame(hard, 61999, 3))
    with pytest.raises(ValueError):
        render_frame("hard", 61999, 0)


def test_the_default_training_frames_are_unchanged():
    """--hard 0 renders seed 46013's plan alone (the recipe as first shipped)."""
    from tools.train.phantom import _frames, HARD_SEED, hard_count
    from tools.train.phantom_data import plan, render_frame, to_u8
    from tools.train.phantom_data import risk_hands
    f0, y0 = _frames(2, 46013, lambda m: None)
    assert len(f0) == 4 and list(y0) == [0, 0, 1, 1]
    cls, i = plan(2)[3]
    assert np.array_equal(f0[3], to_u8(render_frame(cls, 46013, i)))
    f1, y1 = _frames(2, 46013, lambda m: None, hard=2)
    assert np.array_equal(f1[:4], f0) and list(y1[4:]) == [0, 0, 1, 1]
    last = risk_hands(HARD_SEED, 2)[-1]
    assert np.array_equal(f1[-1], to_u8(render_frame("hard_phantom", HARD_SEED, last)))
    assert hard_count(1200, 4000) == 1200 and hard_count(1200, 300) == 90
    assert hard_count(0, 4000) == 0


def test_live_threshold_lets_one_in_n_beyond():
    from tools.train.phantom import counts_beyond, live_threshold, threshold_and_counts
    live = np.arange(5000) / 5000.0
    assert live_threshold(live, 5000) == live[-2]             # 1 of 5,000 beyond
    assert live_threshold(live, 1000) == live[-6]             # 5 of 5,000 beyond
    assert live_threshold(live[:1000], 1000) == live[998]
    scores = np.array([0.1, 0.2, 0.9, 0.95, 0.3])
    classes = ["bona_fide", "bona_fide", "skeleton_phantom", "skeleton_phantom", "photo"]
    assert counts_beyond(scores, classes, 0.25) == {
        "bona_fide": {"n": 2, "beyond": 0}, "skeleton_phantom": {"n": 2, "beyond": 2},
        "photo": {"n": 1, "beyond": 1}}
    t, c = threshold_and_counts(scores, classes)
    assert t == 0.2 and c["bona_fide"]["beyond"] == 0
    with pytest.raises(ValueError):
        live_threshold(np.zeros(0))


def test_the_cli_takes_several_validation_sets(monkeypatch, tmp_path):
    import tools.train.phantom as ph
    from tools.train.__main__ import main
    seen = {}
    monkeypatch.setattr(ph, "run", lambda *a, **kw: seen.update(args=a, kw=kw) or {})
    assert main(["phantom", "--profile", "quick", "--work", str(tmp_path),
                 "--validation", "A", "--validation", "B", "--live-frames", "L.npz",
                 "--allowed-in", "5000", "--hard", "1200"]) == 0
    assert seen["args"][4] == ["A", "B"]
    assert seen["kw"] == {"hard": 1200, "live_frames": ["L.npz"], "allowed_in": 5000}
    assert main(["phantom", "--profile", "quick", "--work", str(tmp_path),
                 "--validation", "A"]) == 0
    assert seen["kw"] == {"hard": 0, "live_frames": [], "allowed_in": 1000}
