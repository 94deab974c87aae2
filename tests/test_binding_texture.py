"""The NIR palm lines in both halves (device/gate/binding_texture.py; the NIR renderer's palm
print, device/synth/sensor.py): the pure functions, and bound and mixed NIR presentations
through the binding stage with the shipped landmark network."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import binding_stage, judge_binding, sensor_u8, view_landmarks

from device.gate import binding_texture as T
from device.synth import bound
from device.vision.view_geometry import apply_homography


def _lines(rng, shape=(128, 128), n=12):
    import cv2
    img = np.full(shape, 160.0, np.float32)
    for _ in range(n):
        p = rng.uniform(10, 118, (2, 2)).astype(np.int32)
        cv2.line(img, tuple(map(int, p[0])), tuple(map(int, p[1])), 90.0, 1, cv2.LINE_AA)
    return img


def test_the_palm_plane_and_the_registration_are_recovered():
    rng = np.random.default_rng(0)
    P = np.column_stack([rng.uniform(20, 100, (6, 2)), np.zeros(6)])
    P[:, 2] = 0.05 * P[:, 0] - 0.02 * P[:, 1] + 12.0
    np.testing.assert_allclose(T.palm_plane(P), [0.05, -0.02, 12.0], atol=1e-9)
    assert T.palm_plane(P[:2]) is None
    H = np.array([[1.9, -0.4, 120.0], [0.3, -2.1, 300.0], [1e-4, 2e-4, 1.0]])
    q = rng.uniform(0, 128, (21, 2))
    v = apply_homography(H, q)
    np.testing.assert_allclose(T.plane_to_view(q, v), H / H[2, 2], rtol=1e-6, atol=1e-6)
    assert T.plane_to_view(q[:3], v[:3]) is None


def test_view_maps_send_a_palm_point_where_the_view_sees_it():
    """A point of the (tilted) palm plane: where the sensor sees it, the map gives the view
    pixel at which the view's ray through it meets the working plane, through H."""
    E = np.array([64.0, 64.0, -270.0])               # the NIR camera below the plane
    C = np.array([150.0, 40.0, 300.0])               # a view's camera centre
    H = np.array([[1.9, -0.4, 120.0], [0.3, -2.1, 300.0], [1e-4, 2e-4, 1.0]])
    plane = np.array([0.04, -0.03, 15.0])
    mx, my = T.view_maps((128, 128), plane, E, C, H)
    from device.gate import binding_geometry as G
    for s in ([40, 50], [64, 64], [90, 100]):
        # the plane point the sensor sees at pixel s (solved densely), then the view's ray
        P = np.array([*s, 0.0], float)
        for _ in range(50):
            P[2] = plane @ [P[0], P[1], 1.0]
            P[:2] = E[:2] + (np.array(s, float) - E[:2]) * (E[2] - P[2]) / E[2]
        np.testing.assert_allclose(G.project_to_sensor(P[None], E)[0], s, atol=1e-6)
        q = C[:2] + (P[:2] - C[:2]) * C[2] / (C[2] - P[2])
        v = apply_homography(H, q[None])[0]
        np.testing.assert_allclose([mx[s[1], s[0]], my[s[1], s[0]]], v, atol=0.05)


def test_line_agreement_finds_a_shifted_copy_and_not_another_pattern():
    rng = np.random.default_rng(1)
    img = _lines(rng)
    mask = np.zeros(img.shape, bool)
    mask[24:104, 24:104] = True
    lm = T.line_map(img, 1.0)
    shifted = np.roll(lm, (2, -1), axis=(0, 1))
    other = T.line_map(_lines(rng), 1.0)
    same = T.line_agreement(lm, shifted, mask, 3)
    assert same > 0.6
    assert T.line_agreement(lm, other, mask, 3) < same / 2
    assert np.isnan(T.line_agreement(lm, lm, np.zeros_like(mask), 3))   # no palm area


def test_the_veins_are_left_out_and_the_lines_kept():
    import cv2
    rng = np.random.default_rng(2)
    img = _lines(rng)
    cv2.line(img, (20, 30), (110, 100), 40.0, 5, cv2.LINE_AA)       # a wide, deep vein
    img = cv2.GaussianBlur(img, (0, 0), 0.7)
    palm = np.zeros(img.shape, bool)
    palm[16:112, 16:112] = True
    w = T.compared_area(img, palm, 1.0)
    vein = np.zeros(img.shape, np.uint8)
    cv2.line(vein, (20, 30), (110, 100), 1, 3)
    on_vein = w[(vein > 0) & palm].mean()
    assert on_vein < 0.2 and w[palm].mean() > 0.6 and not w[~palm].any()


