"""The gate's front end (device.vision.front_end): regions from landmarks, the fallback to the
classical path when no hand is seen, which issue is reported, and the gate's wiring (the
pipeline, a missing landmark file, palmgate evaluate --level hand)."""
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.models.model import DEFAULT_MODELS_DIR
from device.vision.front_end import FrontEnd, Getter, QualitySettings, regions_from_landmarks
from device.vision.landmarks import HandLandmarks, frame_crop
from device.vision.quality import QualityIssue
from device.vision.region_types import FIRST_SIZE, SECOND_SIZE

FIXTURE = Path(__file__).parent / "fixtures" / "hand_landmarks"
REF = json.loads((FIXTURE / "mediapipe.json").read_text())["images"]


def _upright():
    """The fixture hand at 640x480 and MediaPipe's landmarks on it."""
    im = cv2.resize(cv2.imread(str(FIXTURE / "hand_upright.jpg")), (640, 480),
                    interpolation=cv2.INTER_LINEAR)
    lm = np.array(REF["hand_upright.jpg"], np.float64)
    lm[:, :2] = (lm[:, :2] + 0.5) * 2 - 0.5
    lm[:, 2] *= 2
    return im, lm


class StubLandmarker:
    """Answers fixed landmarks (or no hand), counting its calls."""

    def __init__(self, lm=None, presence=0.99):
        self.lm, self.presence, self.calls = lm, presence, 0

    def detect(self, image, crops):
        self.calls += 1
        next(iter(crops))
        if self.lm is None:
            return None
        return HandLandmarks(self.lm, self.presence, 0.5, frame_crop(image.shape), 2)


def test_regions_from_landmarks_shapes_and_mask():
    im, lm = _upright()
    reg = regions_from_landmarks(im, lm, "visible", presence=0.98)
    assert reg.roi.shape == (FIRST_SIZE, FIRST_SIZE)
    assert reg.second_region.shape == (SECOND_SIZE, SECOND_SIZE)
    assert reg.segmentation == "landmarks" and reg.keypoints.hand == "right"
    m0 = (SECOND_SIZE - FIRST_SIZE) // 2
    assert not reg.second_mask[m0:m0 + FIRST_SIZE, m0:m0 + FIRST_SIZE].any()
    assert 0.05 < reg.second_mask.mean() < 0.6          # the palm around the first region
    first, rest = reg.image_masks()
    assert not (first & rest).any() and first.any() and rest.any()
    assert 0.9 < reg.quality <= 0.98
    # the palm-centre square is on the hand: skin, not the background
    assert reg.roi.std() > 3


def test_landmark_path_first_then_no_classical():
    im, lm = _upright()
    stub = StubLandmarker(lm)
    calls = []
    fe = FrontEnd(landmarker=stub, segmenter=lambda x: calls.append(1) or None)
    reg = fe(im)
    assert reg.segmentation == "landmarks" and stub.calls == 1 and not calls
    assert set(reg.timings_ms) == {"landmarks", "landmarks_cpu"}


def test_falls_back_to_classical_when_no_hand_is_seen():
    """A grey (NIR) frame where the landmarks see nothing: the classical NIR path finds the
    regions (landmarks first on grey frames only when configured so)."""
    from tests.test_regions import drawn_hand
    stub = StubLandmarker(None)
    reg = FrontEnd(landmarker=stub, check_quality=False, nir_landmarks_first=True)(
        drawn_hand(grey=True)[0])
    assert stub.calls == 1
    assert reg.segmentation == "classical" and reg.landmarks is None
    assert set(reg.timings_ms) == {"landmarks", "classical", "landmarks_cpu", "classical_cpu"}
    colour = drawn_hand()[0]
    reg = FrontEnd(landmarker=stub, check_quality=False)(colour)
    assert stub.calls == 2 and reg.segmentation == "classical"


def test_grey_frames_take_the_classical_path_first():
    """PolyU-like pegged NIR frames: the classical NIR path first, so a palm never mixes the
    two paths' regions where the classical one works; the landmarks where it fails."""
    from tests.test_regions import drawn_hand
    _, lm = _upright()
    stub = StubLandmarker(lm)
    reg = FrontEnd(landmarker=stub, check_quality=False)(drawn_hand(grey=True)[0])
    assert reg.segmentation == "classical" and stub.calls == 0
    grey, lm = _upright()
    grey = cv2.cvtColor(grey, cv2.COLOR_BGR2GRAY)
    reg = FrontEnd(landmarker=StubLandmarker(lm), check_quality=False)(grey)
    assert reg.segmentation == "landmarks" and reg.modality == "nir"
    assert list(reg.timings_ms)[::2] == ["classical", "landmarks"]


