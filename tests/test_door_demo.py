"""``palmgate demo --panel osdp|wiegand``: the demo gate as a panel's reader; the summary's
``panel`` object counts the credentials the panel decoded (one per open, the opened person's
card), the Secure Channel (OSDP) and the errors."""
import json
import shutil

import pytest

from device.cli import main


@pytest.mark.parametrize("kind", ["osdp", "wiegand"])
def test_demo_panel(kind, tmp_path, tiny_models, capsys):
    if kind == "osdp":
        osdp = pytest.importorskip("osdp")
        if not hasattr(osdp, "PeripheralDevice") or shutil.which("socat") is None:
            pytest.skip("libosdp or socat missing")
    pytest.importorskip("gpiozero")
    assert main(["demo", "--panel", kind, "--people", "2", "--per-kind", "2", "--out",
                 str(tmp_path / "demo"), "--models", str(tiny_models)]) == 0
    r = json.loads(capsys.readouterr().out)
    opens = sum(v["open"] for v in r["by_label"].values())
    p = r["panel"]
    assert opens >= 1 and r["by_label"]["impostor"]["open"] == 0
    assert p["credentials_reported"] == opens and p["cards_match"]
    # broken frames only where the gate was held up mid-frame and sent the frame again
    assert p["errors"] == 0 or p.get("resends", 0) > 0
    assert p["secure_channel"] is (kind == "osdp")
    if kind == "osdp" and r["relay"] is not None:
        # panel mode: the relay moved only on the panel's output command, once per open
        assert r["relay"]["pulses"] == opens and r["relay"]["relay_on_now"] is False
    if kind == "wiegand" and r["relay"] is not None:
        assert r["relay"]["pulses"] == 0                 # the panel drives its own door
