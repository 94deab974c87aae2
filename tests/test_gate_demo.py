"""``palmgate demo`` runs the real loop end to end (small: 2 people, one presentation of each
kind; tiny sensor models, so attacks are not caught here -- test_gate_e2e covers liveness)."""
import json
from pathlib import Path

from device.cli import main


def test_demo_runs_and_writes_a_contact_sheet(tmp_path, tiny_models, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--people", "2", "--per-kind", "1", "--out", str(out),
                 "--models", str(tiny_models)]) == 0
    cap = capsys.readouterr()
    r = json.loads(cap.out)
    assert Path(r["contact_sheet"]).stat().st_size > 10_000
    assert r["presentations"] == 3 and r["audit_records"] >= 5
    assert r["by_label"]["impostor"]["open"] == 0
    from device.gate.enrol_capture import PRESENTATIONS
    assert r["enrol_presentations"] == PRESENTATIONS     # enrolled as the product enrols
    assert "genuine" in cap.err and "ms (quality" in cap.err       # stage timings printed
    if r["relay"] is not None:
        assert r["relay"]["relay_on_now"] is False
        assert r["relay"]["pulses"] == sum(v["open"] for v in r["by_label"].values())
