"""First run to a restored spare, through the command line as an installer would:
``palmgate init`` in an empty folder, enrol, add a card, run, export the audit log, back up,
``init`` a second folder and restore there: the same users, cards and audit chain."""
import csv
import json
import shutil
import subprocess

from device.cli import main


def _out(capsys):
    return capsys.readouterr().out


def _lines(text):
    return [json.loads(x) for x in text.splitlines() if x.startswith("{")]


def test_init_enrol_run_export_backup_restore(tmp_path, tiny_models, capsys, monkeypatch):
    from device.eval.demo import DEMO_THRESHOLD
    monkeypatch.delenv("PALMGATE_CONFIG", raising=False)
    unit = tmp_path / "unit"
    sets = ["--set", f"paths.models={tiny_models}", "--set", f"match.threshold={DEMO_THRESHOLD}",
            "--set", "gate.cooldown_s=0.0", "--set", 'gate.terminal="door-1"']
    assert main(["init", "--dir", str(unit), *sets]) == 0
    made = json.loads(_out(capsys))
    cfg = unit / "palmgate.toml"
    assert made["users"] == 0 and (unit / "device.key").stat().st_mode & 0o777 == 0o600
    text = cfg.read_text()
    assert "create_key = false" in text and "[osdp]" in text and "# " in text
    # a second init refuses to overwrite anything
    assert main(["init", "--dir", str(unit)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err

    c = ["--config", str(cfg)]
    assert main(["enroll", "alice", "--synthetic", "0", "--label", "Alice A.", *c]) == 0
    assert main(["enroll", "bob", "--synthetic", "1", *c]) == 0
    assert main(["users", "add-credential", "alice", "--card", "4242", "--facility", "17",
                 "--operator", "installer", *c]) == 0
    assert json.loads(_out(capsys).splitlines()[-1])["card"] == 4242
    # --replace keeps the label; a card of someone else's is refused naming the CLI
    assert main(["enroll", "alice", "--synthetic", "0", "--replace", *c]) == 0
    assert main(["users", "add-credential", "bob", "--card", "4242", "--facility", "17",
                 *c]) == 2
    assert "already belongs to 'alice'" in capsys.readouterr().err
    assert main(["enroll", "alice", "--synthetic", "0", *c]) == 2
    assert "use --replace" in capsys.readouterr().err
    assert main(["users", "label", "bob", "--label", "Bob B.", *c]) == 0
    assert json.loads(_out(capsys))["label"] == "Bob B."
    assert main(["users", "show", "alice", *c]) == 0
    show = json.loads(capsys.readouterr().out)
    assert show["label"] == "Alice A." and show["cards"] == [
        {"facility": 17, "card": 4242, "format": "wiegand26"}] and show["access_mode"] == "palm"

    # the synthetic source's first 10: persons 3, 2 genuine (never enrolled), bob's genuine
    # 7th, alice's 10th, impostors and attacks between
    assert main(["run", "--limit", "10", "--plain-log", *c]) == 0
    decisions = _lines(_out(capsys))
    assert len(decisions) == 10
    assert (decisions[6]["decision"], decisions[6]["user_id"]) == ("open", "bob")
    assert (decisions[9]["decision"], decisions[9]["user_id"]) == ("open", "alice")
    assert all(d["decision"] == "deny" for d in decisions[:5])

    exp = tmp_path / "audit.jsonl"
    assert main(["audit", "export", "--out", str(exp), "--from", "2000-01-01", "--to",
                 "2999-12-31", *c]) == 0
    rep = json.loads(_out(capsys))
    recs = [json.loads(x) for x in exp.read_text().splitlines()]
    assert rep["records"] == len(recs) >= 10 + 5
    assert sum(r["kind"] == "decision" for r in recs) == 10
    ops = [r for r in recs if r["kind"] == "credential_add"]
    assert ops and ops[0]["operator"] == "installer"
    assert main(["audit", "export", "--out", str(tmp_path / "none.csv"), "--to", "2000-01-01",
                 *c]) == 0
    assert json.loads(_out(capsys))["records"] == 0
    assert main(["audit", "export", "--out", str(tmp_path / "a.csv"), *c]) == 0
    _out(capsys)
    rows = list(csv.DictReader(open(tmp_path / "a.csv")))
    assert len(rows) == len(recs) and rows[0]["seq"] == "1" and "decision" in rows[0]

    pw = tmp_path / "pw"
    pw.write_text("correct horse battery\n")
    bak = tmp_path / "unit.bak"
    assert main(["backup", "--out", str(bak), "--passphrase-file", str(pw), *c]) == 0
    b = json.loads(_out(capsys))
    assert b["users"] == 2 and b["cards"] == 1 and b["audit_records"] == len(recs)
    assert bak.stat().st_mode & 0o777 == 0o600

    spare = tmp_path / "spare"
    assert main(["init", "--dir", str(spare), *sets]) == 0
    _out(capsys)
    c2 = ["--config", str(spare / "palmgate.toml")]
    assert main(["restore", str(bak), *c2]) == 2                  # no passphrase
    assert "--passphrase-file" in capsys.readouterr().err
    assert main(["restore", str(bak), "--passphrase-file", str(pw), *c2]) == 0
    r = json.loads(_out(capsys))
    assert r["users"] == 2 and r["cards"] == 1 and r["audit_head"] == b["audit_head"]
    # the same users and cards
    assert main(["users", "list", *c2]) == 0
    assert [(u["user_id"], u["label"]) for u in _lines(_out(capsys))] == \
        [("alice", "Alice A."), ("bob", "Bob B.")]
    assert main(["users", "show", "alice", *c2]) == 0
    assert json.loads(_out(capsys))["cards"][0]["card"] == 4242
    # the same chain: every record of the original, with its hash, then the restore
    assert main(["audit", "verify-chain", *c2]) == 0
    assert json.loads(_out(capsys))["ok"] is True
    exp2 = tmp_path / "audit2.jsonl"
    assert main(["audit", "export", "--out", str(exp2), *c2]) == 0
    _out(capsys)
    recs2 = [json.loads(x) for x in exp2.read_text().splitlines()]
    # every record the original had when it was backed up, then the spare's restore record
    assert recs2[:len(recs)] == recs
    assert [x["kind"] for x in recs2[len(recs):]] == ["restore"]
    assert recs2[-1]["operator"]
    # and the spare opens the door for alice
    assert main(["run", "--limit", "10", *c2]) == 0                # JSON logs on stderr
    cap = capsys.readouterr()
    again = _lines(cap.out)
    assert (again[9]["decision"], again[9]["user_id"]) == ("open", "alice")
    # the decision fields at the top level of each log line: jq 'select(.decision=="open")'
    logs = _lines(cap.err)
    opened = [x for x in logs if x.get("decision") == "open"]
    assert {x["user_id"] for x in opened} >= {"alice"} and all("reason" in x for x in opened)
    assert len([x for x in logs if "decision" in x]) == 10
    if shutil.which("jq"):
        jq = subprocess.run(["jq", "-c", 'select(.decision=="open")'], input=cap.err,
                            capture_output=True, text=True)
        assert len(jq.stdout.splitlines()) == len(opened)
    assert main(["audit", "verify-chain", *c2]) == 0


def test_no_config_stops_with_how_to_make_one(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PALMGATE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    import device.commands.common as common
    monkeypatch.setattr(common, "DEFAULT_CONFIG", str(tmp_path / "etc" / "palmgate.toml"))
    assert main(["users", "list"]) == 2
    e = capsys.readouterr().err
    assert "no configuration" in e and "palmgate init --dir" in e
    assert not (tmp_path / "palmgate").exists()                  # never a silent ./palmgate/


def test_create_key_never_writes_a_new_key_beside_a_store(tmp_path, capsys):
    unit = tmp_path / "u"
    assert main(["init", "--dir", str(unit), "--set", "paths.create_key=true"]) == 0
    capsys.readouterr()
    (unit / "device.key").unlink()                               # the key is lost
    assert main(["users", "list", "--config", str(unit / "palmgate.toml")]) == 2
    e = capsys.readouterr().err
    assert "paths.device_key" in e and "no new key can open it" in e
    assert not (unit / "device.key").exists()
    # a deployed config (create_key = false) starts from its key with a missing store
    unit2 = tmp_path / "u2"
    assert main(["init", "--dir", str(unit2)]) == 0
    capsys.readouterr()
    for f in unit2.glob("templates.db*"):
        f.unlink()
    assert main(["users", "list", "--config", str(unit2 / "palmgate.toml")]) == 0
    assert main(["init", "--dir", str(tmp_path / "u3"), "--set", "nope"]) == 2
    assert "--set section.key=value" in capsys.readouterr().err
    assert main(["init", "--dir", str(tmp_path / "u3"), "--set", "relay.pulse_ms=5"]) == 2
    assert "relay.pulse_ms: 5 is below the minimum" in capsys.readouterr().err
    assert not (tmp_path / "u3" / "palmgate.toml").exists()


def test_relay_test_on_a_missing_port_says_it_failed(capsys):
    assert main(["relay-test", "--protocol", "lcus", "--port", "/dev/ttyPALMGATE_NONE"]) == 1
    cap = capsys.readouterr()
    rep = json.loads(cap.out)
    assert rep["ok"] is False and rep["confirmed"] is False
    assert "FAILED" in rep["note"] and "bytes were sent" not in cap.out + cap.err


def test_disabled_user_is_logged_as_user_disabled(tmp_path, tiny_models, capsys):
    from device.eval.demo import DEMO_THRESHOLD
    unit = tmp_path / "unit"
    assert main(["init", "--dir", str(unit), "--set", f"paths.models={tiny_models}",
                 "--set", f"match.threshold={DEMO_THRESHOLD}",
                 "--set", "gate.cooldown_s=0.0"]) == 0
    c = ["--config", str(unit / "palmgate.toml")]
    assert main(["enroll", "carol", "--synthetic", "1", *c]) == 0
    assert main(["users", "disable", "carol", "--operator", "ops-desk", *c]) == 0
    capsys.readouterr()
    assert main(["run", "--limit", "7", "--plain-log", *c]) == 0
    d = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert d[6]["reason"] == "user_disabled" and d[6]["decision"] == "deny"   # carol's palm
    assert main(["audit", "show", *c]) == 0
    recs = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    dis = [r for r in recs if r["kind"] == "user_disable"]
    assert dis and dis[0]["operator"] == "ops-desk"
    dec = [r for r in recs if r["kind"] == "decision"]
    assert dec[6]["reason"] == "user_disabled" and dec[6]["user_id"] == "carol"


def test_record_then_enrol_from_the_recorded_bursts(tmp_path, tiny_models, capsys):
    """`palmgate record` takes bursts from the configured source (the synthetic one here; the
    cameras on a board) into a folder that `palmgate enroll --burst` reads."""
    unit = tmp_path / "unit"
    assert main(["init", "--dir", str(unit), "--set", f"paths.models={tiny_models}"]) == 0
    c = ["--config", str(unit / "palmgate.toml")]
    capsys.readouterr()
    out = tmp_path / "rec" / "dave"
    assert main(["record", "--out", str(out), "--count", "2", "--interval", "0", *c]) == 0
    cap = capsys.readouterr()
    r = json.loads(cap.out)
    assert len(r["bursts"]) == 2 and "present your open palm" in cap.err
    assert sorted(p.name for p in out.iterdir()) == ["burst_00", "burst_01"]
    assert main(["enroll", "dave", "--burst", str(out), *c]) == 0
    assert json.loads(capsys.readouterr().out)["user_id"] == "dave"
    assert main(["record", "--out", str(out), "--count", "1", *c]) == 2      # not empty
