"""The sealed template store: round trip, no plaintext, copied/corrupted files, row tampering,
kill -9 mid-enrolment, deletion, validity windows, re-enrolment, backup/restore, migrations.
Rollback, the state MAC, audit-in-the-same-transaction and faults: tests/test_store_integrity.py."""
import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from device.protect.core import ProtectConfig, enrol
from device.store.store import (SCHEMA_VERSION, StoreError, TamperedError, TemplateStore,
                                    User, WrongKeyError, migrate)

ROOT = Path(__file__).resolve().parent.parent
G, D = 49, 16


def unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@pytest.fixture
def key():
    return os.urandom(32)


@pytest.fixture
def feats():
    rng = np.random.default_rng(3)
    return unit(rng.standard_normal((4, G, D)))


def _fill(path, key, feats):
    with TemplateStore(path, device_key=key) as s:
        s.enrol("alice", [enrol(feats[0]), enrol(feats[0])], label="A")
        s.enrol("bob", [enrol(feats[1])])
    return path


def test_round_trip_and_no_plaintext_on_disk(tmp_path, key, feats):
    db = tmp_path / "t.db"
    t1, t2 = enrol(feats[0], ProtectConfig(fill="random")), enrol(feats[0])
    with TemplateStore(db, device_key=key) as s:
        assert s.enrol("alice", [t1, t2]) == 1
        got = s.templates("alice")
        assert [g[0] for g in got] == ["alice", "alice"] and got[0][2] == 1
        assert np.array_equal(got[0][3].data, t1.data) and np.array_equal(got[0][3].fill,
                                                                           t1.fill)
        assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s.conn.execute("PRAGMA synchronous").fetchone()[0] == 2      # FULL
        assert s.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        with pytest.raises(StoreError, match="protected templates only"):
            s.enrol("eve", [feats[2]])
        with pytest.raises(StoreError, match="already enrolled"):
            s.enrol("alice", [t1])
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    for arr in (feats[0], t1.data, t1.key, t2.data, t2.key):
        assert arr.astype("<f4").tobytes()[:32] not in raw
    assert b"alice" in raw            # ids are in the clear (associated data), nothing else


def test_round_trip_of_the_shipped_default(tmp_path, key, feats):
    """Key fill (the default) stores no fill array; it comes back from the key and mask."""
    from device.protect.defaults import DEFAULT_CONFIG
    t = enrol(feats[0], DEFAULT_CONFIG, importance=np.linspace(1, 2, G))
    with TemplateStore(tmp_path / "d.db", device_key=key) as s:
        s.enrol("carol", [t])
        got = s.templates("carol")[0][3]
    assert got.config == DEFAULT_CONFIG and np.array_equal(got.data, t.data)
    assert np.array_equal(got.mask, t.mask) and np.array_equal(got.fill, t.fill)


def test_copied_database_under_another_key_fails_clearly(tmp_path, key, feats):
    db = _fill(tmp_path / "t.db", key, feats)
    for with_counter in (True, False):
        d = tmp_path / f"copy{with_counter}"
        d.mkdir()
        (d / "t.db").write_bytes(db.read_bytes())
        if with_counter:
            (d / "t.db.generation").write_bytes((tmp_path / "t.db.generation").read_bytes())
        with pytest.raises(WrongKeyError, match="another device key"):
            TemplateStore(d / "t.db", device_key=os.urandom(32))


def test_a_changed_byte_of_any_record_fails_and_yields_nothing(tmp_path, key, feats):
    """Every byte that means something is covered: sealed rows (AES-GCM + content tag), meta
    records and schema (state MAC), audit records (chain). Free space carries nothing."""
    db = _fill(tmp_path / "t.db", key, feats)
    with TemplateStore(db, device_key=key) as s:
        s.set_enabled("bob", False)
        c = s.conn
        marks = [bytes(c.execute("SELECT nonce FROM templates LIMIT 1").fetchone()[0]),
                 bytes(c.execute("SELECT sealed FROM users WHERE user_id='bob'"
                                 ).fetchone()[0])[:12],
                 bytes(c.execute("SELECT value FROM meta WHERE name='content_tag'"
                                 ).fetchone()[0])[:12],
                 bytes(c.execute("SELECT value FROM meta WHERE name='audit_head'"
                                 ).fetchone()[0])[8:20],
                 b"user_disable", b"append-only"]
    data = db.read_bytes()
    counter = (tmp_path / "t.db.generation").read_bytes()
    positions = [data.index(m) + 40 if k == 0 else data.index(m) + 3
                 for k, m in enumerate(marks)] + [63, 100]      # user_version, page 1
    for k, pos in enumerate(positions):
        d = tmp_path / f"c{k}"
        d.mkdir()
        bad = bytearray(data)
        bad[pos] ^= 0x01
        (d / "t.db").write_bytes(bytes(bad))
        (d / "t.db.generation").write_bytes(counter)
        with pytest.raises(StoreError):
            TemplateStore(d / "t.db", device_key=key).templates()


