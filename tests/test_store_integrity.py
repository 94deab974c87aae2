"""Integrity kept inside the store's transactions: a deleted or rolled-back counter, rows and
records put back from an older copy, a replayed attempt record, a change and its audit record
in one transaction (a failure or a SIGKILL between them), the pre-v3 seal migrated once, and
typed faults (a full disk at start is "disk full", not "corrupt")."""
import hashlib
import hmac
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from device.protect.core import enrol
from device.store.attempts import AttemptLimiter
from device.store.counter import FileCounter
from device.store.errors import (AuditChainBroken, StoreDiskFull, StoreRollback,
                                 TamperedError, classify)
from device.store.sealing import derive_key
from device.store.store import SCHEMA_VERSION, TemplateStore

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def key():
    return os.urandom(32)


@pytest.fixture
def feats():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 49, 16))
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _store(tmp_path, key, feats, name="t.db"):
    db = tmp_path / name
    with TemplateStore(db, device_key=key) as s:
        s.enrol("alice", [enrol(feats[0])])
        s.enrol("bob", [enrol(feats[1])])
    return db


def _copy(db: Path, to: Path, counter=True) -> Path:
    to.mkdir(parents=True, exist_ok=True)
    shutil.copy(db, to / db.name)
    if counter:
        shutil.copy(db.with_name(db.name + ".generation"), to / (db.name + ".generation"))
    return to / db.name


def _sql(db, *statements):
    c = sqlite3.connect(db)
    for q in statements:
        c.execute(*q) if isinstance(q, tuple) else c.execute(q)
    c.commit()
    c.close()


# --------------------------------------------------------------------------- rollback
def test_deleted_counter_is_detected_and_accepting_the_copy_is_audited(tmp_path, key, feats):
    db = _store(tmp_path, key, feats)
    os.unlink(tmp_path / "t.db.generation")
    with pytest.raises(StoreRollback, match="missing"):
        TemplateStore(db, device_key=key)
    with TemplateStore(db, device_key=key, allow_rollback=True) as s:
        g = s.accept_current(reason="counter partition replaced")
        rec = s.audit.records()[-1]
        assert rec.kind == "store_accepted" and "replaced" in rec.payload["reason"]
    with TemplateStore(db, device_key=key) as s:           # opens normally again
        assert s.generation == g and len(s.users()) == 2


def test_an_older_copy_of_the_database_is_a_rollback(tmp_path, key, feats):
    db = _store(tmp_path, key, feats)
    old = _copy(db, tmp_path / "old")                       # database + counter, at t1
    with TemplateStore(db, device_key=key) as s:
        s.set_enabled("bob", False)                         # the revocation to undo
    shutil.copy(old, db)
    with pytest.raises(StoreRollback, match="older copy"):
        TemplateStore(db, device_key=key)
    # what remains without a hardware counter: both files put back together open cleanly
    shutil.copy(old.with_name("t.db.generation"), tmp_path / "t.db.generation")
    with TemplateStore(db, device_key=key) as s:
        assert s.get_user("bob").enabled


def test_revoked_rows_and_their_old_tag_put_back_are_detected(tmp_path, key, feats):
    """The attack of issue 18 item 3: a revoked user's rows and the old content tag copied
    back into the current database (no seal file to delete any more)."""
    db = _store(tmp_path, key, feats)
    c = sqlite3.connect(db)
    rows = c.execute("SELECT * FROM templates WHERE user_id='bob'").fetchall()
    user = c.execute("SELECT * FROM users WHERE user_id='bob'").fetchone()
    tag = c.execute("SELECT value FROM meta WHERE name='content_tag'").fetchone()[0]
    c.close()
    with TemplateStore(db, device_key=key) as s:
        s.delete_user("bob")
    _sql(db, ("INSERT INTO users VALUES(?,?,?,?)", user),
         *[("INSERT INTO templates VALUES(?,?,?,?,?)", r) for r in rows],
         ("UPDATE meta SET value=? WHERE name='content_tag'", (tag,)))
    with pytest.raises(TamperedError, match="state"):
        TemplateStore(db, device_key=key)


def test_replayed_attempt_record_is_detected(tmp_path, key, feats):
    db = _store(tmp_path, key, feats)
    with TemplateStore(db, device_key=key) as s:
        lim = AttemptLimiter(store=s, terminal_max_failures=5)
        lim.record(False, now=1000)
        one = s.read_meta("attempts")
        for _ in range(4):
            lim.record(False, now=1000)
        assert not lim.check(now=1001).allowed             # 5 failures: locked out
        # in a running store, the next change refuses the replayed state ...
        s.conn.execute("UPDATE meta SET value=? WHERE name='attempts'", (one,))
        with pytest.raises(TamperedError, match="state"):
            lim.record(False, now=1002)
    # ... and so does the next open (the lockout is not reset to 1 failure)
    with pytest.raises(TamperedError, match="state"):
        TemplateStore(db, device_key=key)