def test_the_nir_frame_shows_the_views_palm_print_and_xray_is_unchanged(monkeypatch):
    """With the switch on, the NIR frame of a bound presentation carries the palm print the
    views show (with another print it is another frame; without one, the layout's creases as
    before); off, and for X-ray, the print is ignored."""
    from device.synth.source import SyntheticPeople
    people = SyntheticPeople(seed=0, views=3, sensor="nir")
    geom, ident = people._person(0)
    tex = people.synth.palms(ident, 2, np.random.default_rng(0))
    pose = bound.perturb_pose(np.random.default_rng(1), 0.8)

    def frame(sensor, t):
        return bound.render_placed(bound.bona_fide_scene(sensor), geom,
                                   np.random.default_rng(2), sensor, pose, 0.0,
                                   palm_texture=t)
    monkeypatch.setattr(bound, "NIR_PALM_PRINT", False)
    off = frame("nir", tex[0])
    monkeypatch.setattr(bound, "NIR_PALM_PRINT", True)
    a, b, none = frame("nir", tex[0]), frame("nir", tex[1]), frame("nir", None)
    assert not np.array_equal(a, b) and not np.array_equal(a, none)
    np.testing.assert_array_equal(off, none)
    np.testing.assert_array_equal(frame("xray", tex[0]), frame("xray", None))
    # only the lines differ: the same exposure and shading (the print's draws are aside)
    assert abs(float(a.mean()) - float(none.mean())) < 0.05 * float(none.mean())


@pytest.fixture(scope="module")
def people_nir():
    from device.synth.source import SyntheticPeople
    return SyntheticPeople(seed=0, views=3, sensor="nir")


POINT = {"min_agreement": 0.1772, "max_score": 35.6}
"""The palm lines' numbers the stage is given here (a signed test file): the point chosen on
validation seeds 11 + 23 in the palm-print world (branch nirlines; not shipped until the NIR
world is on)."""


def _models_with(models, key, palm_lines):
    """``models`` (signed with ``key``) with binding_nir.json carrying ``palm_lines`` (None:
    none)."""
    import json
    import os

    from conftest import sign_models

    from device.eval.binding_release import current_doc, write_numbers
    doc = current_doc("nir", models)
    doc.pop("palm_lines", None)
    os.unlink(models / "binding_nir.json")               # a link to the shipped file
    (models / "binding_nir.json").write_text(json.dumps(doc))
    write_numbers("nir", {"palm_lines": palm_lines} if palm_lines else {},
                  command="test", data="test", models_dir=models)
    return sign_models(models, key)


@pytest.fixture
def palm_line_models(tiny_models, trust_test_key):
    """A signed models folder whose binding_nir.json carries palm-line numbers."""
    return _models_with(tiny_models, trust_test_key, dict(POINT, rule="test"))


@pytest.fixture
def no_palm_line_models(tiny_models, trust_test_key):
    """A signed models folder whose binding_nir.json carries none."""
    return _models_with(tiny_models, trust_test_key, None)


@pytest.fixture
def palm_print(monkeypatch):
    """The physically consistent NIR world: live NIR frames show the views' palm print."""
    monkeypatch.setattr(bound, "NIR_PALM_PRINT", True)


def _judge(stage, front_end, shot):
    """(denied, palm-line agreement) of one presentation through the binding stage."""
    denied, out, frame = judge_binding(stage, front_end, shot)
    return denied, stage.score(shot.views, frame, out.landmarks).texture


def _person(people, i, rng):
    geom, ident = people._person(i)
    return geom, people.synth.palms(ident, 1, rng)[0]


def test_the_palm_lines_are_checked_where_the_signed_file_carries_them(palm_line_models):
    on = binding_stage("nir", palm_line_models)
    assert on.min_texture == POINT["min_agreement"] and on.max_score == POINT["max_score"]
    assert binding_stage("xray").min_texture is None


def test_without_signed_palm_line_numbers_the_check_is_off(no_palm_line_models):
    from device.gate.binding_numbers import load_binding_numbers
    off = binding_stage("nir", no_palm_line_models)
    assert off.min_texture is None and off.error is None
    assert off.max_score == load_binding_numbers("nir", no_palm_line_models).max_score
    shipped = load_binding_numbers("nir").palm_lines      # on or off, as the release ships it
    assert binding_stage("nir").min_texture == (shipped["min_agreement"] if shipped else None)


