"""Seed 001 super-resolution: claim-2 structure, the bicubic sub-pixel base, the stopping rule,
and the shipped models against bicubic on a small fixed held-out set (never trained on)."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from device.eval.liveness import bicubic_x2, psnr, sr_quality, ssim  # noqa: E402
from device.models.model import DEFAULT_MODELS_DIR, Model  # noqa: E402
from tools.train.sr_model import SRNet, bicubic_subpixel_kernel, train_sr  # noqa: E402


def test_three_stages_and_more_channels_in_mapping():
    m = SRNet(16, 32, 2)
    assert [n for n, _ in m.named_children()] == ["feature_extraction", "feature_mapping",
                                                  "reconstruction"]
    x = torch.rand(2, 1, 20, 24)
    f1, f2, y = m.stages(x)
    assert f2.shape[1] > f1.shape[1]                      # claim 2
    assert (f1 >= 0).all() and (f2 >= 0).all()            # ReLU stages
    assert y.shape == (2, 1, 40, 48)                      # x2
    with pytest.raises(ValueError):
        SRNet(32, 16)


def test_untrained_reconstruction_is_bicubic():
    m = SRNet()
    with torch.no_grad():
        m.reconstruction.conv.weight.zero_()
    x = np.random.default_rng(0).random((30, 34), np.float32)
    y = m(torch.from_numpy(x)[None, None])[0, 0].detach().numpy()
    ref = cv2.resize(x, (68, 60), interpolation=cv2.INTER_CUBIC)
    assert np.abs(y - ref).max() < 1e-5
    assert bicubic_subpixel_kernel().sum(axis=(1, 2, 3)) == pytest.approx([1, 1, 1, 1])


def test_loss_threshold_stops_after_one_iteration():
    rng = np.random.default_rng(0)
    lr = rng.integers(0, 255, (2, 16, 16), dtype=np.uint8)
    hr = rng.integers(0, 255, (2, 32, 32), dtype=np.uint8)
    _, hist = train_sr(lr, hr, max_iters=50, patch=8, batch=2, loss_threshold=1e9)
    assert hist[-1]["iter"] == 1 and hist[-1]["stopped"] == "loss_threshold"


def test_psnr_ssim_basics():
    a = np.random.default_rng(1).random((40, 40))
    assert ssim(a, a) == pytest.approx(1.0)
    assert psnr(a, a + 0.1) == pytest.approx(20.0)
    assert ssim(a, np.clip(a + 0.2 * np.random.default_rng(2).random((40, 40)), 0, 1)) < 1


@pytest.fixture(scope="module")
def xray_pairs(tmp_path_factory):
    from device.synth.sensor_sets import write_sr_pairs
    d = tmp_path_factory.mktemp("srx")
    write_sr_pairs(d, "xray", 6, seed=4343)
    return d


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_shipped_sr_beats_bicubic_on_fixed_heldout_pairs(xray_pairs, precision):
    name = "sr_xray.onnx" if precision == "fp32" else "sr_xray_int8.onnx"
    m = Model(name)
    rows = []
    for f in sorted((xray_pairs / "lr").glob("*.png")):
        lr = cv2.imread(str(f), 0).astype(np.float32) / 255
        hr = cv2.imread(str(xray_pairs / "hr" / f.name), 0).astype(np.float32) / 255
        sr = m(capture=lr[None, None])["sr"][0, 0]
        assert sr.shape == hr.shape and sr.min() >= 0 and sr.max() <= 1
        rows.append(sr_quality(lr, hr, sr))
    gain = np.mean([r["psnr_sr"] - r["psnr_bicubic"] for r in rows])
    assert gain > 1.0, rows
    assert np.mean([r["ssim_sr"] - r["ssim_bicubic"] for r in rows]) > 0


def test_shipped_sr_graph_and_manifest():
    import onnx
    man = json.loads((DEFAULT_MODELS_DIR / "manifest.json").read_text())["models"]
    for sensor in ("xray", "nir"):
        e = man[f"sr_{sensor}.onnx"]
        assert e["stages"]["F2"] > e["stages"]["F1"] and e["scale"] == 2
        g = onnx.load(str(DEFAULT_MODELS_DIR / f"sr_{sensor}.onnx")).graph
        ops = [n.op_type for n in g.node]
        assert "DepthToSpace" in ops and "ConvTranspose" not in ops
        e8 = man[f"sr_{sensor}_int8.onnx"]
        ops8 = e8["metrics"]["operators"]
        # feature extraction + mapping in int8; the reconstruction stage stays in float
        # (tools/train/sensor_quant.SR_FLOAT_NODES says why)
        assert ops8["int8"].get("QLinearConv") == 3 and ops8["float"].get("Conv") == 2
    gain = man["sr_nir.onnx"]["metrics"]["heldout_real_nir"]["psnr_gain_db"]
    assert gain >= 1.5 and man["sr_xray.onnx"]["metrics"]["heldout_synthetic"][
        "psnr_gain_db"] >= 1.5


def test_evaluate_sr_cli(xray_pairs, tmp_path):
    r = subprocess.run([sys.executable, "-m", "device.cli", "evaluate-sr", str(xray_pairs),
                        "--sensor", "xray", "--out", str(tmp_path)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["pairs"] == 6 and rep["psnr_gain_db"] > 1.0
    lr = cv2.imread(str(sorted((xray_pairs / "lr").glob("*.png"))[0]), 0) / 255.0
    assert bicubic_x2(lr).shape == (256, 256)
