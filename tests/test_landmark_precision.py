"""``[gate] landmark_precision``: the hand-landmark network's own precision (``gate`` follows
``[gate] precision``), honoured by every place that makes the gate's landmark model -- the
front end's stage (gate, enrolment, evaluate-liveness, bench), ``palmgate status`` -- and
taken by ``palmgate evaluate-liveness --enrol`` and ``palmgate bench`` as a flag."""
import json

import pytest

from device.config import ConfigError, load_config
from device.gate.front_end_stage import LandmarkerStage, landmark_precision
from device.models.model import DEFAULT_MODELS_DIR
from device.vision.landmarks import LANDMARK_FILES
from tests.conftest import gate_config, write_toml


def test_option_is_documented_and_checked():
    cfg = load_config(None)
    assert cfg.gate.landmark_precision in ("gate", "fp32", "int8")
    for v in ("gate", "fp32", "int8"):
        assert load_config(None, gate={"landmark_precision": v}).gate.landmark_precision == v
    with pytest.raises(ConfigError, match="landmark_precision"):
        load_config(None, gate={"landmark_precision": "int4"})


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_landmark_precision_follows_or_overrides_the_gate(precision):
    def lp(v):
        return landmark_precision(load_config(None, gate={"precision": precision,
                                                          "landmark_precision": v}))
    assert lp("gate") == precision
    assert lp("fp32") == "fp32"
    assert lp("int8") == "int8"


@pytest.mark.skipif(not all((DEFAULT_MODELS_DIR / f).exists()
                            for f in LANDMARK_FILES.values()),
                    reason="hand landmark models not present")
@pytest.mark.parametrize("lp,file", [("fp32", "hand_landmark.onnx"),
                                     ("gate", "hand_landmark_int8.onnx"),
                                     ("int8", "hand_landmark_int8.onnx")])
def test_the_gate_stage_loads_the_file_of_landmark_precision(lp, file):
    cfg = load_config(None, gate={"precision": "int8", "landmark_precision": lp})
    lmk = LandmarkerStage(cfg).get()
    assert lmk is not None and lmk.file == file
    fp = load_config(None, gate={"precision": "fp32", "landmark_precision": lp})
    assert LandmarkerStage(fp).get().file == ("hand_landmark_int8.onnx" if lp == "int8"
                                              else "hand_landmark.onnx")


def test_status_names_the_landmark_file_of_landmark_precision(tmp_path, tiny_models,
                                                              capsys):
    from device.cli import main
    for lp, want in (("fp32", "hand_landmark.onnx"), ("int8", "hand_landmark_int8.onnx")):
        cfg = gate_config(tmp_path, tiny_models, gate={"landmark_precision": lp})
        f = write_toml(tmp_path / f"{lp}.toml", cfg)
        main(["status", "--config", str(f)])
        models = json.loads(capsys.readouterr().out)["models"]
        assert want in models and not any(n.startswith("hand_landmark") and n != want
                                          for n in models)


def test_evaluate_liveness_enrol_passes_the_flag(monkeypatch, tmp_path):
    import device.eval.liveness_enrol as le
    from device.cli import main
    seen = {}

    def fake(data_dir, sensor, out, **kw):
        seen.update(kw)
        return {}
    monkeypatch.setattr(le, "evaluate_liveness_enrol", fake)
    main(["evaluate-liveness", str(tmp_path), "--sensor", "xray", "--enrol", "--out",
          str(tmp_path / "o"), "--landmark-precision", "fp32"])
    assert seen["landmark_precision"] == "fp32"
    seen.clear()
    main(["evaluate-liveness", str(tmp_path), "--sensor", "xray", "--enrol", "--out",
          str(tmp_path / "o")])
    assert seen["landmark_precision"] is None          # the configuration's default


def test_synthetic_gate_takes_landmark_precision(monkeypatch):
    import device.eval.synthetic_gate as sg
    import device.gate.pipeline as pl
    made = []

    class FakePipe:
        def __init__(self, cfg):
            made.append(cfg)
            raise RuntimeError("stop")
    monkeypatch.setattr(pl, "Pipeline", FakePipe)
    for lp, want in ((None, load_config(None).gate.landmark_precision), ("fp32", "fp32")):
        with pytest.raises(RuntimeError, match="stop"):
            with sg.synthetic_gate(1, 3, "int8", "xray", landmark_precision=lp):
                pass
        assert made[-1].gate.landmark_precision == want


def test_bench_passes_the_flag(monkeypatch):
    import device.eval.bench as bench
    from device.cli import main
    seen = []

    def fake(tmp, *a):
        seen.append(a)
        return {}
    monkeypatch.setattr(bench, "_bench", fake)
    main(["bench", "--users", "10", "--landmark-precision", "fp32", "--json"])
    assert "fp32" in seen[-1][-2:]
