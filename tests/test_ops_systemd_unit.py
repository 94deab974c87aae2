"""packaging/systemd/palmgate.service: parsed, checked against what the gate expects of it, and
(where systemd-analyze exists) verified by systemd itself."""
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "packaging" / "systemd" / "palmgate.service"


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """systemd unit syntax: [Section], KEY=VALUE, repeated keys kept in order, '#'/';'
    comments, backslash continuation lines."""
    out: dict[str, dict[str, list[str]]] = {}
    section = None
    lines = iter(text.splitlines())
    for raw in lines:
        line = raw.strip()
        while line.endswith("\\"):
            line = line[:-1] + " " + next(lines).strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            out.setdefault(section, {})
            continue
        assert section is not None, f"key outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not KEY=VALUE: {line}"
        out[section].setdefault(key.strip(), []).append(value.strip())
    return out


@pytest.fixture(scope="module")
def unit():
    return parse_unit(UNIT.read_text())


def one(unit, section, key):
    vals = unit[section].get(key)
    assert vals, f"[{section}] {key}= missing"
    return vals[-1]


def seconds(v: str) -> float:
    mult = {"ms": 1e-3, "s": 1, "min": 60, "m": 60, "h": 3600}
    for suffix in ("ms", "min", "s", "m", "h"):
        if v.endswith(suffix):
            return float(v[:-len(suffix)]) * mult[suffix]
    return float(v)


def test_sections(unit):
    assert set(unit) == {"Unit", "Service", "Install"}
    assert one(unit, "Install", "WantedBy") == "multi-user.target"


def test_notify_watchdog_restart(unit):
    assert one(unit, "Service", "Type") == "notify"
    assert one(unit, "Service", "NotifyAccess") == "main"       # only the gate's own pid
    wd = seconds(one(unit, "Service", "WatchdogSec"))
    assert 2 <= wd <= 60
    assert one(unit, "Service", "Restart") == "always"
    assert 1 <= seconds(one(unit, "Service", "RestartSec")) <= 5
    # a crash loop ends (relay off) instead of pulsing forever
    assert int(one(unit, "Unit", "StartLimitBurst")) >= 3
    # the stop path (SIGTERM -> relay off -> exit) has time to finish before SIGKILL
    assert one(unit, "Service", "KillSignal") == "SIGTERM"
    assert seconds(one(unit, "Service", "TimeoutStopSec")) >= 5


def test_exec_start(unit):
    cmd = one(unit, "Service", "ExecStart").split()
    assert cmd[0].startswith("/") and cmd[0].endswith("/palmgate")
    assert cmd[1:] == ["run", "--config", "/etc/palmgate/palmgate.toml"]
    assert one(unit, "Unit", "ConditionPathExists") == "/etc/palmgate/palmgate.toml"


def test_exec_stop_post_switches_the_relay_off(unit):
    """After the main process exits for any reason (SIGKILL included) systemd runs the relay-off
    command with the same configuration: every channel off (tests/test_ops_relay_off.py)."""
    posts = unit["Service"].get("ExecStopPost")
    assert posts, "ExecStopPost= missing"
    cmd = posts[-1].split()
    assert cmd[0] == one(unit, "Service", "ExecStart").split()[0]     # no "-": failures count
    assert cmd[1:] == ["relay-off", "--config", "/etc/palmgate/palmgate.toml"]
    from device.cli import build_parser
    a = build_parser().parse_args(cmd[1:])
    assert a.fn.__name__ == "cmd_relay_off"


def test_dedicated_user_and_groups(unit):
    user = one(unit, "Service", "User")
    assert user == "palmgate" and user != "root"
    groups = one(unit, "Service", "SupplementaryGroups").split()
    assert "dialout" in groups                                # the serial relay
    assert "video" in groups                                  # the cameras
    assert one(unit, "Service", "StateDirectory") == "palmgate"
    assert one(unit, "Service", "RuntimeDirectory") == "palmgate"   # /run/palmgate/status.json


def test_hardening(unit):
    s = unit["Service"]
    expect = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
              "PrivateTmp": "yes", "ProtectKernelTunables": "yes",
              "ProtectKernelModules": "yes", "ProtectControlGroups": "yes",
              "RestrictSUIDSGID": "yes", "LockPersonality": "yes", "RestrictRealtime": "yes",
              "RestrictNamespaces": "yes", "SystemCallArchitectures": "native"}
    for k, v in expect.items():
        assert s.get(k, [None])[-1] == v, k
    assert s["CapabilityBoundingSet"] == [""]                 # no capabilities at all
    assert "/var/lib/palmgate" in one(unit, "Service", "ReadWritePaths").split()
    assert one(unit, "Service", "UMask") == "0077"
    # options that would cut the gate off from its serial relay and cameras
    assert "PrivateDevices" not in s and "ProtectClock" not in s
    assert "DeviceAllow" not in s


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify(tmp_path):
    # verify needs ExecStart's binary to exist: point it at /bin/true in a copy
    text = UNIT.read_text().replace("/usr/local/bin/palmgate", "/bin/true")
    p = tmp_path / "palmgate.service"
    p.write_text(text)
    r = subprocess.run(["systemd-analyze", "verify", str(p)], capture_output=True, text=True,
                       timeout=60)
    complaints = [ln for ln in (r.stdout + r.stderr).splitlines()
                  if "palmgate.service" in ln and ("ignoring" in ln or "Unknown" in ln
                                                   or "Failed" in ln)]
    assert not complaints, complaints
