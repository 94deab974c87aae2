"""Enrolment at the terminal (``palmgate enroll NAME --capture``): the real pipeline and store,
the configured source (recorded bursts replayed as the cameras would give them), the gate's
prompts, retries, the duplicate check, nothing written unless the enrolment completes -- a
session killed mid-way (SIGKILL, as a power cut) leaves the store as it was."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, gate_config, trusting_cli, write_toml

from device.cli import main
from device.sources.replay import Burst, write_burst


def _replay(folder, bursts):
    for k, b in enumerate(bursts):
        write_burst(folder / f"{k:02d}", b)
    return folder


def _bad(sb):
    b = sb["enrol"][0][0]
    blank = Burst([np.full((480, 640, 3), 128, np.uint8)] * 3, b.sensor, {})       # nobody
    dark = Burst([np.zeros((480, 640, 3), np.uint8)] * 3, b.sensor, {})            # quality
    spoof = Burst(b.views, np.zeros_like(b.sensor), {})       # no hand under the sensor
    return blank, dark, spoof


def _config(tmp_path, models, replay_dir):
    cfg = gate_config(tmp_path, models, source={"kind": "replay",
                                                "replay_dir": str(replay_dir)})
    return cfg, ["--config", str(write_toml(tmp_path / "p.toml", cfg))]


def _audit(cfg):
    from device.gate.gate import open_store
    with open_store(cfg) as st:
        return [(r.kind, r.payload.get("user_id"), r.payload.get("reason"))
                for r in st.audit.records()], [u.user_id for u in st.users()]


def test_capture_prompts_retries_then_enrols_and_checks_duplicates(tmp_path, tiny_models,
                                                                   synthetic_bursts, capsys):
    blank, dark, spoof = _bad(synthetic_bursts)
    alice = synthetic_bursts["enrol"][0]
    rd = _replay(tmp_path / "cams", [blank, dark, spoof, alice[0], blank, alice[1]])
    cfg, c = _config(tmp_path, tiny_models, rd)
    assert main(["enroll", "alice", "--capture", "--presentations", "2", "--operator", "ann",
                 "--interval", "0", *c]) == 0
    cap = capsys.readouterr()
    r = json.loads(cap.out)
    assert r["user_id"] == "alice" and r["presentations"] == 2 and r["templates"] >= 2
    said = [x[3:] for x in cap.err.splitlines() if x.startswith(">> ")]
    assert said[0] == "presentation 1 of 2: hold your palm flat over the gate, fingers spread"
    assert said[1] == "place your palm over the scanner"                    # the empty scene
    assert said[2].endswith("(quality:too_dark; try 2 of 6)"), said
    assert said[3].startswith("place your palm on the sensor") and \
        "no_hand_in_sensor" in said[3]
    assert said[4:] == ["presentation 1 of 2: good",
                        "presentation 2 of 2: lift your hand away, then hold it flat over "
                        "the gate again", "place your palm over the scanner",
                        "presentation 2 of 2: good"]
    kinds, users = _audit(cfg)
    assert users == ["alice"] and ("enrol", "alice", None) in kinds
    # the same palm under another name: the store's duplicate check refuses, nothing written
    assert main(["enroll", "dave", "--capture", "--presentations", "2", "--interval", "0",
                 *c]) == 2
    assert "already enrolled as 'alice'" in capsys.readouterr().err
    # alice again without --replace: refused before anyone holds a hand out
    assert main(["enroll", "alice", "--capture", *c]) == 2
    err = capsys.readouterr().err
    assert "use --replace" in err and ">> " not in err
    kinds, users = _audit(cfg)
    assert users == ["alice"] and ("enrol_refused", "dave", "duplicate of alice") in kinds


def test_capture_gives_up_with_a_clear_error_and_writes_no_user(tmp_path, tiny_models,
                                                                synthetic_bursts, capsys):
    blank, dark, spoof = _bad(synthetic_bursts)
    rd = _replay(tmp_path / "cams", [dark, spoof, dark, synthetic_bursts["enrol"][0][0]])
    cfg, c = _config(tmp_path, tiny_models, rd)
    assert main(["enroll", "alice", "--capture", "--retries", "1", *c]) == 2
    err = capsys.readouterr().err
    assert "presentation 1: 2 bad captures in a row (last: no_hand_in_sensor); nothing enrolled" in err
    kinds, users = _audit(cfg)
    assert users == [] and kinds == [("enrol_refused", "alice", "no_hand_in_sensor")]
    # the source ends before enough good presentations (a replay folder; cameras never do)
    assert main(["enroll", "alice", "--capture", "--presentations", "2", "--interval", "0",
                 *c]) == 2
    assert "the source ran out after 1 of 2 good presentations" in capsys.readouterr().err
    assert _audit(cfg)[1] == []
    # options that do not go together, named as options
    assert main(["enroll", "alice", str(rd), "--capture", *c]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["enroll", "alice", "--capture", "--synthetic", "0", *c]) == 2
    assert 'needs [source] kind = "synthetic"' in capsys.readouterr().err


def test_prompts_are_spoken_with_espeak_or_said_missing(tmp_path, monkeypatch):
    import io
    from device.gate.enrol_capture import Prompter
    monkeypatch.setenv("PATH", str(tmp_path))
    out = io.StringIO()
    Prompter(speak=True, out=out).say("hold your palm flat over the gate")
    assert "neither espeak-ng nor espeak is installed" in out.getvalue()
    fake = tmp_path / "espeak-ng"
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'spoken'}\n")
    fake.chmod(0o755)
    out = io.StringIO()
    Prompter(speak=True, out=out).say("move your hand closer")
    assert (tmp_path / "spoken").read_text() == "move your hand closer\n"
    assert out.getvalue() == ">> move your hand closer\n"


def test_session_killed_mid_enrolment_leaves_the_store_as_it_was(tmp_path, tiny_models,
                                                                  synthetic_bursts,
                                                                  signing_key):
    blank = _bad(synthetic_bursts)[0]
    alice = synthetic_bursts["enrol"][0]
    rd = _replay(tmp_path / "cams", [alice[0]] + [blank] * 400)
    cfg, c = _config(tmp_path, tiny_models, rd)
    p = subprocess.Popen([*trusting_cli(signing_key), "enroll", "alice", "--capture",
                          "--presentations", "2", *c], cwd=ROOT, text=True,
                         stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        for line in p.stderr:                  # one good presentation in, waiting for more
            if line.startswith(">> presentation 2 of 2"):
                break
        os.kill(p.pid, signal.SIGKILL)          # the power goes
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == -signal.SIGKILL
    kinds, users = _audit(cfg)
    assert users == [] and kinds == []


def test_a_different_palm_mid_session_is_retried(tmp_path, tiny_models, synthetic_bursts,
                                                 capsys):
    alice, bob = synthetic_bursts["enrol"][0], synthetic_bursts["enrol"][1]
    rd = _replay(tmp_path / "cams", [alice[0], bob[0], alice[1]])
    cfg, c = _config(tmp_path, tiny_models, rd)
    assert main(["enroll", "alice", "--capture", "--presentations", "2", "--interval", "0",
                 *c]) == 0
    said = [x[3:] for x in capsys.readouterr().err.splitlines() if x.startswith(">> ")]
    assert "present the same hand as before (enrol:other_palm; try 2 of 6)" in said
    assert said[-1] == "presentation 2 of 2: good"
