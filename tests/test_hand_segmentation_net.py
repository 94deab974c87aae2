"""The gate's fast palm-region path: the shipped hand segmentation network
(models/hand_seg[_int8].onnx, device.vision.segmentation.NetSegmenter), its place in
device.vision.regions.extract_regions (first hypothesis on colour views, classical fallback), the
pipeline's fallback when the model is missing, and the training code's pieces."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from device.vision.segmentation import NetSegmenter
from device.models.model import ModelError
from device.vision.regions import extract_regions

from tests.conftest import SHIPPED


def _shipped() -> bool:
    man = json.loads((SHIPPED / "manifest.json").read_text())["models"]
    return all(n in man and (SHIPPED / n).exists() for n in ("hand_seg.onnx",
                                                             "hand_seg_int8.onnx"))


needs_model = pytest.mark.skipif(not _shipped(), reason="hand_seg models not shipped")


@pytest.fixture(scope="module")
def gate_views():
    """Three fixed synthetic gate views (seed 9001, never a training seed) with their exact
    hand coverage."""
    from device.synth.hand_geometry import perturb_pose, sample_hand_geometry
    from device.synth.hands import render_hand_views, sample_rig
    from device.synth.palms import skin_texture
    rng = np.random.default_rng(9001)
    geom = sample_hand_geometry(rng, "right", veins=False)
    tex = np.clip(0.5 + 0.1 * skin_texture(3), 0, 1)
    alphas: list = []
    shots = render_hand_views(geom, tex, rng, views=3, rig=sample_rig(rng, 3),
                              pose=perturb_pose(rng, 0.5), alpha_out=alphas)
    return [s[0] for s in shots], alphas


def _iou(a, b) -> float:
    a, b = a > 0, b > 0.5
    return float((a & b).sum() / max(1, (a | b).sum()))


@needs_model
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_net_mask_matches_ground_truth(gate_views, precision):
    seg = NetSegmenter(precision)
    for img, alpha in zip(*gate_views):
        m = seg(img)
        assert m.shape == img.shape[:2] and m.dtype == np.uint8
        assert _iou(m, alpha) > 0.9


@needs_model
def test_net_first_then_classical(gate_views):
    seg = NetSegmenter("int8")
    img = gate_views[0][1]
    reg = extract_regions(img, segmenter=seg)
    assert reg.segmentation == "net"
    # a segmenter that sees nothing: the classical hypotheses still find the hand
    reg2 = extract_regions(img, segmenter=lambda im: np.zeros(im.shape[:2], np.uint8))
    assert reg2.segmentation == "classical"
    # the two paths agree on where the palm is (ROI centres within a few pixels)
    c1, c2 = reg.roi_corners.mean(0), reg2.roi_corners.mean(0)
    assert np.hypot(*(c1 - c2)) < 0.1 * np.hypot(*(reg2.roi_corners[0] - reg2.roi_corners[1]))


def test_grey_frames_never_use_the_net(gate_views):
    import cv2
    grey = cv2.cvtColor(gate_views[0][0], cv2.COLOR_BGR2GRAY)

    def boom(_):
        raise AssertionError("segmenter called on a grey frame")
    try:
        extract_regions(grey, segmenter=boom)
    except Exception as e:          # noqa: BLE001 - only the segmenter must not be called
        assert not isinstance(e, AssertionError)


def test_missing_or_tampered_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        NetSegmenter("int8", tmp_path)
    with pytest.raises(ValueError, match="precision"):
        NetSegmenter("int4")


@needs_model
def test_pipeline_falls_back_without_the_model(tmp_path, gate_views):
    from device.gate.pipeline import Pipeline
    from tests.conftest import gate_config
    d = tmp_path / "models"
    d.mkdir()
    man = json.loads((SHIPPED / "manifest.json").read_text())
    for name in man["models"]:
        if (SHIPPED / name).exists() and not name.startswith("hand_seg"):
            (d / name).symlink_to(SHIPPED / name)
    (d / "manifest.json").write_text(json.dumps(man))
    shutil.copy(SHIPPED / "manifest.sig", d / "manifest.sig")   # same content, still signed
    # the landmarks off: the segmentation network is the fallback path's, not asked when the
    # landmarks find the hand
    cfg = gate_config(tmp_path, models=d, liveness={"enabled": False},
                      gate={"landmarks": "off"})
    p = Pipeline(cfg)
    try:
        rois, issues = p.regions(gate_views[0])
        assert p.segmenter.error and "not found" in p.segmenter.error
        assert len(rois) + len(issues) == 3 and rois
        # the good file comes back: the stage loads it on its next try
        shutil.copy(SHIPPED / "hand_seg.onnx", d / "hand_seg.onnx")
        shutil.copy(SHIPPED / "hand_seg_int8.onnx", d / "hand_seg_int8.onnx")
        p.segmenter._tried -= p.segmenter.RETRY_S
        assert p.segmenter.get() is not None and p.segmenter.error is None
    finally:
        p.close()


def test_training_pieces_run_end_to_end(tmp_path):
    """Two training steps on four rendered views, export and int8 quantisation: the ONNX
    files load and give logits of the documented shape (not an accuracy check)."""
    pytest.importorskip("torch")
    import onnxruntime as ort

    from tools.train import handseg
    from tools.train.sensor_quant import quantize_int8
    X, Y = handseg.render_set(4, seed=123)
    assert X.shape == (4, 240, 320, 3) and Y.shape == (4, 120, 160)
    assert 0.05 < Y.mean() < 0.8
    xa, ya = handseg.augment(X[0], Y[0], np.random.default_rng(0))
    assert xa.shape == X[0].shape and ya.shape == Y[0].shape
    model = handseg.train(X, Y, steps=2, batch=2, log=lambda *_: None)
    f = tmp_path / "seg.onnx"
    handseg.export(model, f)
    q = tmp_path / "seg_int8.onnx"
    quantize_int8(f, q, [X[0].transpose(2, 0, 1)[None].astype(np.float32)], "image",
                  exclude_ops=())
    for p in (f, q):
        s = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
        out = s.run(None, {"image": np.zeros((1, 3, 96, 128), np.float32)})[0]
        assert out.shape == (1, 1, 48, 64)


@needs_model
def test_evaluate_hand_level_with_the_network(tmp_path):
    """`palmgate evaluate DIR --level hand --segmenter net --precision int8`: the network's
    regions feed the default matcher (hybrid: its learned net at int8 too)."""
    import subprocess
    import sys

    from device.eval.recognition import evaluate
    d = tmp_path / "hands"
    subprocess.run([sys.executable, "-m", "tools.synth", "hands", "--out", str(d), "--seed",
                    "77", "--subjects", "3", "--sessions", "2", "--samples", "1", "--views",
                    "1", "--threads", "1"], check=True, capture_output=True)
    rep = evaluate(d, level="hand", segmenter="net", precision="int8", out=tmp_path / "o")
    assert rep["segmenter"] == "net" and rep["matcher"] == "hybrid"
    assert rep["precision"] == "int8"
    assert rep["fta"] == 0 and rep["n_genuine"] == 3
    with pytest.raises(ValueError, match="segmenter"):
        evaluate(d, level="hand", segmenter="grabcut", out=tmp_path / "o2")


def test_segmenter_is_configuration(tmp_path):
    from device.config import ConfigError
    from device.gate.pipeline import Pipeline
    from tests.conftest import gate_config
    p = Pipeline(gate_config(tmp_path, gate={"segmenter": "classical"},
                             liveness={"enabled": False}))
    try:
        assert p.segmenter is None
    finally:
        p.close()
    with pytest.raises(ConfigError, match="gate.segmenter"):
        gate_config(tmp_path, gate={"segmenter": "grabcut"})
