"""The quality gate for real conditions (device.vision.hand_quality): each check on landmarks
shaped from the fixture hand's MediaPipe landmarks, each issue with a prompt the person can act
on; the front end's configuration defaults equal device.config's."""
import json
from pathlib import Path

import numpy as np
import pytest

from device.vision.front_end import QualitySettings
from device.vision.hand_quality import (cut_off_reason, finger_openness, foreshortening,
                                        landmark_check, region_image_check)
from device.vision.palm_from_landmarks import palm_frame
from device.vision.quality import PROMPTS, QualityIssue

FIXTURE = Path(__file__).parent / "fixtures" / "hand_landmarks"
# the fixture's 320x240 hand, as a 640x480 camera would see it
LM = np.array(json.loads((FIXTURE / "mediapipe.json").read_text())
              ["images"]["hand_upright.jpg"], np.float64) * 2
SHAPE = (480, 640)
SIDE = 0.94
Q = QualitySettings()


def _reason(lm, shape=SHAPE, q=Q):
    try:
        landmark_check(lm, shape, SIDE, q)
    except QualityIssue as e:
        assert e.reason in PROMPTS and e.prompt == PROMPTS[e.reason]
        return e.reason
    return None


def _scaled(lm, s, centre=(320, 240)):
    out = lm.copy()
    out[:, :2] = (lm[:, :2] - centre) * s + centre
    return out


def test_an_open_flat_hand_passes():
    assert _reason(LM) is None
    assert (finger_openness(LM) > 1.5).all()
    assert 0.55 < foreshortening(LM) < 0.95


def test_too_far_and_too_near():
    assert _reason(_scaled(LM, 0.4)) == "hand_too_small"
    assert PROMPTS["hand_too_small"] == "move your hand closer"
    assert _reason(_scaled(LM, 3.2)) == "too_near"
    assert "further away" in PROMPTS["too_near"]


def test_curled_fingers_are_not_open():
    lm = LM.copy()
    for mcp, tip in ((9, 12), (13, 16), (17, 20)):        # middle, ring, little curled
        lm[tip, :2] = lm[0, :2] + 0.9 * (lm[mcp, :2] - lm[0, :2])
    assert _reason(lm) == "not_open"
    assert "open your hand" in PROMPTS["not_open"]
    one = LM.copy()
    one[20, :2] = one[0, :2] + 0.9 * (one[17, :2] - one[0, :2])
    assert _reason(one) is None                              # one bent finger is fine


def test_a_turned_or_tipped_palm_is_not_flat():
    lm = _scaled(LM, 1.6)
    f = palm_frame(lm)
    turned = lm.copy()                                       # rolled: the palm narrows
    d = turned[:, :2] - f.origin
    turned[:, :2] = f.origin + np.outer(d @ f.u, f.u) * 0.45 + np.outer(d @ f.n, f.n)
    assert _reason(turned) == "not_flat"
    tipped = lm.copy()                                       # pitched: the palm shortens
    tipped[:, :2] = f.origin + np.outer(d @ f.u, f.u) + np.outer(d @ f.n, f.n) * 0.4
    assert _reason(tipped) == "not_flat"
    assert "flat" in PROMPTS["not_flat"]


def test_region_exposure_and_blur():
    rng = np.random.default_rng(0)
    sharp = rng.integers(60, 200, (128, 128)).astype(np.uint8)
    region_image_check(sharp, Q)
    with pytest.raises(QualityIssue) as e:
        region_image_check(np.full((128, 128), 255, np.uint8), Q)
    assert e.value.reason == "too_bright"
    with pytest.raises(QualityIssue) as e:
        region_image_check(np.full((128, 128), 8, np.uint8), Q)
    assert e.value.reason == "too_dark" and "light" in e.value.prompt
    with pytest.raises(QualityIssue) as e:
        region_image_check(np.full((128, 128), 120, np.uint8), Q)
    assert e.value.reason == "blurred" and e.value.prompt == "hold your palm still"


def test_cut_off_reason():
    assert cut_off_reason(0.2, Q) == "hand_cut_off"
    assert cut_off_reason(0.69, Q) == "too_near"
    assert "centre" in PROMPTS["hand_cut_off"]


def test_every_front_end_reason_has_its_own_prompt():
    for r in ("hand_too_small", "too_near", "not_open", "not_flat", "hand_cut_off",
              "too_bright", "too_dark", "blurred", "motion_blur", "no_hand",
              "too_few_valleys"):
        assert r in PROMPTS, r
    assert QualityIssue("not_open").prompt != QualityIssue("unknown").prompt


def test_front_end_defaults_are_the_configuration_defaults():
    from device.config import load_config
    q = load_config(None).quality
    for k, v in vars(QualitySettings()).items():
        assert q[k] == v, k
