"""Audit retention: archive the oldest records to a file, remove them, and keep both sides
verifiable (device.store.audit_archive); tampering with the archive or the store still fails;
prune by [audit] retention_days (command and the running gate's daily tick); a backup made
after an archive restores with the same chain."""
import json
import os
import sqlite3

import pytest

from device.cli import main
from device.store.audit_archive import ArchiveError, archive_before, prune, verify_archive
from device.store.errors import AuditChainBroken, TamperedError
from device.store.store import TemplateStore

DAY = 86400.0
T0 = 1_790_000_000.0            # 2026-09-21


@pytest.fixture
def key():
    return os.urandom(32)


def _store(tmp_path, key, days=10):
    """A store with one audit record a day for ``days`` days, from T0."""
    st = TemplateStore(tmp_path / "t.db", device_key=key)
    for i in range(days):
        st.audit.append("decision", when=T0 + i * DAY, decision="deny", reason="no_match",
                        terminal="door-1")
    return st


def test_archive_removes_the_old_records_and_both_sides_verify(tmp_path, key):
    st = _store(tmp_path, key)
    out = tmp_path / "a1.jsonl"
    rep = archive_before(st, T0 + 4 * DAY, out=out, audit={"operator": "ops"})
    assert (rep["records"], rep["first_seq"], rep["last_seq"]) == (4, 1, 4)
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    recs = st.audit.records()
    assert [r.seq for r in recs] == list(range(5, 12))          # 6 kept + the archive's own
    assert recs[-1].kind == "audit_archive" and recs[-1].payload["count"] == 4
    assert recs[-1].payload["operator"] == "ops"
    assert st.audit.verify() == 7 and st.audit.anchor()["seq"] == 4
    v = verify_archive(out, mac=st.audit._mac, anchor=st.audit.anchor())
    assert v["ok"] and v["records"] == 4 and v["mac"] == "ok" and v["store"] == "listed"
    assert verify_archive(out)["mac"] == "unchecked"             # on its own: the chain
    # a second archive chains to the first; records then go on being appended
    out2 = tmp_path / "a2.jsonl"
    rep2 = archive_before(st, T0 + 8 * DAY, out=out2)
    assert (rep2["first_seq"], rep2["last_seq"]) == (5, 8)
    head = json.loads(out2.read_text().splitlines()[0])
    assert head["prev_hash"] == rep["last_hash"]
    st.audit.append("decision", decision="open", reason="match")
    assert st.audit.verify() == 5
    st.close()
    with TemplateStore(tmp_path / "t.db", device_key=key) as again:   # checks at open
        assert again.audit.anchor()["seq"] == 8
        for f in (out, out2):
            assert verify_archive(f, mac=again.audit._mac, anchor=again.audit.anchor())["ok"]


def test_everything_archived_then_appending_goes_on(tmp_path, key):
    st = _store(tmp_path, key, days=3)
    assert archive_before(st, T0 + 100 * DAY, out=tmp_path / "all.jsonl")["records"] == 3
    assert st.audit.verify() == 1                                   # the archive's record
    # the table emptied by an archive (its only record was the last archive's): the new
    # archive record chains to the anchor
    assert archive_before(st, 4e9, out=tmp_path / "rest.jsonl")["records"] == 1
    assert st.audit.verify() == 1 and st.audit.anchor()["seq"] == 4
    assert [r.seq for r in st.audit.records()] == [5]
    assert archive_before(st, T0, out=tmp_path / "none.jsonl")["records"] == 0
    assert not (tmp_path / "none.jsonl").exists()
    st.close()


def test_an_existing_file_is_never_overwritten_and_nothing_is_removed(tmp_path, key):
    st = _store(tmp_path, key)
    out = tmp_path / "a.jsonl"
    out.write_text("keep me\n")
    with pytest.raises(ArchiveError, match="never overwritten"):
        archive_before(st, T0 + 4 * DAY, out=out)
    assert out.read_text() == "keep me\n"
    with pytest.raises(ArchiveError, match="nothing was removed"):
        archive_before(st, T0 + 4 * DAY, out=tmp_path / "no" / "such" / "dir.jsonl")
    assert len(st.audit.records()) == 10 and st.audit.anchor()["seq"] == 0
    assert st.audit.verify() == 10
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    st.close()


def _lines(p):
    return [json.loads(x) for x in p.read_text().splitlines()]