def test_the_landmark_issue_wins_when_both_paths_fail():
    im, lm = _upright()
    far = lm.copy()
    far[:, :2] = (lm[:, :2] - 320) * 0.3 + 320                # a small hand: too far
    flat = np.full((480, 640, 3), 128, np.uint8)
    with pytest.raises(QualityIssue) as e:
        FrontEnd(landmarker=StubLandmarker(far))(flat)
    assert e.value.reason == "hand_too_small" and e.value.prompt == "move your hand closer"
    assert "classical" in e.value.timings_ms
    with pytest.raises(QualityIssue) as e:                    # no hand anywhere
        FrontEnd(landmarker=StubLandmarker(None))(flat)
    assert e.value.reason == "no_hand"


def test_cut_off_palm():
    im, lm = _upright()
    moved = lm.copy()
    moved[:, 1] += 300                                        # the palm below the frame
    with pytest.raises(QualityIssue) as e:
        FrontEnd(landmarker=StubLandmarker(moved))(np.full((480, 640, 3), 128, np.uint8))
    assert e.value.reason == "hand_cut_off"


def test_getter_and_bad_input():
    im, lm = _upright()
    got = []
    fe = FrontEnd(landmarker=Getter(lambda: got.append(1) or StubLandmarker(lm)))
    assert fe(im).segmentation == "landmarks" and got
    with pytest.raises(QualityIssue) as e:
        fe(np.zeros((8, 8), np.uint8))
    assert e.value.reason == "bad_input"
    assert FrontEnd(quality=QualitySettings(min_palm_px=1e6), landmarker=StubLandmarker(lm),
                    check_quality=False)(im).segmentation == "landmarks"


needs_models = pytest.mark.skipif(not (DEFAULT_MODELS_DIR / "hand_landmark.onnx").exists(),
                                  reason="hand landmark models not present")


@needs_models
def test_pipeline_uses_the_front_end_and_falls_back_without_the_landmark_file(tmp_path):
    from device.gate.pipeline import Pipeline
    from tests.conftest import gate_config
    im, _ = _upright()
    d = tmp_path / "models"
    d.mkdir()
    man = json.loads((DEFAULT_MODELS_DIR / "manifest.json").read_text())
    for name in man["models"]:
        if (DEFAULT_MODELS_DIR / name).exists() and not name.startswith("hand_landmark"):
            (d / name).symlink_to(DEFAULT_MODELS_DIR / name)
    (d / "manifest.json").write_text(json.dumps(man))
    shutil.copy(DEFAULT_MODELS_DIR / "manifest.sig", d / "manifest.sig")  # same content: signed
    cfg = gate_config(tmp_path, models=d, liveness={"enabled": False})
    p = Pipeline(cfg)
    try:
        seg, sub = {}, {}
        p.regions([im, im], segmentation=seg, substages=sub)
        assert p.landmarker.error and "not found" in p.landmarker.error
        assert "landmarks" not in seg
        shutil.copy(DEFAULT_MODELS_DIR / "hand_landmark.onnx", d / "hand_landmark.onnx")
        p.landmarker._tried -= p.landmarker.RETRY_S
        seg, sub = {}, {}
        rois, issues = p.regions([im, im], segmentation=seg, substages=sub)
        assert seg == {"landmarks": 2} and len(rois) == 2 and not issues
        assert sub["landmarks"] > 0
    finally:
        p.close()


def test_landmarks_off_is_configuration(tmp_path):
    from device.config import ConfigError
    from device.gate.pipeline import Pipeline
    from tests.conftest import gate_config
    p = Pipeline(gate_config(tmp_path, gate={"landmarks": "off"}, liveness={"enabled": False}))
    try:
        assert p.landmarker is None and p.front_end.landmarker is None
    finally:
        p.close()
    with pytest.raises(ConfigError, match="gate.landmarks"):
        gate_config(tmp_path, gate={"landmarks": "huge"})


@needs_models
def test_evaluate_hand_level_runs_the_gates_front_end(tmp_path):
    """palmgate evaluate --level hand: the front end's paths and FTA by reason."""
    from device.eval.recognition import evaluate
    root = tmp_path / "set"
    im, _ = _upright()
    for s in ("a", "b"):
        for k in (1, 2):
            (root / s).mkdir(parents=True, exist_ok=True)
            shift = np.float32([[1, 0, 6 * k], [0, 1, -4 * k]])
            cv2.imwrite(str(root / s / f"{k}_01.png"),
                        cv2.warpAffine(im if s == "a" else cv2.flip(im, 1), shift, (640, 480),
                                       borderMode=cv2.BORDER_REFLECT))
    cv2.imwrite(str(root / "a" / "1_02.png"), np.full((480, 640, 3), 128, np.uint8))
    rep = evaluate(root, level="hand", matcher="bocv", precision="int8")
    assert rep["landmarks"] == "full" and rep["segmenter"] == "net"
    assert rep["views_by_path"].get("landmarks") == 4
    assert rep["fta_reasons"] == {"no_hand": 1} and rep["n_images"] == 5