def _sql(db, *statements):
    c = sqlite3.connect(db)
    for q in statements:
        c.execute(*q) if isinstance(q, tuple) else c.execute(q)
    c.commit()
    c.close()


def test_row_tampering_is_detected(tmp_path, key, feats):
    # 1. move alice's sealed template to bob (an attacker with SQL access)
    db = _fill(tmp_path / "t.db", key, feats)
    _sql(db, "UPDATE templates SET user_id='bob' WHERE record_id=1")
    with pytest.raises(TamperedError):
        TemplateStore(db, device_key=key)
    # 2. delete one template row
    db2 = _fill(tmp_path / "u.db", key, feats)
    _sql(db2, "DELETE FROM templates WHERE record_id=2")
    with pytest.raises(TamperedError, match="tag"):
        TemplateStore(db2, device_key=key)
    # 3. replay: bob is disabled, the attacker puts back his old (enabled) sealed row
    db3 = _fill(tmp_path / "v.db", key, feats)
    c = sqlite3.connect(db3)
    old = c.execute("SELECT rev, nonce, sealed FROM users WHERE user_id='bob'").fetchone()
    c.close()
    with TemplateStore(db3, device_key=key) as s:
        s.set_enabled("bob", False)
    _sql(db3, ("UPDATE users SET rev=?, nonce=?, sealed=? WHERE user_id='bob'", old))
    with pytest.raises(TamperedError):
        TemplateStore(db3, device_key=key)


CHILD = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    sys.path.insert(0, {root!r})
    from device.protect.core import enrol
    from device.store.store import TemplateStore
    key = bytes.fromhex({key!r})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((49, 16)); x /= np.linalg.norm(x, axis=1, keepdims=True)
    s = TemplateStore({db!r}, device_key=key)
    s.enrol("committed", [enrol(x) for _ in range(3)])
    orig = s._insert_template
    def slow(*a, **k):
        r = orig(*a, **k)
        print("inserted", flush=True)
        time.sleep(0.05)
        return r
    s._insert_template = slow
    print("ready", flush=True)
    s.enrol("half", [enrol(x) for _ in range(200)])
    print("done", flush=True)
