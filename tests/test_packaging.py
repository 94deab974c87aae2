"""The wheel a plain ``pip install .`` builds: the runtime packages and the shipped models, no
training tools (they need torch and run from a checkout)."""
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_carries_the_models_and_not_tools(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                        str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = tmp_path.glob("palmgate-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.name for p in (ROOT / "models").iterdir()
               if p.suffix in (".onnx", ".json", ".npz", ".npy", ".sig")}
    assert {f"device/model_files/{n}" for n in shipped} <= names
    assert "device/palmgate.example.toml" in names
    assert "device/synth/palms.py" in names            # the demo's synthetic engine
    assert not [n for n in names if n.startswith("tools/")]


def test_runtime_never_imports_tools():
    bad = []
    for base in ("device", "calibration"):
        for f in (ROOT / base).rglob("*.py"):
            for line in f.read_text().splitlines():
                s = line.strip()
                if s.startswith(("import tools", "from tools.", "from tools ")):
                    bad.append(f"{f.relative_to(ROOT)}: {s}")
    assert not bad, bad