def _image_check_fails_once(monkeypatch, reason="too_bright"):
    """The palm region's image check (exposure) refuses the first region it sees (the
    landmark path's) and passes the next (the classical path's); no motion-blur check."""
    import device.vision.front_end as F
    seen = []

    def check(roi, q):
        seen.append(1)
        if len(seen) == 1:
            raise QualityIssue(reason, "the landmark path's palm region")
    monkeypatch.setattr(F, "region_image_check", check)
    monkeypatch.setattr(F, "motion_blur_check", lambda grey, corners, q: 1.0)
    return seen


def test_landmarks_kept_when_only_the_palm_regions_image_fails(monkeypatch):
    """The landmark network found and checked the hand, but the palm region it gave failed an
    image check (exposure, motion blur) and the classical path gave the view's regions: the
    regions are the classical ones (``landmarks`` None, as before) and carry the landmarks
    found (``found_landmarks``), which the binding places the hand with
    (:func:`~device.vision.front_end.hand_landmarks`; 8017's person 27, two of three views
    lost this way, docs/results.md "The X-ray binding's live-hand denials on 8017")."""
    from device.vision.front_end import hand_landmarks
    from tests.test_regions import drawn_hand
    _, lm = _upright()
    seen = _image_check_fails_once(monkeypatch)
    reg = FrontEnd(landmarker=StubLandmarker(lm), keep_found_landmarks=True)(drawn_hand()[0])
    assert len(seen) == 2 and reg.segmentation == "classical" and reg.landmarks is None
    np.testing.assert_allclose(reg.found_landmarks, lm)
    np.testing.assert_allclose(hand_landmarks(reg), lm)
    _image_check_fails_once(monkeypatch)                       # not asked for: as before
    reg = FrontEnd(landmarker=StubLandmarker(lm))(drawn_hand()[0])
    assert reg.segmentation == "classical" and reg.found_landmarks is None


def test_landmarks_not_kept_when_they_fail_their_own_check(monkeypatch):
    """Landmarks refused by their own check (a hand too far, not open, cut off) are not kept:
    only an image check of the palm region lets the classical regions carry them."""
    from device.vision.front_end import hand_landmarks
    from tests.test_regions import drawn_hand
    _, lm = _upright()
    far = lm.copy()
    far[:, :2] = (lm[:, :2] - 320) * 0.3 + 320                # too far: landmark_check
    import device.vision.front_end as F
    monkeypatch.setattr(F, "region_image_check", lambda roi, q: None)
    monkeypatch.setattr(F, "motion_blur_check", lambda grey, corners, q: 1.0)
    reg = FrontEnd(landmarker=StubLandmarker(far), keep_found_landmarks=True)(drawn_hand()[0])
    assert reg.segmentation == "classical" and reg.found_landmarks is None
    assert hand_landmarks(reg) is None
    monkeypatch.undo()
    reg = FrontEnd(landmarker=StubLandmarker(lm), keep_found_landmarks=True)(_upright()[0])
    assert reg.found_landmarks is None and hand_landmarks(reg) is reg.landmarks


def test_pipeline_hands_the_found_landmarks_to_the_binding(monkeypatch):
    """The gate's front end keeps the found landmarks for the binding of both sensors
    (:data:`device.gate.front_end_stage.FOUND_LANDMARKS`: X-ray since xbind, NIR since nmm17),
    and Pipeline.regions puts them in the binding's ``landmarks``."""
    from types import SimpleNamespace

    from device.config import load_config
    from device.gate.front_end_stage import gate_front_end
    from device.gate.pipeline import Pipeline
    from tests.test_regions import drawn_hand
    assert gate_front_end(load_config(None, liveness={"sensor": "xray"})).keep_found_landmarks
    assert gate_front_end(load_config(None, liveness={"sensor": "nir"})).keep_found_landmarks
    _, lm = _upright()
    _image_check_fails_once(monkeypatch)
    fe = FrontEnd(landmarker=StubLandmarker(lm), keep_found_landmarks=True)
    me = SimpleNamespace(pool=SimpleNamespace(map=lambda f, xs: [f(x) for x in xs]))
    me._one_region = lambda img: Pipeline._one_region(SimpleNamespace(front_end=fe), img)
    got = {}
    rois, issues = Pipeline.regions(me, [drawn_hand()[0]], landmarks=got)
    assert len(rois) == 1 and not issues
    np.testing.assert_allclose(got[0], lm[:, :2])
