"""Transmission-sensor renderer (device/synth/sensor.py): X-ray skeleton/joint and NIR images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from device.synth import sensor as S
from device.synth.attacks import render_class_pair
from device.synth.hand_geometry import HandPose, sample_hand_geometry


def _geom(i: int, hand: str = "right"):
    return sample_hand_geometry(np.random.default_rng([42, i]), hand)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / max(np.mean((a - b) ** 2), 1e-12)))


@pytest.mark.parametrize("sensor", ["xray", "nir"])
def test_shapes_and_range(sensor):
    render = S.render_xray if sensor == "xray" else S.render_nir
    g = _geom(0)
    cap = render(g, np.random.default_rng(1))
    assert cap.shape == S.CAPTURE_SIZE[sensor] and cap.dtype == np.float32
    hr = render(g, np.random.default_rng(1), scale=2)
    assert hr.shape == tuple(2 * v for v in S.CAPTURE_SIZE[sensor])
    small = render(g, np.random.default_rng(1), size=(64, 64), scale=3)
    assert small.shape == (192, 192)
    for im in (cap, hr, small):
        assert np.isfinite(im).all() and im.min() >= 0 and im.max() <= 1 and im.std() > 0.05


@pytest.mark.parametrize("sensor", ["xray", "nir"])
def test_sr_pair_consistency(sensor):
    for i in range(3):
        lr, hr = S.render_sensor_pair(_geom(i), np.random.default_rng(i), sensor)
        assert lr.shape == S.CAPTURE_SIZE[sensor]
        assert hr.shape == (2 * lr.shape[0], 2 * lr.shape[1])
        down = cv2.resize(hr, lr.shape[::-1], interpolation=cv2.INTER_AREA)
        assert _psnr(down, lr) > 25
        # same random state -> the capture render is exactly the pair's lr
        cap = (S.render_xray if sensor == "xray" else S.render_nir)(_geom(i),
                                                                     np.random.default_rng(i))
        assert np.array_equal(cap, lr)
    lr, hr = S.render_sensor_pair(_geom(0), np.random.default_rng(0), sensor, lr_size=(64, 48))
    assert lr.shape == (64, 48) and hr.shape == (128, 96)


def test_same_content_at_every_scale():
    g = _geom(3)
    a = S.render_xray(g, np.random.default_rng(5), scale=2)
    b = S.render_xray(g, np.random.default_rng(5), scale=4)
    b2 = cv2.resize(b, a.shape[::-1], interpolation=cv2.INTER_AREA)
    assert np.corrcoef(a.ravel(), b2.ravel())[0, 1] > 0.97


def test_attack_pairs_too():
    lr, hr = render_class_pair("simple_bones", _geom(1), np.random.default_rng(0), "xray")
    down = cv2.resize(hr, lr.shape[::-1], interpolation=cv2.INTER_AREA)
    assert _psnr(down, lr) > 25


def test_deterministic_for_a_seed():
    g = _geom(4)
    for render in (S.render_xray, S.render_nir):
        a = render(g, np.random.default_rng(9))
        b = render(g, np.random.default_rng(9))
        c = render(g, np.random.default_rng(10))
        assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_xray_bones_bright_joint_spaces_dark():
    """Radiograph convention: bone > soft tissue > air; joint spaces darker than the bone on
    either side; the joint soft tissue adds density around each joint."""
    g = _geom(5)
    rng = np.random.default_rng(0)
    base = (256, 256)
    scene = S.bona_fide_xray_scene(g, rng, base, pose=HandPose(), zoom=1.1)
    A = scene.paint(base)
    img = S.sensor_response(A, S.sample_exposure(rng, "xray"), rng, "xray", base[0])
    grid = scene.grid(base)
    bones = {b.name: b for b in scene.layout.bones}

    def at(im, p):
        x, y = np.round(grid.pts(p)).astype(int)
        return float(im[y - 1:y + 2, x - 1:x + 2].mean())

    for f, nb in (("index", "middle"), ("middle", "ring"), ("ring", "little")):
        mc, mn = bones[f"{f}_metacarpal"], bones[f"{nb}_metacarpal"]
        mid = mc.a + (mc.b - mc.a) * 0.6
        across = np.array([-(mc.b - mc.a)[1], (mc.b - mc.a)[0]]) / np.linalg.norm(mc.b - mc.a)
        edge = mid + across * mc.width * 0.42          # the cortex seen edge-on
        soft = (mid + mn.a + (mn.b - mn.a) * 0.6) / 2  # soft tissue between two metacarpals
        assert at(img, edge) > at(img, soft) + 0.1
        p1, p2 = bones[f"{f}_proximal"], bones[f"{f}_middle"]
        gap = (p1.b + p2.a) / 2                        # PIP joint space
        assert at(A, gap) < at(A, p1.b - (p1.b - p1.a) * 0.08) - 0.05
        assert at(A, gap) < at(A, p2.a + (p2.b - p2.a) * 0.08) - 0.05
    assert at(img, np.array([0.0, 0.0])) > float(np.percentile(img, 5)) + 0.1   # palm vs air
    jt = S.joint_tissue(list(scene.layout.joints), grid)
    assert (jt > 0).sum() > 200 and jt.max() > 3


def test_nir_veins_dark_on_palm():
    g = _geom(6)
    rng = np.random.default_rng(0)
    base = (256, 256)
    scene = S.bona_fide_nir_scene(g, rng, base, pose=HandPose(), zoom=1.0)
    rad = scene.paint(base)
    grid = scene.grid(base)
    veins = S.nir_vein_map(scene.layout, grid)
    mask = S.hand_mask(scene.layout, grid) > 0.99
    on = mask & (veins > 0.5 * veins.max())
    off = mask & (veins < 0.01)
    assert on.sum() > 100 and off.sum() > 1000
    assert rad[on].mean() < rad[off].mean() - 0.05


def test_identity_geometry_drives_the_image():
    """Two captures of one identity (same pose, different exposure/noise/texture) agree more
    than captures of two identities -- the per-identity skeleton and veins are stable."""
    base = (256, 256)
    for sensor, scene_fn in (("xray", S.bona_fide_xray_scene), ("nir", S.bona_fide_nir_scene)):
        imgs = {}
        for ident in (7, 8):
            for shot in (0, 1):
                rng = np.random.default_rng([ident, shot])
                sc = scene_fn(_geom(ident), rng, base, pose=HandPose(), zoom=1.1)
                im = S.sensor_response(sc.paint(base), S.sample_exposure(rng, sensor), rng,
                                       sensor, base[0])
                imgs[ident, shot] = cv2.GaussianBlur(im, (0, 0), 1.0).ravel()
        rank = lambda v: np.argsort(np.argsort(v)).astype(np.float64)  # noqa: E731
        same = np.corrcoef(rank(imgs[7, 0]), rank(imgs[7, 1]))[0, 1]
        other = np.corrcoef(rank(imgs[7, 0]), rank(imgs[8, 1]))[0, 1]
        assert same > other + 0.05, (sensor, same, other)