def test_the_configuration_may_only_tighten_the_palm_lines(palm_line_models):
    from device.gate.decision import Decision, Deny
    from device.sources.replay import Burst
    m = POINT["min_agreement"]
    assert binding_stage("nir", palm_line_models, binding_min_palm_lines=m + 0.1).min_texture \
        == m + 0.1
    looser = binding_stage("nir", palm_line_models, binding_min_palm_lines=m - 0.1)
    assert looser.numbers is None and "below the signed" in looser.error
    with pytest.raises(Deny) as e:
        looser(Burst([np.zeros((480, 640, 3), np.uint8)] * 3, np.zeros((128, 128), np.uint8),
                     {}), Decision())
    assert e.value.reason == "liveness_unavailable"
    assert binding_stage("nir", palm_line_models, binding_min_palm_lines=m).min_texture == m
    assert binding_stage("xray", binding_min_palm_lines=0.2).numbers is None


def test_a_configured_least_agreement_turns_the_check_on_without_signed_numbers(
        no_palm_line_models):
    assert binding_stage("nir", no_palm_line_models, binding_min_palm_lines=0.2).min_texture == 0.2


def test_tampered_palm_line_numbers_leave_the_stage_unavailable(palm_line_models):
    import json
    f = palm_line_models / "binding_nir.json"
    doc = json.loads(f.read_text())
    doc["palm_lines"]["min_agreement"] = -1.0            # loosened, hash not updated
    f.write_text(json.dumps(doc))
    stage = binding_stage("nir", palm_line_models)
    assert stage.numbers is None and "sha256" in stage.error
    from device.gate.decision import Decision, Deny
    from device.sources.replay import Burst
    with pytest.raises(Deny) as e:
        stage(Burst([np.zeros((480, 640, 3), np.uint8)] * 3, np.zeros((128, 128), np.uint8),
                    {}), Decision())
    assert e.value.reason == "liveness_unavailable"


def test_a_live_nir_presentation_binds(front_end, people_nir, palm_print, palm_line_models):
    stage = binding_stage("nir", palm_line_models)
    rng = np.random.default_rng(5)
    geom, tex = _person(people_nir, 0, rng)
    shot = bound.render_bound(geom, tex, rng, people_nir.rig, "nir")
    denied, texture = _judge(stage, front_end, shot)
    assert not denied and texture > 0.2        # the views' lines are the frame's lines


@pytest.mark.parametrize("species,variant", [
    ("mixed_replica_sensor", "offset"), ("mixed_replica_views", "rotation"),
    ("mixed_replica_sensor", "scale"), ("mixed_replica_views", "other_hand"),
    ("mixed_replica_sensor", "species")])
def test_mixed_nir_presentations_are_denied(front_end, people_nir, palm_print, species,
                                            variant, palm_line_models):
    """One fixed mixed NIR presentation of each variant (the rates over hundreds are in
    docs/sensor-branch.md, "Binding"; not every one is denied)."""
    from device.synth.mixed import render_mixed
    stage = binding_stage("nir", palm_line_models)
    rng = np.random.default_rng(MIXED_RNG[variant])
    victim, vt = _person(people_nir, 0, rng)
    other, ot = _person(people_nir, 1, rng)
    shot, _ = render_mixed(species, victim, vt, other, ot, rng, people_nir.rig, "nir",
                           variant=variant)
    denied, texture = _judge(stage, front_end, shot)
    assert denied and texture < stage.min_texture


MIXED_RNG = {"offset": 7, "rotation": 6, "scale": 1, "other_hand": 7, "species": 2}
"""The draw of each variant's fixed presentation: one the palm lines deny at :data:`POINT`
(draws 1-8 of each variant: all 8 denied, but for one scale and one species draw; the rates
are in docs/sensor-branch.md)."""


def _random_lines(rng, n=40):
    import cv2
    img = np.full((128, 128), 160.0, np.float32)
    for _ in range(n):
        p = rng.uniform(0, 128, (2, 2)).astype(np.int32)
        cv2.line(img, tuple(map(int, p[0])), tuple(map(int, p[1])), 90.0, 1, cv2.LINE_AA)
    return img.astype(np.uint8)


def _palm_at(corners):
    lm = np.full((21, 2), np.nan)
    lm[list(T.PALM_LANDMARKS)] = corners
    return lm


@pytest.mark.parametrize("corners", [
    # the palm mostly off the frame: a strip a few pixels wide left on it
    [[-100, 100], [-100, 30], [8, 30], [8, 60], [8, 80], [8, 100]],
    # a palm far smaller than a hand's, on the frame
    [[40, 70], [40, 40], [70, 40], [70, 55], [70, 70], [55, 70]]])
