"""tools.eval_blur_candidates: the capped variant of the motion-blur measure reads a still
palm whose strong creases run one way as less one-directional than the shipped measure, and
the tool writes per-view readings for the still and smeared views."""
import json
import math

import cv2
import numpy as np

from device.vision.motion_blur import gradient_isotropy
from tools.eval_blur_candidates import capped_isotropy, main
from tools.eval_motion_blur import motion_blur


def _creased(size=200, seed=0, angle=0.6, period=11, depth=70, skin=8):
    """Strong parallel dark creases over a weak isotropic skin texture."""
    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 1.0)
    y, x = np.mgrid[:size, :size].astype(np.float32)
    u = x * math.cos(angle) + y * math.sin(angle) + 3 * np.sin(y / 37.0)
    crease = np.exp(-0.5 * ((np.abs(u % period - period / 2) - period / 2) / 1.3) ** 2)
    return np.clip(170 + skin * t / t.std() - depth * crease, 0, 255).astype(np.uint8)


def test_capped_reads_one_directional_creases_as_less_smeared_and_smears_still_low():
    p = _creased()
    assert gradient_isotropy(p) < 0.25 < capped_isotropy(p, 0.25)
    for angle in (0.6 + math.pi / 2, 2.5):
        assert capped_isotropy(motion_blur(p, 8, angle), 0.25) < 0.25, angle
    assert capped_isotropy(np.full((64, 64), 90, np.uint8), 0.25) == 1.0


def test_tool_writes_still_and_smeared_readings(tmp_path):
    rng = np.random.default_rng(1)
    d = tmp_path / "000"
    d.mkdir()
    for i in range(2):
        t = cv2.GaussianBlur(rng.normal(0, 1, (128, 128)).astype(np.float32), (0, 0), 1.2)
        cv2.imwrite(str(d / f"1_{i:02d}.png"), np.clip(128 + 40 * t / t.std(), 0, 255)
                    .astype(np.uint8))
    assert main([str(tmp_path), "--kind", "tongji", "--out", str(tmp_path / "r.json")]) == 0
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert len(rows) == 2
    for r in rows:
        assert set(r) == {"view", "sharp", "4-10", "10-20"}
        assert r["sharp"]["f"] > 0.5 and r["10-20"]["f"] < r["sharp"]["f"]