def _write(p, lines):
    p.write_text("".join(json.dumps(x, sort_keys=True) + "\n" for x in lines))


def test_a_tampered_archive_fails(tmp_path, key):
    st = _store(tmp_path, key)
    out = tmp_path / "a.jsonl"
    archive_before(st, T0 + 5 * DAY, out=out)
    good = _lines(out)

    bad = [dict(x) for x in good]
    bad[2]["payload"] = bad[2]["payload"].replace("no_match", "match")
    _write(tmp_path / "b1.jsonl", bad)
    with pytest.raises(ArchiveError, match="record 2 was altered"):
        verify_archive(tmp_path / "b1.jsonl")

    _write(tmp_path / "b2.jsonl", good[:2] + good[3:])              # a record taken out
    with pytest.raises(ArchiveError, match="missing"):
        verify_archive(tmp_path / "b2.jsonl")

    _write(tmp_path / "b3.jsonl", good[:-1])                         # the trailer cut off
    with pytest.raises(ArchiveError, match="trailer"):
        verify_archive(tmp_path / "b3.jsonl")

    # rewritten as a whole, every hash recomputed without the key: the chain holds on its
    # own, but not this unit's MACs, nor the store's record of the range
    import hashlib

    from device.store.audit import _canonical
    forged = [dict(x) for x in good]
    prev = bytes.fromhex(forged[0]["prev_hash"])
    for r in forged[1:-1]:
        r["payload"] = r["payload"].replace("no_match", "match")
        r["prev"] = prev.hex()
        prev = hashlib.sha256(prev + _canonical(r["seq"], r["ts"], r["kind"], r["payload"])
                              ).digest()
        r["hash"] = prev.hex()
    forged[-1]["last_hash"] = prev.hex()
    _write(tmp_path / "b4.jsonl", forged)
    assert verify_archive(tmp_path / "b4.jsonl")["ok"]              # no key: chain only
    with pytest.raises(ArchiveError, match="differ"):
        verify_archive(tmp_path / "b4.jsonl", mac=st.audit._mac, anchor=st.audit.anchor())
    with pytest.raises(ArchiveError, match="MACs do not match"):
        verify_archive(tmp_path / "b4.jsonl", mac=st.audit._mac, anchor={"archives": []})
    (tmp_path / "b5.jsonl").write_text("not json\n{}\n")
    with pytest.raises(ArchiveError, match="not an audit archive"):
        verify_archive(tmp_path / "b5.jsonl")
    st.close()


def test_a_tampered_store_still_fails_after_an_archive(tmp_path, key):
    st = _store(tmp_path, key)
    archive_before(st, T0 + 5 * DAY, out=tmp_path / "a.jsonl")
    st.close()
    db = tmp_path / "t.db"
    # a kept record deleted behind the store's back (trigger lifted, as the archive does)
    c = sqlite3.connect(db)
    c.execute("DROP TRIGGER audit_no_delete")
    c.execute("DELETE FROM audit WHERE seq = 6")
    c.commit()
    c.close()
    with pytest.raises(TamperedError):
        TemplateStore(db, device_key=key)
    # the anchor moved forward by hand, over records still kept: its MAC and the state fail
    st2 = _store(tmp_path / "x", key) if (tmp_path / "x").mkdir() is None else None
    archive_before(st2, T0 + 5 * DAY, out=tmp_path / "x" / "a.jsonl")
    st2.close()
    db2 = tmp_path / "x" / "t.db"
    c = sqlite3.connect(db2)
    v = json.loads(c.execute("SELECT value FROM meta WHERE name='audit_anchor'").fetchone()[0])
    v["seq"] = 7
    c.execute("UPDATE meta SET value=? WHERE name='audit_anchor'", (json.dumps(v).encode(),))
    c.commit()
    c.close()
    with pytest.raises((TamperedError, AuditChainBroken)):
        TemplateStore(db2, device_key=key)


