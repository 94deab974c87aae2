"""docs/install.md, run as written: every ``palmgate`` command line of the Raspberry Pi walk
(steps 2 to 5: init, status, relay-test, enrol at the terminal, record + enrol, run, the
audit log), in order, in a temporary folder, with the stand-ins the manual lists under "What of
this walk was run, and how" -- the synthetic source for the cameras, the tests' signed models,
an LCUS board simulator on a socat pty pair for the relay. And every other ``palmgate`` line of
the manual's code blocks is one that a named test runs."""
import json
import re
import shlex
import shutil
import time
from pathlib import Path

import pytest
from conftest import ROOT

from device.cli import main

DOC = ROOT / "docs" / "install.md"
needs_socat = pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed")

# the optional or elsewhere-shown commands of the manual, and the test that runs each
ELSEWHERE = {"demo": "tests/test_gate_demo.py",
             "users add-credential": "tests/test_door_first_run.py",
             "users set-pin": "tests/test_door_pin.py",
             "users mode": "tests/test_door_pin.py"}
SUDO = re.compile(r"^(?:sudo\s+(?:-u\s+\S+\s+)?)?")


def code_lines(text: str) -> list[str]:
    """The lines of the fenced code blocks, backslash continuations joined."""
    out, inside, cur = [], False, ""
    for line in text.splitlines():
        if line.startswith("```"):
            inside = not inside
            continue
        if not inside:
            continue
        cur += line.rstrip()
        if cur.endswith("\\"):
            cur = cur[:-1] + " "
            continue
        out.append(cur.strip())
        cur = ""
    return out


def command_name(argv: list[str]) -> str:
    return " ".join(argv[:2]) if argv[0] in ("users", "audit") else argv[0]


def palmgate_argv(line: str) -> list[str] | None:
    """``palmgate ARGS`` (after an optional sudo) as a list, else None."""
    rest = SUDO.sub("", line, count=1)
    if not rest.startswith("palmgate "):
        return None
    return shlex.split(rest, comments=True)[1:]


def walk_text(text: str) -> str:
    """Steps 2 to 5 of the Pi section, without the optional step 3b."""
    a, b = text.index("### 2. Configuration"), text.index("### 6. The systemd service")
    walk = text[a:b]
    c, d = walk.index("### 3b."), walk.index("### 4.")
    return walk[:c] + walk[d:]


def test_every_palmgate_line_of_the_manual_is_run_by_a_test():
    text = DOC.read_text()
    walk = {tuple(palmgate_argv(x)) for x in code_lines(walk_text(text)) if palmgate_argv(x)}
    assert len(walk) >= 9
    for line in code_lines(text):
        for m in re.finditer(r"(?:^|&&\s*|sudo\s+(?:-u\s+\S+\s+)?)palmgate\s+(.*?)(?:&&|$)",
                             line):
            argv = shlex.split(m.group(1), comments=True)
            if tuple(argv) in walk:
                continue
            name = command_name(argv)
            assert name in ELSEWHERE, f"install.md runs `palmgate {m.group(1)}` untested"
            assert name.split()[-1] in (ROOT / ELSEWHERE[name]).read_text()


@needs_socat
def test_the_install_walk_runs_as_written(tmp_path, tiny_models, pty_pair, capsys,
                                          monkeypatch):
    from test_relay import LcusSimulator
    from device.commands import common
    from device.eval.demo import DEMO_THRESHOLD
    host, board = pty_pair
    sim = LcusSimulator(board)
    root = tmp_path / "board"
    subst = {"/etc/palmgate": str(root / "etc" / "palmgate"),
             "/var/lib/palmgate": str(root / "var" / "lib" / "palmgate"),
             "/dev/palmgate-relay": host}
    monkeypatch.delenv("PALMGATE_CONFIG", raising=False)
    monkeypatch.setattr(common, "DEFAULT_CONFIG", subst["/etc/palmgate"] + "/palmgate.toml")
    env: dict = {}
    ran: dict = {}
    try:
        for line in code_lines(walk_text(DOC.read_text())):
            m = re.fullmatch(r"(\w+)=(\S+)", line)
            if m:
                env[m.group(1)] = m.group(2)
                continue
            argv = palmgate_argv(line)
            if argv is None:
                continue                                    # chown, systemctl: not here
            argv = [re.sub(r"\$(\w+)", lambda v: env[v.group(1)], x) for x in argv]
            for real, here in subst.items():
                argv = [x.replace(real, here) for x in argv]
            name = command_name(argv)
            if name == "init":
                argv += ["--set", "source.kind=synthetic", "--set", f"paths.models={tiny_models}",
                         "--set", f"match.threshold={DEMO_THRESHOLD}",
                         "--set", "gate.cooldown_s=0.0"]
            if name == "enroll" and "--capture" in argv:
                argv += ["--synthetic", "0"]
            if name == "run":
                argv += ["--limit", "10"]
            rc = main(argv)
            cap = capsys.readouterr()
            assert rc == 0, (line, cap.err[-3000:])
            ran[name] = ran.get(name, 0) + 1
            out = cap.out
            if name == "init":
                made = json.loads(out)
                assert made["users"] == 0
                etc = Path(subst["/etc/palmgate"])
                assert (etc / "palmgate.toml").exists()
                assert (etc / "device.key").stat().st_mode & 0o777 == 0o600
                assert main(argv) == 2                      # never overwrites
                assert "refusing to overwrite" in capsys.readouterr().err
            elif name == "status":
                assert json.loads(out)["ok"] is True
            elif name == "relay-test":
                assert json.loads(out)["ok"] is True
                assert bytes.fromhex("A0 01 01 A2") in sim.wait_frames(3)
            elif name == "enroll":
                r = json.loads(out)
                assert r["templates"] >= 2 and r["duplicate_of"] == []
                if "--capture" in argv:
                    assert r["user_id"] == "alice" and r["presentations"] == 3
                    assert ">> presentation 1 of 3: hold your palm flat" in cap.err
            elif name == "users show":
                assert json.loads(out)["label"] == "Alice A."
            elif name == "run":
                decisions = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
                assert len(decisions) == 10
                assert (decisions[9]["decision"], decisions[9]["user_id"]) == ("open", "alice")
                opened = [d for d in decisions if d["decision"] == "open"]
                assert {d["user_id"] for d in opened} <= {"alice", "carol"}
                assert all(d["relay"] == "pulsed" for d in opened)
                assert all(d["relay"] != "pulsed" for d in decisions if d not in opened)
                # relay-test's pulse, then the run's (back-to-back opens share one pulse)
                on = [f for f in sim.wait_frames(1) if f == bytes.fromhex("A0 01 01 A2")]
                assert len(on) >= 2
                end = time.monotonic() + 5                          # and left off
                while sim.state[1] and time.monotonic() < end:
                    time.sleep(0.02)
                assert sim.state[1] is False
            elif name == "audit show":
                recs = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
                assert recs[-1]["kind"] == "decision" and recs[-1]["user_id"] == "alice"
                assert recs[-1]["terminal"] == "front-door"
    finally:
        sim.close()
    assert ran == {"init": 1, "status": 1, "users list": 1, "relay-test": 1, "enroll": 2,
                   "record": 1, "users show": 1, "run": 1, "audit show": 1,
                   "audit verify-chain": 1}
