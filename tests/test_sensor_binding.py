"""The same hand in both (device/gate/sensor_binding.py, device/synth/bound.py, mixed.py):
the pure geometry and silhouette functions, the synthetic gate's registration, and one bound and
one mixed presentation scored with the shipped segmentation network."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import ExemptCalibration, binding_stage, judge_binding

from device.gate import sensor_binding as B
from device.synth import bound
from device.vision.view_geometry import apply_homography


def _disc(shape, c, r):
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
    return (xs - c[0]) ** 2 + (ys - c[1]) ** 2 <= r * r


def test_signed_distance_and_probe_values():
    hand = _disc((64, 64), (32, 32), 12)
    field = np.ones((64, 64), bool)
    sdf, valid = B.signed_distance(hand, field)
    v = B.probe_values(sdf, valid, np.array([[32.0, 32.0], [32.0, 52.0], [np.nan, 1.0],
                                             [200.0, 3.0]]), px_per_mm=2.0)
    assert 5.0 < v[0] < 6.5                            # 12 px inside = 6 mm
    assert -4.5 < v[1] < -3.5                          # 8 px outside = -4 mm
    assert np.isnan(v[2]) and np.isnan(v[3])           # no point, outside the frame
    assert B.signed_distance(np.zeros((64, 64), bool), field) is None


def test_triangulation_places_the_hand_in_the_sensor_frame():
    """Points off the working plane, seen by the synthetic rig's cameras, land where the sensor
    sees them: camera centres from K and the registration, plane + parallax triangulation,
    the sensor's own projection."""
    from device.gate import binding_geometry as G
    from device.synth.hands import sample_rig
    sensor = "nir"
    rig = sample_rig(np.random.default_rng([7, 4]), 3)
    H = bound.nominal_registration(rig, sensor)
    S = bound.sensor_plane_matrix(sensor)
    px_mm, E = bound.sensor_optics(sensor)
    X = np.array([[10.0, 40.0, 12.0], [-25.0, 5.0, -9.0], [30.0, 60.0, 0.0]])   # world mm
    plane, centres = [], []
    for cam, Hk in zip(rig, H):
        v = (cam.K @ (cam.R @ X.T + cam.t[:, None])).T
        plane.append(apply_homography(np.linalg.inv(Hk), v[:, :2] / v[:, 2:]))
        centres.append(G.camera_centre(cam.K, Hk))
        C = -cam.R.T @ cam.t                           # the camera's centre, mm
        assert np.allclose(centres[-1][:2], (S @ [C[0], C[1], 1.0])[:2], atol=1e-6)
        assert np.isclose(centres[-1][2], C[2] * px_mm)
    P = G.triangulate(np.stack(plane), np.stack(centres))
    assert np.allclose(P[:, 2] / px_mm, X[:, 2], atol=1e-6)
    s = G.project_to_sensor(P, E)
    for x, q in zip(X, s):                             # the depth magnification about the axis
        on_plane = (S @ [x[0], x[1], 1.0])[:2]
        m = bound.depth_magnification(sensor, x[2])
        assert np.allclose(q, E[:2] + m * (on_plane - E[:2]), atol=1e-6)
    assert G.hand_in_sensor({0: plane[0]}, {0: centres[0]}, E) is None   # one view: no depth


def test_probes_and_groups_line_up():
    from device.gate import binding_geometry as G
    lm = np.random.default_rng(0).uniform(0, 100, (21, 2))
    pts = G.probe_points(lm, 1.0)
    assert len(pts) == len(G.probe_names()) == len(G.probe_groups()) - 1
    assert np.allclose(pts[:21], lm)
    assert set(G.probe_groups()) == {0, 1, 2, 3, 4, 5}
    e = np.zeros(len(G.probe_groups()))
    e[G.probe_groups() == 3] = 2.0                     # one finger off: trimmed away
    e[-1] = 1.0                                        # the height: never trimmed
    assert B.trimmed_excess(e, G.probe_groups()) == 1.0


def test_sensor_silhouette_finds_a_bright_hand_and_skips_a_bright_rim():
    rng = np.random.default_rng(0)
    img = np.full((128, 128), 30.0)
    hand = _disc((128, 128), (64, 70), 30)
    img[hand] = 150
    img += rng.normal(0, 3, img.shape)
    img[:10], img[-10:], img[:, :10], img[:, -10:] = 240, 240, 240, 240     # collimator rim
    sil = B.sensor_silhouette(np.clip(img, 0, 255).astype(np.uint8), "xray")
    assert np.count_nonzero(sil & hand) / np.count_nonzero(sil | hand) > 0.9
    flat = np.full((128, 128), 90, np.uint8)
    assert not B.sensor_silhouette(flat).any()


def test_homography_registration_scales_sizes():
    H = [np.diag([2.0, 2.0, 1.0])]                     # sensor px -> view px, x2
    reg = B.HomographyRegistration(H, (200, 100), (100, 50))
    p = reg.to_sensor(np.array([[100.0, 40.0]]), 0, (400, 200), (50, 25))
    assert np.allclose(p, [[12.5, 5.0]])
    assert np.isnan(reg.to_sensor(np.zeros((1, 2)), 3, (200, 100), (100, 50))).all()