def test_prune_by_retention_and_the_gates_daily_tick(tmp_path, key):
    st = _store(tmp_path, key)
    now = T0 + 10 * DAY
    assert prune(st, 0, tmp_path / "arch", now=now)["records"] == 0   # keep forever
    rep = prune(st, 3, tmp_path / "arch", now=now)
    assert rep["records"] == 7 and rep["out"].endswith("audit-000000001-000000007.jsonl")
    assert st.audit.verify() == 4

    from types import SimpleNamespace

    from device.ops.audit_retention import DailyRetention
    clock = [now + DAY]
    cfg = SimpleNamespace(audit=SimpleNamespace(retention_days=3, archive_dir=str(
        tmp_path / "arch")), gate=SimpleNamespace(terminal="door-1"),
        paths=SimpleNamespace(store=str(tmp_path / "t.db")))
    r = DailyRetention(cfg, st, clock=lambda: clock[0])
    assert r.tick()["records"] == 1                 # T0 + 7 days is now 4 days old
    clock[0] += 3600
    assert r.tick() is None                         # not again before a day has passed
    clock[0] += DAY
    assert r.tick() is not None
    assert st.audit.records()[-1].payload["operator"] == "palmgate run (retention)"
    assert sorted(p.name for p in (tmp_path / "arch").iterdir()) == [
        "audit-000000001-000000007.jsonl", "audit-000000008-000000008.jsonl",
        "audit-000000009-000000010.jsonl"]
    st.close()


def test_cli_archive_verify_prune_backup_restore(tmp_path, capsys, monkeypatch):
    unit = tmp_path / "unit"
    assert main(["init", "--dir", str(unit), "--set", "audit.retention_days=30"]) == 0
    c = ["--config", str(unit / "palmgate.toml")]
    for d in ("2026-12-24", "2026-12-25", "2026-12-26"):
        assert main(["holidays", "add", d, *c]) == 0
    capsys.readouterr()
    out = tmp_path / "arch.jsonl"
    assert main(["audit", "archive", "--before", "2099-01-01", "--out", str(out),
                 "--operator", "auditor", *c]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["records"] == 3 and out.exists()
    assert main(["audit", "archive", "--before", "2099-01-01", "--out", str(out), *c]) == 2
    assert "never overwritten" in capsys.readouterr().err
    assert main(["audit", "archive", "--out", str(tmp_path / "x.jsonl"), *c]) == 2
    assert "--before DATE" in capsys.readouterr().err
    assert main(["audit", "archive", "--before", "soon", "--out", "x", *c]) == 2
    assert "--before 'soon'" in capsys.readouterr().err
    assert main(["audit", "verify", *c]) == 0
    v = json.loads(capsys.readouterr().out)
    assert v == {"ok": True, "records": 1, "archived": 3, "archives": 1}
    assert main(["audit", "verify-chain", *c]) == 0
    capsys.readouterr()
    assert main(["audit", "verify", "--archive", str(out), *c]) == 0
    v = json.loads(capsys.readouterr().out)
    assert v["ok"] and v["mac"] == "ok" and v["store"] == "listed"
    monkeypatch.delenv("PALMGATE_CONFIG", raising=False)
    assert main(["audit", "verify", "--archive", str(out)]) == 0          # no config: chain
    assert json.loads(capsys.readouterr().out)["mac"] == "unchecked"
    lines = out.read_text().splitlines()
    lines[1] = lines[1].replace("2026-12-24", "2026-12-31")
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["audit", "verify", "--archive", str(tmp_path / "bad.jsonl"), *c]) == 1
    assert "altered" in json.loads(capsys.readouterr().out)["error"]
    assert main(["audit", "prune", *c]) == 0                    # nothing 30 days old yet
    assert json.loads(capsys.readouterr().out)["records"] == 0

    # a backup after the archive restores with the same chain and anchor on a new unit
    pw = tmp_path / "pw"
    pw.write_text("correct horse battery\n")
    assert main(["backup", "--out", str(tmp_path / "u.bak"), "--passphrase-file", str(pw),
                 *c]) == 0
    spare = tmp_path / "spare"
    assert main(["init", "--dir", str(spare)]) == 0
    c2 = ["--config", str(spare / "palmgate.toml")]
    assert main(["restore", str(tmp_path / "u.bak"), "--passphrase-file", str(pw), *c2]) == 0
    capsys.readouterr()
    assert main(["audit", "verify", *c2]) == 0
    v = json.loads(capsys.readouterr().out)
    assert v["ok"] and v["archived"] == 3 and v["archives"] == 1
    # the old unit's archive: its MACs are the old key's, but the new store lists it
    assert main(["audit", "verify", "--archive", str(out), *c2]) == 0
    v = json.loads(capsys.readouterr().out)
    assert v["ok"] and v["mac"] == "mismatch" and v["store"] == "listed"
