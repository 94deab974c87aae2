"""The committed hand-landmark models (models/hand_landmark*.onnx) on the fixture: one
synthetic hand (device.synth, seed 9001) upright and turned 90 degrees, with MediaPipe's own
landmarks beside it (``python -m tools.convert_landmarks --fixture tests/fixtures/
hand_landmarks``). The gate's detection (whole-frame first crops, refined on its own crops)
must find the hand in both and land near MediaPipe's landmarks; a frame without a hand gives
none."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.models.model import DEFAULT_MODELS_DIR, ModelError
from device.vision.landmarks import LANDMARK_FILES, Landmarker, crop_from_landmarks
from device.vision.front_end import FrontEnd

FIXTURE = Path(__file__).parent / "fixtures" / "hand_landmarks"
REF = json.loads((FIXTURE / "mediapipe.json").read_text())

needs_models = pytest.mark.skipif(
    not all((DEFAULT_MODELS_DIR / f).exists() for f in LANDMARK_FILES.values()),
    reason="hand landmark models not present")


def _err_px224(points, ref):
    """Median landmark distance in pixels of MediaPipe's 224 crop."""
    ref = np.asarray(ref)
    k = 224.0 / crop_from_landmarks(ref).side
    return float(np.median(np.hypot(*(points[:, :2] - ref[:, :2]).T)) * k)


@needs_models
@pytest.mark.parametrize("model,precision", sorted(LANDMARK_FILES))
def test_model_finds_the_fixture_hand_near_mediapipe(model, precision):
    lmk = Landmarker(model, precision, threads=1)
    fe = FrontEnd(landmarker=lmk)
    for name, ref in REF["images"].items():
        im = cv2.imread(str(FIXTURE / name))
        hand = lmk.detect(im, fe.first_crops(im, False, {}))
        assert hand is not None, name
        assert hand.presence > 0.9
        assert _err_px224(hand.points, ref) < 6.0, name
        # on MediaPipe's own crop, one pass
        one = lmk.run_crop(im, crop_from_landmarks(np.asarray(ref)))
        assert _err_px224(one.points, ref) < 4.0, name


@needs_models
def test_no_hand_no_landmarks():
    lmk = Landmarker("full", "int8", threads=1)
    rng = np.random.default_rng(1)
    flat = cv2.GaussianBlur(rng.integers(60, 200, (240, 320, 3), np.uint8), (0, 0), 6)
    assert lmk.detect(flat, FrontEnd(landmarker=lmk).first_crops(flat, False, {})) is None


@needs_models
def test_grey_frames_run_too():
    """NIR views are grey: the network gets the grey level on all three channels."""
    lmk = Landmarker("lite", "int8", threads=1)
    im = cv2.cvtColor(cv2.imread(str(FIXTURE / "hand_upright.jpg")), cv2.COLOR_BGR2GRAY)
    hand = lmk.detect(im, FrontEnd(landmarker=lmk).first_crops(im, True, {}))
    assert hand is not None
    assert _err_px224(hand.points, REF["images"]["hand_upright.jpg"]) < 8.0


def test_landmark_file_is_checked(tmp_path):
    (tmp_path / "manifest.json").write_text('{"models": {}}')
    with pytest.raises(ModelError, match="not found"):
        Landmarker("full", "int8", tmp_path)
    with pytest.raises(ValueError, match="full|lite"):
        Landmarker("huge", "int8")


@needs_models
def test_manifest_entries_name_licence_and_provenance():
    man = json.loads((DEFAULT_MODELS_DIR / "manifest.json").read_text())["models"]
    for f in LANDMARK_FILES.values():
        e = man[f]
        assert e["provenance"]["licence"] == "Apache-2.0"
        assert "mediapipe==0.10.21" in e["provenance"]["source"]
        assert len(e["provenance"]["source_sha256"]) == 64
        assert e["command"].startswith("python -m tools.convert_landmarks")
        assert e["bytes"] < 20e6
        assert "landmark_error_vs_mediapipe" in e["metrics"]