""")


def test_kill_9_mid_enrolment_loses_nothing_committed(tmp_path, key):
    db = tmp_path / "k.db"
    p = subprocess.Popen([sys.executable, "-c", CHILD.format(root=str(ROOT), key=key.hex(),
                                                             db=str(db))],
                         stdout=subprocess.PIPE, text=True)
    seen = 0
    for line in p.stdout:
        if line.startswith("inserted"):
            seen += 1
            if seen == 5:                       # in the middle of the second enrolment
                p.send_signal(signal.SIGKILL)
                break
    p.wait(timeout=30)
    assert p.returncode == -signal.SIGKILL
    with TemplateStore(db, device_key=key) as s:
        assert [u.user_id for u in s.users()] == ["committed"]
        assert len(s.templates("committed")) == 3
        assert s.templates("half") == [] and s.get_user("half") is None
        assert s.count() == {"users": 1, "templates": 3}


def test_delete_removes_the_records_from_the_file(tmp_path, key, feats):
    db = _fill(tmp_path / "t.db", key, feats)
    with TemplateStore(db, device_key=key) as s:
        blobs = [bytes(r[0]) for r in s.conn.execute(
            "SELECT sealed FROM templates WHERE user_id='alice'")]
        assert s.delete_user("alice") == 2
        assert s.get_user("alice") is None and s.templates("alice") == []
        assert s.count() == {"users": 1, "templates": 1}
        with pytest.raises(StoreError):
            s.delete_user("alice")
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("t.db"))
    for b in blobs:
        assert b[16:48] not in raw
    with TemplateStore(db, device_key=key) as s:        # reopens fine, then vacuum is safe
        s.vacuum()
        assert len(s.templates()) == 1


def test_validity_windows_enable_and_gallery(tmp_path, key, feats):
    monday_9 = dt.datetime(2024, 1, 1, 9, 0).timestamp()        # a Monday
    monday_19 = dt.datetime(2024, 1, 1, 19, 0).timestamp()
    tuesday_2 = dt.datetime(2024, 1, 2, 2, 0).timestamp()
    u = User("x", schedule=[[0, "08:00", "18:00"], [0, "22:00", "03:00"]])
    assert u.active(monday_9) and not u.active(monday_19) and u.active(tuesday_2)
    assert not User("x", valid_until=monday_9).active(monday_19)
    assert not User("x", valid_from=monday_19).active(monday_9)
    assert not User("x", enabled=False).active(monday_9)
    cfg = ProtectConfig()
    with TemplateStore(tmp_path / "t.db", device_key=key) as s:
        s.enrol("day", [enrol(feats[0], cfg)], schedule=[[0, "08:00", "18:00"]])
        s.enrol("always", [enrol(feats[1], cfg)])
        s.enrol("off", [enrol(feats[2], cfg)], enabled=False)
        s.enrol("later", [enrol(feats[3], cfg)], valid_from=monday_19)
        w = np.full(G, 1 / G)
        assert sorted(s.gallery(cfg, w, when=monday_9).owners) == ["always", "day"]
        assert sorted(s.gallery(cfg, w, when=monday_19 + 1).owners) == ["always", "later"]
        s.set_enabled("off", True)
        assert "off" in s.gallery(cfg, w).owners
        with pytest.raises(StoreError):
            s.update_user("day", schedule=[[7, "08:00", "09:00"]])


def test_reenrolment_revokes_the_old_templates(tmp_path, key, feats):
    with TemplateStore(tmp_path / "t.db", device_key=key) as s:
        s.enrol("alice", [enrol(feats[0]), enrol(feats[0])])
        old = {r for _, r, _, _ in s.templates("alice")}
        assert s.enrol("alice", [enrol(feats[0])], replace=True) == 2
        got = s.templates("alice")
        assert len(got) == 1 and got[0][2] == 2 and got[0][1] not in old
        assert s.get_user("alice").version == 2
        s.add_templates("alice", [enrol(feats[0])])
        assert [v for _, _, v, _ in s.templates("alice")] == [2, 2]
        # re-enrolment replaces the templates only: a disabled user stays disabled
        s.update_user("alice", enabled=False, label="A", schedule=[[0, "08:00", "18:00"]])
        assert s.enrol("alice", [enrol(feats[0])], replace=True) == 3
        u = s.get_user("alice")
        assert not u.enabled and u.label == "A" and u.schedule == [[0, "08:00", "18:00"]]
        assert s.audit.records()[-1].payload["status"] == "disabled"
        s.enrol("alice", [enrol(feats[0])], replace=True, enabled=True)
        assert s.get_user("alice").enabled


def test_encrypted_backup_and_restore(tmp_path, key, feats):
    db = _fill(tmp_path / "t.db", key, feats)
    with TemplateStore(db, device_key=key) as s:
        want = {(u, t.data.tobytes()) for u, _, _, t in s.templates()}
        s.backup(tmp_path / "b.pgb", passphrase="correct horse")
        s.backup(tmp_path / "d.pgb")
    assert (tmp_path / "b.pgb").stat().st_mode & 0o077 == 0
    raw = (tmp_path / "b.pgb").read_bytes()
    assert feats[0].astype("<f4").tobytes()[:32] not in raw and b"alice" not in raw
    other = os.urandom(32)                                  # a replacement unit
    with TemplateStore(tmp_path / "new.db", device_key=other) as s:
        with pytest.raises(TamperedError, match="passphrase"):
            s.restore(tmp_path / "b.pgb", passphrase="wrong")
        with pytest.raises(TamperedError):                  # device-key backup of another unit
            s.restore(tmp_path / "d.pgb")
        assert s.restore(tmp_path / "b.pgb", passphrase="correct horse") == {
            "users": 2, "templates": 3, "sensor_templates": 0}
        assert {(u, t.data.tobytes()) for u, _, _, t in s.templates()} == want
        assert s.get_user("alice").label == "A"
    bad = bytearray(raw)
    bad[len(bad) // 2] ^= 1
    (tmp_path / "bad.pgb").write_bytes(bytes(bad))
    with TemplateStore(tmp_path / "new.db", device_key=other) as s:
        with pytest.raises(TamperedError):
            s.restore(tmp_path / "bad.pgb", passphrase="correct horse")
        assert s.count()["templates"] == 3                  # untouched by the failed restore
    with TemplateStore(db, device_key=key) as s:            # same unit, device-key backup
        s.delete_user("bob")
        s.restore(tmp_path / "d.pgb")
        assert s.count() == {"users": 2, "templates": 3}


def test_migrations_from_version_1(tmp_path, key, feats):
    db = tmp_path / "old.db"
    c = sqlite3.connect(db, isolation_level=None)
    assert migrate(c, target=1) == 1
    assert c.execute("SELECT name FROM sqlite_master WHERE name='audit'").fetchone() is None
    c.close()
    with TemplateStore(db, device_key=key) as s:
        assert s.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        s.enrol("alice", [enrol(feats[0])])
        s.audit.append("decision", decision="accept", user_id="alice")
        assert s.audit.verify() == 2                      # the enrolment's record + this one
    c = sqlite3.connect(db)
    c.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    c.commit()
    c.close()
    with pytest.raises(StoreError, match="newer"):
        TemplateStore(db, device_key=key)


def test_device_key_from_a_key_file(tmp_path, feats):
    kp = tmp_path / "keys" / "device.key"
    with TemplateStore(tmp_path / "t.db", key_path=kp) as s:
        s.enrol("alice", [enrol(feats[0])])
    assert kp.stat().st_mode & 0o777 == 0o600
    with TemplateStore(tmp_path / "t.db", key_path=kp, create=False) as s:
        assert len(s.templates()) == 1
    with pytest.raises(StoreError):
        TemplateStore(tmp_path / "t.db")                    # no key at all
