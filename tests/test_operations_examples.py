"""Every `palmgate` line of the docs/operations.md blocks marked "examples: ... run by
tests/test_operations_examples.py" runs, in order, on a unit made by `palmgate init`, with
`--config` added and /var/lib/palmgate/ moved into the test's folder; each must exit 0."""
import json
import re
import shlex
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from device.cli import main

ROOT = Path(__file__).resolve().parent.parent
MARK = "run by tests/test_operations_examples.py"
OCT_15 = 1_792_022_400.0            # 2026-10-15 00:00 UTC: the unit's first records


def examples() -> list[str]:
    text = (ROOT / "docs" / "operations.md").read_text()
    out = []
    for m in re.finditer(r"<!--[^>]*" + re.escape(MARK) + r"[^>]*-->\n```\n(.*?)```", text,
                         re.S):
        out += [ln.strip() for ln in m.group(1).splitlines()
                if ln.strip().startswith("palmgate ")]
    return out


def test_the_marked_sections_hold_examples():
    ex = examples()
    for cmd in ("users schedule", "holidays add", "users unlock", "audit archive",
                "audit verify --archive", "audit prune"):
        assert any(e.startswith("palmgate " + cmd) for e in ex), cmd


def test_every_example_runs(tmp_path, capsys, monkeypatch):
    unit = tmp_path / "unit"
    assert main(["init", "--dir", str(unit), "--set", "audit.retention_days=365"]) == 0
    cfg = str(unit / "palmgate.toml")
    # the unit's first records (users, a few decisions) are dated October 2026, so the
    # archive example has something before its --before date
    import device.store.audit as audit_mod
    monkeypatch.setattr(audit_mod, "time", SimpleNamespace(time=lambda: OCT_15))
    from device.commands.common import open_store
    from device.config import load_config
    from device.protect.core import enrol
    rng = np.random.default_rng(7)
    with open_store(load_config(cfg)) as st:
        for who in ("alice", "bob"):
            f = rng.standard_normal((49, 16))
            st.enrol(who, [enrol(f / np.linalg.norm(f, axis=-1, keepdims=True))])
        for _ in range(3):
            st.audit.append("decision", decision="deny", reason="no_match", terminal="gate-1")
    monkeypatch.undo()
    capsys.readouterr()
    var = tmp_path / "var"
    var.mkdir()
    for line in examples():
        argv = [a.replace("/var/lib/palmgate", str(var)) for a in shlex.split(line)[1:]]
        rc = main([*argv, "--config", cfg])
        out = capsys.readouterr()
        assert rc == 0, f"{line}: exit {rc}\n{out.err}"
        if argv[:2] == ["audit", "archive"]:
            assert json.loads(out.out)["records"] == 5          # 2 enrolments + 3 decisions
        if argv[:2] == ["audit", "verify"]:
            assert json.loads(out.out)["ok"] is True
