"""The motion-blur check (device.vision.motion_blur): the isotropy of the palm centre's fine
detail tells one-directional smear from isotropic softness; wired into the front end with its
own reason and prompt."""
import math

import cv2
import numpy as np
import pytest

from device.vision.motion_blur import (gradient_isotropy, motion_blur_check,
                                       motion_blur_measure, palm_patch)
from device.vision.quality import PROMPTS, QualityIssue
from tools.eval_motion_blur import motion_blur, motion_kernel


class Q:
    min_gradient_isotropy = 0.25


def _texture(size=200, seed=0):
    """Isotropic grey texture (band-limited noise) around 128."""
    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 1.2)
    return np.clip(128 + 40 * t / t.std(), 0, 255).astype(np.uint8)


def _corners(x0, y0, side):
    return np.array([[x0, y0], [x0 + side, y0], [x0 + side, y0 + side], [x0, y0 + side]],
                    np.float64)


def test_kernel_is_a_normalised_line():
    k = motion_kernel(8, 0.0)
    assert k.sum() == pytest.approx(1.0, abs=1e-5)
    rows = np.nonzero(k.sum(1) > 1e-6)[0]
    assert len(rows) <= 2                       # horizontal: one row (two with splats)
    assert (k.sum(0) > 1e-6).sum() >= 8


def test_sharp_and_isotropically_soft_pass_motion_blur_fails():
    t = _texture()
    assert gradient_isotropy(t) > 0.7
    soft = cv2.GaussianBlur(t, (0, 0), 1.5)         # out of focus: soft in every direction
    assert gradient_isotropy(soft) > 0.5
    for angle in (0.0, 0.7, math.pi / 2, 2.5):
        assert gradient_isotropy(motion_blur(t, 8, angle)) < 0.25, angle


def test_flat_or_tiny_patches_are_not_measured():
    assert gradient_isotropy(np.full((64, 64), 90, np.uint8)) == 1.0
    assert gradient_isotropy(_texture(10)) == 1.0


def test_palm_patch_is_the_square_inside_the_region_and_bounded():
    g = np.zeros((480, 640), np.uint8)
    p = palm_patch(g, _corners(100, 100, 200))
    side = 200 / math.sqrt(2)
    assert abs(p.shape[0] - side) <= 2 and abs(p.shape[1] - side) <= 2
    big = palm_patch(np.zeros((2000, 2000), np.uint8), _corners(100, 100, 1500))
    assert max(big.shape) == 256
    cut = palm_patch(g, _corners(500, 300, 300))       # partly outside: clipped, no error
    assert cut.shape[0] <= 480 and cut.shape[1] <= 640


def test_rotation_of_the_region_does_not_matter():
    t = _texture(300)
    c = _corners(50, 50, 200)
    rot = np.array([[150, 10], [290, 150], [150, 290], [10, 150]], np.float64)  # 45 degrees
    assert abs(motion_blur_measure(t, c) - motion_blur_measure(t, rot)) < 0.15


def test_check_raises_its_own_reason_and_prompt():
    t = _texture(300)
    c = _corners(50, 50, 200)
    assert motion_blur_check(t, c, Q) > 0.25
    with pytest.raises(QualityIssue) as e:
        motion_blur_check(motion_blur(t, 10, 1.0), c, Q)
    assert e.value.reason == "motion_blur" and e.value.prompt == "hold your hand still"
    assert PROMPTS["motion_blur"] != PROMPTS["blurred"]

    class Off:
        min_gradient_isotropy = 0.0
    assert motion_blur_check(motion_blur(t, 10, 1.0), c, Off) == 1.0


def test_front_end_refuses_a_motion_blurred_view():
    from tests.test_front_end import StubLandmarker, _upright
    from device.vision.front_end import FrontEnd
    im, lm = _upright()
    fe = FrontEnd(landmarker=StubLandmarker(lm), segmenter=None)
    assert fe(im).segmentation == "landmarks"
    with pytest.raises(QualityIssue) as e:
        fe(motion_blur(im, 12, 0.3))
    assert e.value.reason == "motion_blur"


def test_eval_motion_blur_on_roi_views(tmp_path, capsys):
    from tools.eval_motion_blur import main
    for s in range(2):
        d = tmp_path / f"{s:03d}"
        d.mkdir()
        for i in range(3):
            cv2.imwrite(str(d / f"1_{i:02d}.png"), _texture(128, seed=10 * s + i))
    assert main([str(tmp_path), "--kind", "tongji", "--bins", "8-12",
                 "--out", str(tmp_path / "r.json")]) == 0
    import json
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["views"] == 6 and rep["sharp"]["refused"] == 0
    assert rep["8-12"]["motion_blur"] >= 0.8
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--kind", "tongji", "--bins", "12-8"])
