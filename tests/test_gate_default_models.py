"""`palmgate run` with the documented example configuration (device/palmgate.example.toml,
its synthetic source) loads int8 files for every model on the gate's path that has one, and
the view-fusion model (seed 000) of the default feature: every Model(...) load is traced."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "device" / "palmgate.example.toml"

# The loads go to a file of their own, one whole line a write under a lock: on stderr they
# could interleave with another thread's log line and the check would not find a name.
TRACE = r"""
import os, sys, threading
import device.models.model as mm
_init = mm.Model.__init__
_lock = threading.Lock()
def traced(self, name, *a, **k):
    with _lock, open(os.environ["MODEL_LOAD_TRACE"], "a") as f:
        f.write(name + "\n")
    return _init(self, name, *a, **k)
mm.Model.__init__ = traced
from device.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_run_with_the_example_config_loads_int8_files_and_the_fusion(tmp_path):
    from device.config import load_config
    cfg = load_config(EXAMPLE)
    assert cfg.gate.precision == "int8" and cfg.match.feature == "hybrid"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path),
           "PALMGATE_DEVICE_KEY": str(tmp_path / "device.key"),
           "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "MODEL_LOAD_TRACE": str(tmp_path / "model_loads.txt")}
    r = subprocess.run([sys.executable, "-c", TRACE, "run", "--config", str(EXAMPLE),
                        "--limit", "2", "--plain-log"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    loads = (tmp_path / "model_loads.txt").read_text().split()
    decisions = [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert len(decisions) == 2                       # two presentations went through the loop
    man = json.loads((ROOT / "models" / "manifest.json").read_text())["models"]
    # the gate's path: landmarks, SR + liveness, the learned cells -- each its int8 file
    for name in ("hand_landmark_int8.onnx", "sr_nir_int8.onnx", "liveness_nir_int8.onnx",
                 "recognition_cells_int8.onnx"):
        assert name in loads, (name, loads)
    # and the multi-view fusion (its int8 file once one is shipped, else fp32 with a log line)
    fusion = [n for n in loads if n.startswith("recognition_fusion")]
    assert fusion, loads
    if "recognition_fusion_int8.onnx" in man:
        assert fusion == ["recognition_fusion_int8.onnx"]
    else:
        assert "the fusion runs fp32" in r.stderr
    # no fp32 file loaded where an int8 one is listed -- except the synthetic source's own
    # rendering models, which are not on the gate's path
    gate_path = ("hand_landmark", "hand_seg", "sr_", "liveness_", "recognition_")
    for n in loads:
        int8 = n.replace(".onnx", "_int8.onnx")
        if n.startswith(gate_path) and not n.endswith("_int8.onnx"):
            assert int8 not in man, f"{n} loaded in fp32 although {int8} is shipped"
