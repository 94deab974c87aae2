"""Visible multi-view hand renderer and the hand data-set writer (tools/synth)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from device.synth.hand_geometry import (HandPose, bone_lengths, hand_layout, perturb_pose,
                                       sample_hand_geometry)
from device.synth.hands import render_hand_views, sample_rig
from device.synth.sensor_sets import write_hands

SIZE = (480, 640)
BLUE = np.zeros((*SIZE, 3), np.uint8)
BLUE[..., 0] = 255                      # pure blue backdrop: skin is never blue-dominant


def texture(subject: int, sample: int, rng: np.random.Generator) -> np.ndarray:
    """A few dark curves on a light, slightly textured background (stand-in palm print)."""
    r = np.random.default_rng(1000 + subject)
    t = 0.72 + 0.04 * cv2.GaussianBlur(r.standard_normal((128, 128)).astype(np.float32),
                                       (0, 0), 2)
    lines = np.zeros((128, 128), np.float32)
    for _ in range(6):
        p = r.uniform(0, 128, (3, 2))
        s = np.linspace(0, 1, 40)[:, None]
        c = ((1 - s) ** 2 * p[0] + 2 * (1 - s) * s * p[1] + s ** 2 * p[2]).astype(np.int32)
        cv2.polylines(lines, [c], False, 1.0, int(r.integers(2, 4)), cv2.LINE_AA)
    t = t - 0.5 * cv2.GaussianBlur(lines, (0, 0), 0.8)
    t += 0.01 * rng.standard_normal((128, 128)).astype(np.float32)
    return np.clip(t, 0, 1).astype(np.float32)


def _is_skin(img: np.ndarray, p) -> bool:
    x, y = int(round(p[0])), int(round(p[1]))
    b, g, r = (int(v) for v in img[y, x])
    return r > b + 10


def _render(seed: int, hand: str, mode: str = "multi_camera", views: int = 3, **kw):
    geom = sample_hand_geometry(np.random.default_rng(seed), hand)
    return geom, render_hand_views(geom, texture(seed, 0, np.random.default_rng(seed)),
                                   np.random.default_rng(100 + seed), views=views, mode=mode,
                                   size=SIZE, **kw)


@pytest.mark.parametrize("hand", ["left", "right"])
@pytest.mark.parametrize("mode", ["multi_camera", "motion"])
def test_keypoints_land_on_the_hand(hand, mode):
    for seed in (1, 2):
        _, shots = _render(seed, hand, mode, background=BLUE)
        for img, meta in shots:
            assert img.shape == (*SIZE, 3) and img.dtype == np.uint8
            pc = np.array(meta["palm_centre"])
            assert meta["visible"]["palm_centre"]
            assert _is_skin(img, pc), "palm centre must be skin"
            for corner in meta["roi_corners"]:
                assert _is_skin(img, corner), "ROI corners lie on the palm"
            for name, v, vis in zip(meta["valley_names"], meta["valleys"],
                                    meta["visible"]["valleys"]):
                assert vis, name
                v = np.array(v)
                d = pc - v
                d /= np.linalg.norm(d)
                assert _is_skin(img, v + 8 * d), f"{name}: palm side of the valley is skin"
                ring = [v + 8 * np.array([np.cos(a), np.sin(a)])
                        for a in np.linspace(0, 2 * np.pi, 32, endpoint=False)]
                skin = np.array([_is_skin(img, p) for p in ring])
                assert 4 <= skin.sum() <= 29, f"{name}: a valley sits on the hand's edge"
                # the gap between the fingers opens away from the palm centre (the thumb web
                # opens sideways to it)
                gap = np.mean([p - v for p, sk in zip(ring, skin) if not sk], axis=0)
                gap /= np.linalg.norm(gap)
                assert np.dot(gap, d) < (0.4 if name == "thumb_index" else -0.3), name


def test_valley_order_and_handedness():
    for hand in ("left", "right"):
        _, shots = _render(3, hand, views=1, rig=sample_rig(np.random.default_rng(0), 1))
        meta = shots[0][1]
        im, mr, rl, ti = (np.array(v) for v in meta["valleys"])
        # the thumb-index valley is on the index side; thumb on image right for a right palm
        assert np.linalg.norm(ti - im) < np.linalg.norm(ti - rl)
        assert (ti[0] > rl[0]) == (hand == "right")
        assert (im[0] > rl[0]) == (hand == "right")


def test_texture_is_mapped_to_the_roi():
    geom = sample_hand_geometry(np.random.default_rng(4), "right")
    tex = texture(4, 0, np.random.default_rng(4))
    rig = sample_rig(np.random.default_rng(0), 1)             # one near-frontal camera
    img, meta = render_hand_views(geom, tex, np.random.default_rng(9), views=1, rig=rig,
                                  pose=HandPose())[0]
    dst = np.float32([[0, 0], [127, 0], [127, 127], [0, 127]])
    H = cv2.getPerspectiveTransform(np.float32(meta["roi_corners"]), dst)
    roi = cv2.warpPerspective(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32), H,
                              (128, 128))
    a = cv2.GaussianBlur(roi, (0, 0), 2) - cv2.GaussianBlur(roi, (0, 0), 8)
    b = cv2.GaussianBlur(tex, (0, 0), 2) - cv2.GaussianBlur(tex, (0, 0), 8)
    corr = float(np.corrcoef(a[8:-8, 8:-8].ravel(), b[8:-8, 8:-8].ravel())[0, 1])
    assert corr > 0.6, corr


def test_camera_metadata_reprojects_keypoints():
    geom, shots = _render(5, "left")
    layout = hand_layout(geom, None)
    for img, meta in shots:
        json.dumps(meta)                                        # JSON-serialisable
        K, R, t = (np.array(meta["camera"][k]) for k in ("K", "R", "t"))
        Rh, th = np.array(meta["hand_pose"]["R"]), np.array(meta["hand_pose"]["t"])
        hf = meta["hand_frame_mm"]
        # finger spread does not move the finger valleys: the neutral layout agrees
        assert np.allclose(hf["valleys"][0], layout.valleys["index_middle"], atol=1e-3)
        pts = np.array([*hf["valleys"], hf["palm_centre"], *hf["roi_corners"]])
        img_pts = np.array([*meta["valleys"], meta["palm_centre"], *meta["roi_corners"]])
        for p, q in zip(pts, img_pts):
            x = K @ (R @ (Rh @ np.array([*p, 0.0]) + th) + t)
            assert np.allclose(x[:2] / x[2], q, atol=0.02)


def test_views_differ():
    _, multi = _render(6, "right", "multi_camera", views=3)
    _, motion = _render(6, "right", "motion", views=3)
    for shots, min_diff in ((multi, 5.0), (motion, 1.0)):
        imgs = [s[0].astype(np.float32) for s in shots]
        cents = [np.array(s[1]["palm_centre"]) for s in shots]
        for i in range(len(imgs)):
            for j in range(i + 1, len(imgs)):
                assert np.abs(imgs[i] - imgs[j]).mean() > min_diff
                assert np.linalg.norm(cents[i] - cents[j]) > 2
    # multi-camera: K cameras; motion: one camera, moving hand
    assert len({json.dumps(s[1]["camera"]["R"]) for s in multi}) == 3
    assert len({json.dumps(s[1]["camera"]) for s in motion}) == 1
    assert len({json.dumps(s[1]["hand_pose"]) for s in motion}) == 3


def test_deterministic_for_a_seed():
    _, a = _render(7, "left")
    _, b = _render(7, "left")
    _, c = _render(8, "left")
    for (ia, ma), (ib, mb), (ic, _) in zip(a, b, c):
        assert np.array_equal(ia, ib) and ma == mb
        assert not np.array_equal(ia, ic)


def test_geometry_stable_per_identity_and_distinct_across():
    g1 = sample_hand_geometry(np.random.default_rng(11), "left")
    g1b = sample_hand_geometry(np.random.default_rng(11), "left")
    g2 = sample_hand_geometry(np.random.default_rng(12), "left")
    assert json.dumps(g1.to_dict()) == json.dumps(g1b.to_dict())
    assert json.dumps(g1.to_dict()) != json.dumps(g2.to_dict())
    rng = np.random.default_rng(0)
    base = bone_lengths(hand_layout(g1))
    for _ in range(3):                     # spread/rotation do not change bone lengths
        p = perturb_pose(rng)
        p = HandPose(spread=p.spread, rotation=p.rotation, translation=p.translation)
        lens = bone_lengths(hand_layout(g1, p))
        assert all(abs(lens[k] - base[k]) < 1e-6 for k in base)
    other = bone_lengths(hand_layout(g2))
    assert max(abs(other[k] - base[k]) for k in base) > 1.0


def test_write_hands_layout(tmp_path):
    kw = dict(subjects=2, sessions=2, samples=4, views=2, seed=3, palm_texture_fn=texture,
              size=(240, 320))
    calls = []

    def tex_fn(s, i, rng):
        calls.append((s, i))
        return texture(s, i, rng)

    info = write_hands(tmp_path / "a", **dict(kw, palm_texture_fn=tex_fn))
    assert info["images"] == 2 * 2 * 4
    assert sorted(calls) == sorted((s, i) for s in range(2) for i in (0, 2, 4, 6))
    files = sorted(p.relative_to(tmp_path / "a").as_posix()
                   for p in (tmp_path / "a").rglob("*.png"))
    assert files[:4] == ["0000/1_01.png", "0000/1_02.png", "0000/1_03.png", "0000/1_04.png"]
    metas = {f: json.loads((tmp_path / "a" / f).with_suffix(".json").read_text())
             for f in files}
    for f, m in metas.items():
        assert len(m["valleys"]) == 4 and len(m["roi_corners"]) == 4
        assert m["subject"] == int(f[:4])
    # same identity in both sessions, different ones across subjects
    assert metas["0000/1_01.png"]["palm_width_mm"] == metas["0000/2_01.png"]["palm_width_mm"]
    assert metas["0000/1_01.png"]["palm_width_mm"] != metas["0001/1_01.png"]["palm_width_mm"]
    # views of one presentation share the hand pose; sessions differ in pose
    assert metas["0000/1_01.png"]["hand_pose"] == metas["0000/1_02.png"]["hand_pose"]
    assert metas["0000/1_01.png"]["hand_pose"] != metas["0000/2_01.png"]["hand_pose"]
    assert metas["0000/1_01.png"]["camera"] != metas["0000/1_02.png"]["camera"]
    assert metas["0000/1_01.png"]["camera"] == metas["0001/2_03.png"]["camera"]  # fixed rig
    write_hands(tmp_path / "b", **kw)
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