def test_a_palm_area_too_small_or_off_the_frame_is_not_compared(corners):
    """Unrelated lines in a few hundred pixels agree above the signed least agreement by
    chance (the best of shifts, sizes and views): 58 % of draws with the palm a strip at the
    frame's edge, 23 % with a 390 mm^2 palm. Such a presentation is not compared (NaN: the
    stage denies it), never judged on chance."""
    ys, xs = np.mgrid[0:128, 0:128].astype(np.float32)
    maps = {k: (xs, ys) for k in range(3)}
    lm = _palm_at(corners)
    for s in range(12):
        rng = np.random.default_rng(s)
        frame, views = _random_lines(rng), [_random_lines(rng) for _ in range(3)]
        assert np.isnan(T.texture_agreement(frame, views, maps, lm, 1.0667)), s


def test_a_whole_palm_on_the_frame_is_compared():
    ys, xs = np.mgrid[0:128, 0:128].astype(np.float32)
    maps = {k: (xs, ys) for k in range(3)}
    lm = _palm_at([[30, 100], [20, 60], [40, 25], [65, 22], [90, 25], [105, 40]])
    rng = np.random.default_rng(0)
    frame = _random_lines(rng)
    same = T.texture_agreement(frame, [frame] * 3, maps, lm, 1.0667)
    other = T.texture_agreement(frame, [_random_lines(rng)] * 3, maps, lm, 1.0667)
    assert same > 0.9 and other < 0.1772


def test_the_stage_denies_a_presentation_whose_palm_lines_are_not_a_number(
        palm_line_models, monkeypatch):
    """An outline that binds (score 0) does not carry a presentation whose palm lines could
    not be compared (NaN) or were not computed (None) at the looser outline threshold."""
    from device.gate import sensor_binding as B
    from device.gate.decision import Decision, Deny
    from device.sources.replay import Burst
    stage = binding_stage("nir", palm_line_models)
    assert stage.max_score == POINT["max_score"]
    probes = B.HandProbes(np.zeros(3), np.zeros((21, 2)), 3, 0.0, None, 1.0, None, None)
    for t in (float("nan"), None, float("-inf")):
        monkeypatch.setattr(stage, "score", lambda *a, t=t: B.Binding(0.0, probes, t))
        with pytest.raises(Deny) as e:
            stage(Burst([np.zeros((480, 640, 3), np.uint8)] * 3,
                        np.zeros((128, 128), np.uint8), {}), Decision())
        assert e.value.reason == "sensor_mismatch" and "palm lines" in e.value.detail


def test_presentations_whose_lines_cannot_be_compared_are_denied(
        front_end, people_nir, palm_print, palm_line_models):
    """With the palm lines in force (the outline at its looser threshold), a presentation
    whose lines cannot be compared is denied ``sensor_mismatch``, never passed on the outline:
    a blank, saturated or NaN frame, one view with landmarks, landmarks all NaN, views with
    nothing to compare, one view with a registration; the live one binds, also with two views
    and as float or BGRA frames."""
    import cv2

    from device.gate.decision import Decision, Deny
    from device.sources.replay import Burst
    stage = binding_stage("nir", palm_line_models)
    rng = np.random.default_rng(5)
    geom, tex = _person(people_nir, 0, rng)
    shot = bound.render_bound(geom, tex, rng, people_nir.rig, "nir")
    lms = view_landmarks(front_end, shot.views)
    frame = sensor_u8(shot.sensor)
    assert len(lms) == 3

    def denied(views, fr, lm):
        out = Decision()
        out.landmarks.update(lm)
        try:
            stage(Burst(views, fr, {}), out)
            return None
        except Deny as e:
            return e.reason
    nan = frame.astype(np.float32)
    nan[3, 3] = np.nan
    first = dict(list(lms.items())[:1])
    for views, fr, lm in [
            (shot.views, np.zeros_like(frame), lms), (shot.views, np.full_like(frame, 255), lms),
            (shot.views, nan, lms), (shot.views, frame, first),
            (shot.views, frame, {k: np.full((21, 2), np.nan) for k in lms}),
            ([np.full_like(v, 128) for v in shot.views], frame, lms)]:
        assert denied(views, fr, lm) == "sensor_mismatch"
    for fr, lm in [(frame, lms), (frame, dict(list(lms.items())[:2])),
                   (frame.astype(np.float32) / 255, lms),
                   (cv2.cvtColor(frame, cv2.COLOR_GRAY2BGRA), lms)]:
        assert denied(shot.views, fr, lm) is None
    centre = stage.registration.centre
    stage.registration.centre = lambda k, vs, fs: centre(k, vs, fs) if k == 2 else None
    assert denied(shot.views, frame, lms) == "sensor_mismatch"
