"""The store under a running gate, small: ``tools.stress_store`` with a few admin commands
against a real ``palmgate run`` subprocess, and a few SIGKILLs of processes that change the
store (the full runs -- 1,000 commands, 1,000 kills -- are in docs/store.md's figures)."""
import json
import os
import subprocess
import sys

from conftest import ROOT


def _stress(tmp_path, *args, timeout=600):
    r = subprocess.run([sys.executable, "-m", "tools.stress_store", *args, "--dir",
                        str(tmp_path / "site")], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=str(ROOT),
                       timeout=timeout)
    assert r.stdout, r.stderr[-2000:]
    return json.loads(r.stdout)


def test_admin_commands_against_a_running_gate(tmp_path):
    rep = _stress(tmp_path, "admin", "--commands", "12", "--parallel", "2", "--no-liveness",
                  "--seed", "3")
    assert rep["unexpected_exit"] == 0, rep["unexpected"]
    assert rep["corrupt_stores"] == 0 and rep["corrupt_messages"] == 0, rep["final"]
    assert rep["final"]["users_as_expected"] and rep["final"]["store_vs_audit"] == []
    assert rep["gate_exit"] == 0 and rep["gate_errors"] == 0, rep["gate_error_lines"]
    assert rep["decisions_without_record"] == 0
    v = rep["visibility"]
    assert v["checked"] > 0 and v["mismatched"] == 0, v["mismatches"]
    assert rep["ok"]


def test_sigkills_lose_nothing_and_leave_no_change_without_its_record(tmp_path):
    rep = _stress(tmp_path, "kill", "--kills", "5", "--mix", "0.8,0,0.2", "--seed", "2")
    assert rep["kills"] == 5 and rep["store_opens_failed"] == 0, rep["failures"]
    assert rep["lost"] == 0 and rep["half_or_unrecorded"] == 0, rep["failures"]
    assert rep["done_changes"] > 0 and rep["ok"]