def test_dropped_append_only_trigger_is_detected(tmp_path, key, feats):
    db = _store(tmp_path, key, feats)
    _sql(db, "DROP TRIGGER audit_no_delete")
    with pytest.raises(TamperedError, match="schema"):
        TemplateStore(db, device_key=key)


def test_counter_behind_after_a_crash_catches_up_and_a_torn_slot_is_survived(tmp_path, key,
                                                                             feats):
    class Lost:                         # the process died between COMMIT and counter write
        def describe(self):
            return "lost"

        def read(self):
            return None

        def advance(self, g):
            raise OSError("power cut")

    db = _store(tmp_path, key, feats)
    with TemplateStore(db, device_key=key, counter=Lost(), allow_rollback=True) as s:
        s.set_enabled("alice", False)
        g = s.generation
    counter = tmp_path / "t.db.generation"
    with TemplateStore(db, device_key=key) as s:            # behind: not a rollback
        assert s.generation == g
    with TemplateStore(db, device_key=key) as s:
        store_id = s.read_meta("store_id")
    fc = FileCounter(counter, derive_key(key, "template store generation counter"), store_id)
    assert fc.read() == g
    raw = bytearray(counter.read_bytes())
    newest = 0 if int.from_bytes(raw[24:32], "big") == g else 512
    raw[newest + 30] ^= 0xFF                                # a torn write of the newest slot
    counter.write_bytes(bytes(raw))
    assert fc.read() < g                                    # the older slot still vouches
    with TemplateStore(db, device_key=key) as s:
        assert s.generation == g and fc.read() == g


# --------------------------------------------------------------------------- one transaction
def test_a_failed_audit_record_undoes_the_change(tmp_path, key, feats, monkeypatch):
    db = _store(tmp_path, key, feats)
    s = TemplateStore(db, device_key=key)
    try:
        n0, g0 = len(s.audit.records()), s.generation

        def broken(*a, **k):
            raise RuntimeError("simulated failure between the change and its record")

        monkeypatch.setattr(s.audit, "append", broken)
        for change in (lambda: s.enrol("carol", [enrol(feats[2])]),
                       lambda: s.enrol("alice", [enrol(feats[2])], replace=True),
                       lambda: s.set_enabled("bob", False),
                       lambda: s.update_user("bob", label="x"),
                       lambda: s.delete_user("alice"),
                       lambda: s.add_templates("bob", [enrol(feats[2])])):
            with pytest.raises(RuntimeError, match="simulated"):
                change()
        monkeypatch.undo()
        assert [u.user_id for u in s.users()] == ["alice", "bob"]
        assert s.get_user("bob").enabled and s.get_user("alice").version == 1
        assert len(s.templates()) == 2 and len(s.audit.records()) == n0
        assert s.generation == g0 and s.verify() == 4
    finally:
        s.close()
    with TemplateStore(db, device_key=key) as s:
        kinds = [r.kind for r in s.audit.records()]
        assert kinds == ["enrol", "enrol"]


