"""The X-ray phantom check (device/models/phantom.py): the file names, the signed threshold,
the check required where the signed manifest lists it, and the shipped files on a few frames
of a seed no model saw (rendered as the training frames are, tools/train/phantom_data.py)."""
import json
import os

import numpy as np
import pytest
from conftest import SHIPPED, shipped_sensor_models_listed, sign_models

from device.models.model import ModelError, entry_threshold
from device.models.phantom import PhantomCheck, is_phantom, phantom_check, phantom_model_name

SHIPPED_PHANTOM = (SHIPPED / "phantom_xray_int8.onnx").exists() and \
    shipped_sensor_models_listed("xray", "int8")


def test_names_and_threshold():
    assert phantom_model_name("xray") == "phantom_xray.onnx"
    assert phantom_model_name("xray", "int8") == "phantom_xray_int8.onnx"
    assert phantom_model_name("nir", "int8") is None            # NIR has no phantom check
    with pytest.raises(ValueError):
        phantom_model_name("xray", "fp16")
    assert entry_threshold({"threshold": 0.6}, "f") == 0.6
    for bad in ({}, {"threshold": True}, {"threshold": 0.0}, {"threshold": 1.0},
                {"threshold": "0.5"}):
        with pytest.raises(ModelError):
            entry_threshold(bad, "f")
    assert list(is_phantom([0.5, 0.6, 0.7], 0.6)) == [False, False, True]   # strictly above
    with pytest.raises(ValueError):
        PhantomCheck("nir")


def _models_without(tmp_path, key, drop=(), damage=()):
    """A signed copy of the shipped manifest (files linked) without ``drop``'s entries and
    with ``damage``'s files replaced by other bytes."""
    d = tmp_path / "models"
    d.mkdir()
    man = json.loads((SHIPPED / "manifest.json").read_text())
    for name in list(man["models"]):
        if name in drop:
            del man["models"][name]
        elif name in damage:
            (d / name).write_bytes((SHIPPED / name).read_bytes()[:-1] + b"\0")
        elif (SHIPPED / name).exists():
            os.symlink(SHIPPED / name, d / name)
    (d / "manifest.json").write_text(json.dumps(man))
    return sign_models(d, key)


@pytest.mark.skipif(not SHIPPED_PHANTOM, reason="no shipped X-ray phantom file")
def test_required_where_the_signed_manifest_lists_it(tmp_path, trust_test_key):
    from device.models.sensor_branch import SensorBranch
    assert phantom_check("nir", "int8") is None
    d = _models_without(tmp_path, trust_test_key, drop=("phantom_xray_int8.onnx",))
    assert phantom_check("xray", "int8", d) is None               # a release before the check
    assert SensorBranch("xray", "int8", d, threads=1).phantom is None
    (tmp_path / "models").rename(tmp_path / "old")
    d = _models_without(tmp_path, trust_test_key, damage=("phantom_xray_int8.onnx",))
    with pytest.raises(ModelError, match="sha256"):                # listed, changed: no stage
        SensorBranch("xray", "int8", d, threads=1)


@pytest.mark.skipif(not SHIPPED_PHANTOM, reason="no shipped X-ray phantom file")
@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_shipped_check_refuses_phantoms_and_passes_live_hands(precision):
    from device.models.sensor_branch import NOT_LIVE, SensorBranch
    from tools.train.phantom_data import render_frame, to_u8
    sb = SensorBranch("xray", precision, threads=1)
    assert sb.phantom is not None and 0 < sb.phantom.threshold < 1
    seed = 46101                                  # no training, monitoring or validation seed
    live = [to_u8(render_frame("live_placed", seed, i)) for i in range(4)]
    phantoms = [to_u8(render_frame("phantom", seed, i)) for i in range(4)]
    res = sb.judge(live + phantoms)
    passed = [r for r in res[:4] if r.reason is None]
    assert len(passed) >= 3 and all(r.p_phantom < sb.phantom.threshold for r in passed)
    caught = [r for r in res[4:] if r.p_live is not None and r.p_live > sb.threshold]
    assert caught, "no phantom reached the check"
    for r in caught:                                # live-looking to liveness, refused here
        assert not r.live and r.reason == NOT_LIVE and "phantom" in r.detail
        assert r.p_phantom > sb.phantom.threshold
    assert all(np.isfinite(r.p_phantom) for r in passed + caught)


@pytest.mark.skipif(not SHIPPED_PHANTOM, reason="no shipped X-ray phantom file")
def test_retraining_reads_the_sr_without_the_phantom_file(tmp_path, trust_test_key):
    """``tools.train phantom --profile full`` exports into the shipped models/ before it scores
    the validation set: the SR it reads there must not need the (just replaced, not yet
    re-listed) phantom files -- before, a SensorBranch was built and stopped on their sha256,
    leaving models/ with files its manifest does not list."""
    from device.models.sensor_branch import SensorBranch, to_capture
    from tools.train.phantom import _scores
    from tools.train.phantom_net import sr_images
    from tools.train.phantom_data import render_frame, to_u8
    d = _models_without(tmp_path, trust_test_key,
                        damage=("phantom_xray.onnx", "phantom_xray_int8.onnx"))
    frames = [to_u8(render_frame("live_placed", 46101, i)) for i in range(2)]
    sr = sr_images(frames, "int8", 1, d)
    ref = SensorBranch("xray", "int8", threads=1, presence=False).super_resolve(
        np.stack([to_capture(f) for f in frames]))
    assert sr.dtype == np.float32 and np.array_equal(sr, ref)
    p = _scores(SHIPPED / "phantom_xray_int8.onnx", "int8", frames, d)
    assert p.shape == (2,) and np.all(np.isfinite(p))


@pytest.mark.skipif(not SHIPPED_PHANTOM, reason="no shipped X-ray phantom file")
def test_status_checks_the_phantom_file(tmp_path, trust_test_key, capsys):
    """``palmgate status`` names the phantom file the X-ray gate needs: a changed one stops
    every presentation (liveness_unavailable), so status must not say all is well."""
    from conftest import gate_config, write_toml

    from device.cli import main
    good = _models_without(tmp_path, trust_test_key)
    cfg = gate_config(tmp_path, good, gate={"precision": "int8"}, liveness={"sensor": "xray"})
    f = write_toml(tmp_path / "good.toml", cfg)
    assert main(["status", "--config", str(f)]) == 0
    m = json.loads(capsys.readouterr().out)["models"]["phantom_xray_int8.onnx"]
    assert m["ok"] and 0 < m["threshold"] < 1
    (tmp_path / "models").rename(tmp_path / "old")
    bad = _models_without(tmp_path, trust_test_key, damage=("phantom_xray_int8.onnx",))
    cfg = gate_config(tmp_path, bad, gate={"precision": "int8"}, liveness={"sensor": "xray"})
    f = write_toml(tmp_path / "bad.toml", cfg)
    assert main(["status", "--config", str(f)]) == 1
    m = json.loads(capsys.readouterr().out)["models"]["phantom_xray_int8.onnx"]
    assert not m["ok"] and "sha256" in m["error"]
