"""Small contracts of the measurement and inspection commands: `palmgate demo` decides at the
gate's own precision (int8) unless told otherwise, `palmgate status` lists every model file on
the gate's path (the presence check's too), `palmgate bench` leaves no temporary folder."""
import json
from pathlib import Path

import pytest

from tests.conftest import gate_config, write_toml


def test_demo_uses_the_gates_precision_by_default(monkeypatch):
    import device.eval.demo as demo
    from device.cli import build_parser
    from device.config import load_config
    assert build_parser().parse_args(["demo"]).precision is None
    assert build_parser().parse_args(["demo", "--precision", "fp32"]).precision == "fp32"
    seen = []

    def fake_run(cfg, root, people, per_kind, seed, views, precision, *rest):
        seen.append((precision, cfg.gate.precision))
        return {}
    monkeypatch.setattr(demo, "_run", fake_run)
    demo.run_demo(out=None, log=lambda m: None)
    demo.run_demo(out=None, precision="fp32", log=lambda m: None)
    gate_default = load_config(None).gate.precision
    assert gate_default == "int8"
    assert seen == [(gate_default, gate_default), ("fp32", "fp32")]


def test_status_lists_the_presence_and_feature_models(tmp_path, tiny_models, capsys):
    from device.cli import main
    cfg = gate_config(tmp_path, tiny_models)
    f = write_toml(tmp_path / "p.toml", cfg)
    main(["status", "--config", str(f)])
    models = json.loads(capsys.readouterr().out)["models"]
    p = f"presence_{cfg.liveness.sensor}.onnx"
    assert p in models and models[p]["ok"] and 0 < models[p]["threshold"] < 1
    assert {f"sr_{cfg.liveness.sensor}.onnx", f"liveness_{cfg.liveness.sensor}.onnx",
            "recognition_cells.onnx"} <= set(models)
    assert any(n.startswith("recognition_fusion") for n in models)


def test_bench_removes_its_temporary_folder(monkeypatch):
    import device.eval.bench as bench
    made = []

    def fake(tmp, *a):
        made.append(Path(tmp))
        (Path(tmp) / "enrol").mkdir()
        raise KeyboardInterrupt          # even when stopped half way
    monkeypatch.setattr(bench, "_bench", fake)
    with pytest.raises(KeyboardInterrupt):
        bench.bench(users=10)
    assert made and not made[0].exists()
