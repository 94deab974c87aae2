"""The gate as an OSDP peripheral, against libosdp's own control panel over a socat pty pair
with the Secure Channel on and the key installed by the panel."""
import shutil
import time

import pytest
from conftest import wait_until as _wait

osdp = pytest.importorskip("osdp")
if not hasattr(osdp, "PeripheralDevice"):
    pytest.skip("the `osdp` module is not libosdp's", allow_module_level=True)
if shutil.which("socat") is None:
    pytest.skip("socat is not installed", allow_module_level=True)

from device.eval.panel import OsdpPanel  # noqa: E402
from device.eval.ptypair import PtyPair  # noqa: E402
from device.relays.osdp import OsdpError, OsdpPeripheral, load_scbk  # noqa: E402
from device.relays.wiegand_codec import encode  # noqa: E402


def test_install_mode_keyset_cards_commands_and_restart(tmp_path):
    key_file = tmp_path / "osdp_scbk"
    outputs, leds, buzzers = [], [], []
    with PtyPair() as line:
        pd = OsdpPeripheral(line.a, scbk_file=key_file, install_mode=True,
                            on_output=lambda n, a, ms: outputs.append((n, a, ms)),
                            on_led=leds.append, on_buzzer=buzzers.append).start()
        panel = OsdpPanel(line.b).start()
        try:
            assert panel.wait_secure(15), "no Secure Channel"
            assert pd.wait_secure(5)
            # the panel's key is on disk, 0600, and equal to the panel's
            assert load_scbk(key_file) == panel.scbk
            assert (key_file.stat().st_mode & 0o777) == 0o600
            assert pd.key_installed
            # three card reads -> exactly three credentials, parity checked
            for n in (1, 4242, 65535):
                assert pd.report_card(encode("wiegand26", 17, n))
            cards = panel.wait_cards(3)
            assert [(c.format, c.facility, c.number) for c in cards] == \
                [("wiegand26", 17, 1), ("wiegand26", 17, 4242), ("wiegand26", 17, 65535)]
            assert all(panel.secure_at_each_card) and not panel.errors
            # the panel granted each: output pulse (x100 ms) and a green LED came back
            assert _wait(lambda: len(outputs) >= 3 and len(leds) >= 3)
            assert outputs[0] == (0, "pulse", 200)
            assert leds[0]["color"] == "green"
            assert panel.buzzer(300)
            assert _wait(lambda: buzzers)
            # tamper and power reports
            assert pd.report_status(tamper=True, power_ok=False)
            assert _wait(lambda: panel.status_reports)
            assert panel.status_reports[0][:2] == bytes([1, 1])
            time.sleep(0.5)
            assert len(panel.cards) == 3                   # nothing more came
        finally:
            panel.close()
            pd.close()
    # next start: the stored key, the Secure Channel enforced, install mode not needed
    with PtyPair() as line:
        pd = OsdpPeripheral(line.a, scbk_file=key_file, install_mode=False).start()
        panel = OsdpPanel(line.b, scbk=load_scbk(key_file)).start()
        try:
            assert panel.wait_secure(15)
            assert pd.report_card(encode("wiegand34", 300, 12))
            assert [(c.facility, c.number) for c in panel.wait_cards(1)] == [(300, 12)]
        finally:
            panel.close()
            pd.close()


def test_wrong_key_panel_gets_no_secure_channel_and_no_card(tmp_path):
    key_file = tmp_path / "k"
    key_file.write_text("00" * 16)
    with PtyPair() as line:
        pd = OsdpPeripheral(line.a, scbk_file=key_file).start()
        panel = OsdpPanel(line.b, scbk=bytes(range(16))).start()
        try:
            assert not panel.wait_secure(4)
            assert not pd.report_card(encode("wiegand26", 1, 1))     # refused: no SC
            assert pd.errors and pd.cards_reported == 0
            time.sleep(0.3)
            assert panel.cards == []
        finally:
            panel.close()
            pd.close()


def test_no_key_without_install_mode_refuses_to_start(tmp_path):
    with pytest.raises(OsdpError, match="install_mode"):
        OsdpPeripheral("/dev/null", scbk_file=tmp_path / "missing").start()
    bad = tmp_path / "bad"
    bad.write_text("xyz")
    with pytest.raises(OsdpError, match="SCBK"):
        OsdpPeripheral("/dev/null", scbk_file=bad).start()
