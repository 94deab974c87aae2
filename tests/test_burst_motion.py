"""A burst rule for the motion-blur check, measured and not shipped (tools.eval_burst_motion;
docs/results.md "Motion blur over the burst"): the cameras expose together, so a moving hand
smears every view; the candidate keeps a view refused only for motion blur when another view
of the same burst passed. The gate itself still refuses such views (pinned below), and the
front end carries a refused view's regions for the measurement."""
from types import SimpleNamespace

import numpy as np
import pytest

from device.vision.quality import QualityIssue
from tools.eval_burst_motion import blurred_regions, keep_still_views
from tools.eval_motion_blur import motion_blur


def _blurred(name, isotropy=0.2):
    e = QualityIssue("motion_blur", "one-directional")
    e.regions, e.isotropy = SimpleNamespace(name=name), isotropy
    return e


def _ok(name):
    return SimpleNamespace(name=name)


def always(_):
    return True


def test_a_blurred_view_is_kept_when_another_view_passed():
    res = [(_ok("a"), None), (None, _blurred("b")), (None, _blurred("c"))]
    out = keep_still_views(res, always)
    assert [r.name for r, _ in out] == ["a", "b", "c"] and all(e is None for _, e in out)


def test_every_view_blurred_stays_refused():
    res = [(None, _blurred("a")), (None, _blurred("b"))]
    assert keep_still_views(res, always) == res


def test_only_motion_blur_with_regions_is_kept_and_the_passing_view_must_be_usable():
    other = QualityIssue("too_bright", "glare")
    no_regions = QualityIssue("motion_blur", "no regions attached")
    res = [(_ok("a"), None), (None, other), (None, no_regions), (None, _blurred("d"))]
    out = keep_still_views(res, always)
    assert out[1] == (None, other) and out[2] == (None, no_regions)
    assert out[3][0].name == "d" and out[3][1] is None
    # the only view that passed is unusable (e.g. saturated): nothing is kept
    assert keep_still_views(res, lambda r: False) == res
    assert blurred_regions(other) is None and blurred_regions(None) is None


def test_floor_on_the_kept_views_isotropy():
    res = [(_ok("a"), None), (None, _blurred("b", 0.10)), (None, _blurred("c", 0.22))]
    out = keep_still_views(res, always, floor=0.15)
    assert out[1] == res[1] and out[2][0].name == "c"


def test_front_end_attaches_the_regions_to_a_motion_blur_refusal():
    from tests.test_front_end import StubLandmarker, _upright
    from device.vision.front_end import FrontEnd
    im, lm = _upright()
    fe = FrontEnd(landmarker=StubLandmarker(lm), segmenter=None)
    with pytest.raises(QualityIssue) as e:
        fe(motion_blur(im, 12, 0.3))
    assert e.value.reason == "motion_blur"
    assert e.value.regions.roi.shape == fe(im).roi.shape and 0 <= e.value.isotropy < 0.25


def _pipeline(tmp_path):
    from tests.test_front_end import StubLandmarker, _upright
    from device.gate.pipeline import Pipeline
    from device.vision.front_end import FrontEnd
    from tests.conftest import gate_config
    im, lm = _upright()
    p = Pipeline(gate_config(tmp_path, liveness={"enabled": False}))
    p.front_end = FrontEnd(landmarker=StubLandmarker(lm), segmenter=None)
    return p, im


def test_gate_still_refuses_two_smeared_views_of_three(tmp_path):
    """The burst rule did not ship: the gate decides on the views that passed, as before."""
    from device.gate.decision import Decision, Deny
    p, im = _pipeline(tmp_path)
    try:
        smear = motion_blur(im, 12, 0.3)
        burst = SimpleNamespace(views=[im, smear, smear])
        with pytest.raises(Deny) as d:
            p._regions(burst, [0, 1, 2], Decision())
        assert d.value.reason == "quality:motion_blur"
        rois, issues = p.regions(burst.views)
        assert len(rois) == 1 and [e.reason for e in issues] == ["motion_blur"] * 2
    finally:
        p.close()


def test_gate_refuses_a_burst_whose_every_view_is_smeared(tmp_path):
    from device.gate.decision import Decision, Deny
    p, im = _pipeline(tmp_path)
    try:
        smear = motion_blur(im, 12, 0.3)
        burst = SimpleNamespace(views=[smear, smear, smear])
        with pytest.raises(Deny) as d:
            p._regions(burst, [0, 1, 2], Decision())
        assert d.value.reason == "quality:motion_blur"
    finally:
        p.close()


def test_eval_burst_motion_plan_and_stage_reason():
    from tools.eval_burst_motion import smear_plan, stage_reason

    class Q:
        max_clipped, min_texture = 0.25, 0.0
    a = smear_plan(np.random.default_rng(1), [(4, 10), (10, 20)], ["alike", "independent"], 3)
    b = smear_plan(np.random.default_rng(1), [(4, 10), (10, 20)], ["alike", "independent"], 3)
    assert a == b and a["still"] == [(0.0, 0.0)] * 3
    assert len({x for x in a["4-10/alike"]}) == 1 and 4 <= a["4-10/alike"][0][0] <= 10
    assert len({ang for _, ang in a["10-20/independent"]}) == 3
    assert {L for L, _ in a["10-20/independent"]} == {a["10-20/alike"][0][0]}
    roi = np.random.default_rng(0).integers(0, 200, (128, 128)).astype(np.uint8)
    ok = SimpleNamespace(roi=roi)
    assert stage_reason([(ok, None), (ok, None)], Q, 2) is None
    assert stage_reason([(ok, None), (None, _blurred("b"))], Q, 2) == "quality:motion_blur"
    e = _blurred("b")
    e.regions = SimpleNamespace(roi=roi)
    assert stage_reason(keep_still_views([(ok, None), (None, e)], always), Q, 2) is None
