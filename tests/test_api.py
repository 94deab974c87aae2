"""The public API (device.api) through the runnable example of docs/api.md, run as written."""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_documented_example_runs_and_decides_right(tmp_path):
    doc = (ROOT / "docs" / "api.md").read_text()
    code = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    expected = re.search(r"It prints:\n\n```\n(.*?)```", doc, re.S).group(1)
    script = tmp_path / "example.py"
    script.write_text(code)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == expected.split()


def test_load_gate_with_no_enrolment_denies(tmp_path):
    from device import api
    from device.synth.source import SyntheticPeople
    burst = SyntheticPeople(seed=0, views=3, sensor="nir").burst(0, "genuine", 0)
    with api.load_gate(None, paths={"store": str(tmp_path / "t.db"),
                                    "device_key": str(tmp_path / "k")}) as gate:
        assert gate.users() == []
        d = gate.identify(burst)
    assert not d.opened and d.decision == "deny"