@pytest.mark.parametrize("sensor", ["nir", "xray"])
def test_nominal_registration_maps_the_gate_plane(sensor):
    """A point of the working plane lands where each camera sees it."""
    from device.synth.hands import sample_rig
    rig = sample_rig(np.random.default_rng([3, 4]), 3)
    H = bound.nominal_registration(rig, sensor)
    S = bound.sensor_plane_matrix(sensor)
    X = np.array([12.0, 30.0, 1.0])                    # gate-plane mm
    s = S @ X
    for cam, Hk in zip(rig, H):
        v = cam.K @ (cam.R @ np.array([12.0, 30.0, 0.0]) + cam.t)
        w = Hk @ s
        assert np.allclose(w[:2] / w[2], v[:2] / v[2], atol=1e-6)
    assert bound.depth_magnification(sensor, 0.0) == 1.0


def test_mixed_variants_and_pose():
    from device.synth.hand_geometry import HandPose
    from device.synth.mixed import MIXED_SPECIES, replica_pose, variants
    assert "species" in variants("mixed_replica_sensor")
    assert "species" not in variants("mixed_replica_views")
    with pytest.raises(ValueError):
        variants("printed_photo")
    rng = np.random.default_rng(1)
    live = HandPose(rotation=3.0, translation=(1.0, 2.0))
    p, s = replica_pose(live, rng, "offset")
    assert 10.0 <= np.hypot(p.translation[0] - 1.0, p.translation[1] - 2.0) <= 30.0 and s == 1
    p, s = replica_pose(live, rng, "rotation")
    assert 10.0 <= abs(p.rotation - 3.0) <= 30.0
    p, s = replica_pose(live, rng, "scale")
    assert 0.10 <= abs(s - 1.0) <= 0.25
    assert len(MIXED_SPECIES) == 2


def _judge(stage, front_end, shot):
    """(denied, score) of one synthetic presentation through the binding stage, with the
    front end's landmarks as the gate hands them over."""
    denied, out, _ = judge_binding(stage, front_end, shot)
    return denied, out.binding


@pytest.fixture(scope="module")
def people_xray():
    from device.synth.source import SyntheticPeople
    return SyntheticPeople(seed=0, views=3, sensor="xray")


def _person(people, i, rng):
    geom, ident = people._person(i)
    return geom, people.synth.palms(ident, 1, rng)[0]


def test_a_live_presentation_binds(front_end, people_xray):
    stage = binding_stage("xray")
    rng = np.random.default_rng(5)
    geom, tex = _person(people_xray, 0, rng)
    shot = bound.render_bound(geom, tex, rng, people_xray.rig, "xray")
    denied, score = _judge(stage, front_end, shot)
    assert not denied and score <= stage.max_score


@pytest.mark.parametrize("species,variant", [
    ("mixed_replica_sensor", "offset"), ("mixed_replica_views", "rotation"),
    ("mixed_replica_sensor", "scale"), ("mixed_replica_views", "other_hand"),
    ("mixed_replica_sensor", "species")])
def test_mixed_presentations_are_denied(front_end, people_xray, species, variant):
    """One fixed mixed presentation of each variant (the rates over hundreds are in
    docs/sensor-branch.md, "Binding"; not every one is denied)."""
    from device.synth.mixed import render_mixed
    stage = binding_stage("xray")
    rng = np.random.default_rng(MIXED_RNG[variant])
    victim, vt = _person(people_xray, 0, rng)
    other, ot = _person(people_xray, 1, rng)
    shot, meta = render_mixed(species, victim, vt, other, ot, rng, people_xray.rig, "xray",
                              variant=variant)
    denied, score = _judge(stage, front_end, shot)
    assert denied and score > stage.max_score


MIXED_RNG = {"offset": 1, "rotation": 1, "scale": 1, "other_hand": 1, "species": 5}
"""The draw of each variant's fixed presentation (species 5: a photo replica; draws 2-3 and 6-7
put a phantom or a cast where the live hand is, and are not denied)."""


def test_the_score_fails_secure_without_matching_ranges():
    """No ranges for the sensor, or ranges of another probe set: the score is inf (deny)."""
    from device.gate import binding_geometry as G
    n = len(G.probe_groups())
    hand = _disc((128, 128), (64, 64), 40)
    sd = B.signed_distance(hand, np.ones((128, 128), bool))
    m = B.HandProbes(np.zeros(n), np.full((21, 2), 64.0), 2, 0.0, sd, 1.0)
    ok = {"lo": [-1.0] * n, "hi": [1.0] * n, "clip": 15.0}
    assert B.binding_score(m, "nir", ok) < float("inf")
    assert B.binding_score(m, "nir", {}) == float("inf")
    short = {"lo": [-1.0] * (n - 6), "hi": [1.0] * (n - 6), "clip": 15.0}
    assert B.binding_score(m, "nir", short) == float("inf")
    assert B.binding_score(None, "nir", ok) == float("inf")


def test_binding_stage_denies_without_landmarks_and_can_be_off():
    from device.config import load_config
    from device.gate.decision import Decision, Deny
    from device.sources.replay import Burst
    views = [np.zeros((480, 640, 3), np.uint8)] * 3
    frame = np.zeros((128, 128), np.uint8)
    frame[30:100, 40:90] = 200
    stage = binding_stage("nir")
    out = Decision()
    out.landmarks[0] = np.random.default_rng(0).uniform(100, 300, (21, 2))   # one view only
    with pytest.raises(Deny) as e:
        stage(Burst(views, frame, {}), out)
    assert e.value.reason == "sensor_mismatch" and out.binding == float("inf")
    off = load_config(None, liveness={"binding": False})
    assert B.binding_stage(off, ExemptCalibration()) is None
