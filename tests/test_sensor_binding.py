"""The same hand in both (device/gate/sensor_binding.py, device/synth/bound.py, mixed.py):
the pure geometry and silhouette functions, the synthetic gate's registration, and one bound and
one mixed presentation scored with the shipped segmentation network."""
from __future__ import annotations

import numpy as np
import pytest

from device.gate import sensor_binding as B
from device.synth import bound


def _disc(shape, c, r):
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
    return (xs - c[0]) ** 2 + (ys - c[1]) ** 2 <= r * r


def test_iou_and_outline_distance():
    a = _disc((64, 64), (32, 32), 12)
    field = np.ones((64, 64), bool)
    assert B.iou(a, a) == 1.0
    assert B.outline_distance(a, a, field) == 0.0
    b = _disc((64, 64), (36, 32), 12)                  # moved 4 px
    d = B.outline_distance(a, b, field)
    assert 1.0 < d < 4.0
    assert B.outline_distance(a, np.zeros_like(a), field) == float("inf")


def test_sensor_silhouette_finds_a_bright_hand_and_skips_a_bright_rim():
    rng = np.random.default_rng(0)
    img = np.full((128, 128), 30.0)
    hand = _disc((128, 128), (64, 70), 30)
    img[hand] = 150
    img += rng.normal(0, 3, img.shape)
    img[:10], img[-10:], img[:, :10], img[:, -10:] = 240, 240, 240, 240     # collimator rim
    sil = B.sensor_silhouette(np.clip(img, 0, 255).astype(np.uint8), "xray")
    assert B.iou(sil, hand) > 0.9
    flat = np.full((128, 128), 90, np.uint8)
    assert not B.sensor_silhouette(flat).any()


def test_mask_in_sensor_follows_the_map():
    m = np.zeros((100, 200), np.uint8)
    m[20:60, 50:150] = 1
    out = B.mask_in_sensor(m, lambda p: p / 2.0, (50, 100))
    assert out is not None and abs(int(out.sum()) - 20 * 50) < 120
    assert B.mask_in_sensor(np.zeros((10, 10), np.uint8), lambda p: p, (10, 10)) is None


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


@pytest.fixture(scope="module")
def seg():
    from device.config import load_config
    from device.gate.front_end_stage import SegmenterStage
    s = SegmenterStage(load_config(None)).get()
    if s is None:
        pytest.skip("no hand segmentation model")
    return s


def test_bound_presentation_binds_and_a_moved_replica_does_not(seg):
    """One live presentation of the synthetic gate binds; the same scene with the views'
    hand moved 25 mm (a replica beside the live hand) does not."""
    from dataclasses import replace
    from device.synth.source import SyntheticPeople
    sensor = "xray"
    people = SyntheticPeople(seed=0, views=2, sensor=sensor)
    geom, ident = people._person(0)
    rng = np.random.default_rng(5)
    tex = people.synth.palms(ident, 1, rng)[0]
    shot = bound.render_bound(geom, tex, rng, people.rig, sensor)
    frame = np.clip(np.round(shot.sensor * 255), 0, 255).astype(np.uint8)
    reg = B.HomographyRegistration(people.registration(), (640, 480), (128, 128))

    def score(views):
        masks = {k: (seg(v), (640, 480)) for k, v in enumerate(views)}
        return B.binding_score(frame, masks,
                               lambda p, k, vs: reg.to_sensor(p, k, vs, (128, 128)), sensor)
    live = score(shot.views).score
    assert live <= B.MAX_DISTANCE[sensor]
    moved = replace(shot.pose, translation=(shot.pose.translation[0] + 25.0,
                                            shot.pose.translation[1]))
    views, _ = bound.render_views(geom, tex, np.random.default_rng(6), people.rig, moved)
    assert score(views).score > B.MAX_DISTANCE[sensor] > live


def test_binding_stage_denies_sensor_mismatch_and_without_a_segmenter():
    from device.config import load_config
    from device.gate.decision import Decision, Deny
    from device.sources.replay import Burst
    cfg = load_config(None, liveness={"sensor": "nir", "binding_max_distance": 0.05})

    class Cal:
        state, correction = "exempt", None
    views = [np.zeros((480, 640, 3), np.uint8)] * 3
    frame = np.zeros((128, 128), np.uint8)
    frame[30:100, 40:90] = 200
    stage = B.BindingStage(cfg, Cal(), lambda: None)
    with pytest.raises(Deny) as e:
        stage(Burst(views, frame, {}), Decision())
    assert e.value.reason == "binding_unavailable"
    empty = B.BindingStage(cfg, Cal(), lambda: (lambda v: np.zeros(v.shape[:2], np.uint8)))
    out = Decision()
    with pytest.raises(Deny) as e:
        empty(Burst(views, frame, {}), out)
    assert e.value.reason == "sensor_mismatch" and out.binding == float("inf")
    off = load_config(None, liveness={"binding": False})
    assert B.binding_stage(off, Cal(), None) is None