KILL_CHILD = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    sys.path.insert(0, {root!r})
    from device.protect.core import enrol
    from device.store.audit import AuditLog
    from device.store.store import TemplateStore
    x = np.random.default_rng(0).standard_normal((49, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    s = TemplateStore({db!r}, device_key=bytes.fromhex({key!r}))
    orig = AuditLog.append
    def slow(self, kind, **kw):
        if kind == {kind!r}:
            print("between", flush=True)     # the change is written, its record not yet
            time.sleep(30)
        return orig(self, kind, **kw)
    AuditLog.append = slow
    {op}
""")


@pytest.mark.parametrize("kind,op", [
    ("enrol", 's.enrol("carol", [enrol(x)])'),
    ("re_enrol", 's.enrol("alice", [enrol(x), enrol(x)], replace=True)'),
    ("user_disable", 's.set_enabled("bob", False)'),
    ("user_delete", 's.delete_user("alice")')])
def test_sigkill_between_a_change_and_its_record_keeps_neither(tmp_path, key, feats, kind, op):
    db = _store(tmp_path, key, feats)
    p = subprocess.Popen([sys.executable, "-c", KILL_CHILD.format(
        root=str(ROOT), db=str(db), key=key.hex(), kind=kind, op=op)],
        stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "between"
    p.send_signal(signal.SIGKILL)
    p.wait(10)
    with TemplateStore(db, device_key=key) as s:
        assert [u.user_id for u in s.users()] == ["alice", "bob"]
        assert s.get_user("bob").enabled and s.get_user("alice").version == 1
        assert len(s.templates()) == 2
        assert [r.kind for r in s.audit.records()] == ["enrol", "enrol"]


def test_audit_chain_is_verified_at_open(tmp_path, key, feats):
    db = _store(tmp_path, key, feats)
    _sql(db, "DROP TRIGGER audit_no_update",
         "UPDATE audit SET payload='{}' WHERE seq=1",
         "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit "
         "BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END")
    with pytest.raises(AuditChainBroken, match="record 1"):
        TemplateStore(db, device_key=key)
    # the gate does not start on it, and says why
    kp = tmp_path / "device.key"
    kp.write_bytes(key)
    kp.chmod(0o600)
    cfg = tmp_path / "p.toml"
    cfg.write_text(f'[paths]\nstore = "{db}"\ndevice_key = "{kp}"\ncreate_key = false\n')
    r = subprocess.run([sys.executable, "-m", "device.cli", "run", "--config", str(cfg),
                        "--limit", "1"], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode != 0 and "audit chain is broken" in r.stderr, r.stderr[-500:]


# --------------------------------------------------------------------------- migration
def _as_v2_with_seal(db: Path, key: bytes) -> Path:
    """What versions 1-2 left: no state record, schema 2, a whole-file seal at clean close."""
    _sql(db, "DELETE FROM meta WHERE name='state'", "PRAGMA user_version = 2")
    db.with_name(db.name + ".generation").unlink()
    seal = db.with_name(db.name + ".seal")
    seal.write_bytes(hmac.new(derive_key(key, "template store file"), db.read_bytes(),
                              hashlib.sha256).digest())
    return seal


def test_old_store_with_its_seal_migrates_once(tmp_path, key, feats):
    db = _store(tmp_path, key, feats)
    seal = _as_v2_with_seal(db, key)
    with TemplateStore(db, device_key=key) as s:
        assert s.schema_version == SCHEMA_VERSION and s.migrated_to == [3, 4]
        assert [u.user_id for u in s.users()] == ["alice", "bob"] and s.audit.verify() == 2
    assert not seal.exists() and (tmp_path / "t.db.generation").exists()
    with TemplateStore(db, device_key=key) as s:
        assert s.migrated_to == []
    # changed since the old software's clean close: refused, and said why
    db2 = _store(tmp_path, key, feats, "u.db")
    _as_v2_with_seal(db2, key)
    data = bytearray(db2.read_bytes())
    data[data.index(b"append-only") + 2] ^= 1
    db2.write_bytes(bytes(data))
    with pytest.raises(TamperedError, match="previous software"):
        TemplateStore(db2, device_key=key)
    # a seal the old software never fsync'd before a power cut: no better than none
    db3 = _store(tmp_path, key, feats, "v.db")
    _as_v2_with_seal(db3, key).write_bytes(b"")
    with TemplateStore(db3, device_key=key) as s:
        assert len(s.users()) == 2


def test_old_store_tampered_without_seal_is_not_vouched_for(tmp_path, key, feats):
    db = _store(tmp_path, key, feats)
    _as_v2_with_seal(db, key).unlink()
    _sql(db, "DELETE FROM templates WHERE user_id='bob'")
    with pytest.raises(TamperedError, match="tag"):
        TemplateStore(db, device_key=key)


# --------------------------------------------------------------------------- typed faults
def test_sqlite_and_os_errors_are_typed(tmp_path):
    db = tmp_path / "t.db"
    c = sqlite3.connect(db)
    c.execute("CREATE TABLE t(x)")
    c.execute("PRAGMA max_page_count = 2")
    with pytest.raises(sqlite3.OperationalError) as e:
        c.execute("INSERT INTO t VALUES(randomblob(100000))")
    assert isinstance(classify(e.value, db), StoreDiskFull)
    assert isinstance(classify(OSError(28, "No space left on device"), db), StoreDiskFull)
    db.write_bytes(b"not a database at all" * 100)
    with pytest.raises(TamperedError, match="not a readable database"):
        TemplateStore(db, device_key=os.urandom(32))


FULL_AT_START = textwrap.dedent("""
    set -e
    mount -t tmpfs -o size=512k tmpfs {mnt}
    cp -a {state}/. {mnt}/
    dd if=/dev/zero of={mnt}/filler bs=4k 2>/dev/null || true
    {python} -m device.cli store verify --config {cfg}
""")


def test_full_disk_at_start_is_reported_as_disk_full(tmp_path, key, feats):
    """A real full file system (a 512 KiB tmpfs in a private mount namespace): the store opens
    with "disk full" (StoreDiskFull), not "corrupted"."""
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "-rm", "true"], capture_output=True).returncode != 0:
        pytest.skip("no unprivileged mount namespace here (unshare -rm)")
    state = tmp_path / "state"
    state.mkdir()
    kp = state / "device.key"
    kp.write_bytes(key)
    kp.chmod(0o600)
    _store(state, key, feats)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    cfg = tmp_path / "p.toml"
    cfg.write_text(f'[paths]\nstore = "{mnt}/t.db"\ndevice_key = "{mnt}/device.key"\n'
                   f'create_key = false\n')
    script = FULL_AT_START.format(mnt=mnt, state=state, python=sys.executable, cfg=cfg)
    r = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert r.returncode == 1, r.stderr
    import json
    rep = json.loads(r.stdout.strip().splitlines()[-1])
    assert rep["error"] == "StoreDiskFull" and "disk full" in rep["detail"], rep
    assert "corrupt" not in rep["detail"]
