"""Sensor templates in the store (device/store/sensor_templates.py): sealed at rest, written
with their audit record, gone with their user, tag-checked, migrated into an old store,
carried by backups."""
import os
import sqlite3

import numpy as np
import pytest

import device.store.store as store_mod
from device.protect.core import enrol
from device.store import migrations
from device.store import sensor_templates as ST
from device.store.store import SCHEMA_VERSION, StoreError, TamperedError, TemplateStore

G, D = 49, 16


@pytest.fixture
def key():
    return os.urandom(32)


def _tmpl(seed=0):
    v = np.random.default_rng(seed).standard_normal((G, D))
    return enrol(v / np.linalg.norm(v, axis=-1, keepdims=True))


def _blob(seed):
    return np.random.default_rng(seed).bytes(4000)


def _enrol(s, uid, blobs, replace=False):
    with s.transaction():
        v = s.enrol(uid, [_tmpl()], replace=replace, audit={"sensor_templates": len(blobs)})
        ST.insert(s, uid, v, blobs)
    return v


def test_round_trip_sealed_at_rest_and_one_users_rows(tmp_path, key):
    db = tmp_path / "t.db"
    a, b, c = _blob(1), _blob(2), _blob(3)
    with TemplateStore(db, device_key=key) as s:
        assert s.schema_version == SCHEMA_VERSION == 4
        _enrol(s, "alice", [a, b])
        _enrol(s, "bob", [c])
        assert ST.read(s, "alice") == [a, b] and ST.read(s, "bob") == [c]
        assert ST.read(s, "alice", version=2) == [] and ST.read(s, "carol") == []
        s.checkpoint()
    raw = db.read_bytes()
    for blob in (a, b, c):
        assert blob[:32] not in raw and blob[-32:] not in raw
    with TemplateStore(db, device_key=key) as s:            # the tag checked at open
        assert ST.count(s) == 3 and s.verify() == 2 + 2 + 3


def test_writes_need_a_transaction_and_add_writes_its_audit_record(tmp_path, key):
    with TemplateStore(tmp_path / "t.db", device_key=key) as s:
        s.enrol("alice", [_tmpl()])
        with pytest.raises(StoreError, match="inside a store transaction"):
            ST.insert(s, "alice", 1, [_blob(1)])
        with pytest.raises(StoreError, match="kind"):
            with s.transaction():
                ST.insert(s, "alice", 1, [_blob(1)], kind="bones")
        with pytest.raises(StoreError, match="no user"):
            ST.add(s, "nobody", [_blob(1)])
        n = s.audit.verify()
        ST.add(s, "alice", [_blob(1)], audit={"operator": "op1"})
        assert s.audit.verify() == n + 1 and ST.count(s, "alice") == 1
        last = s.conn.execute("SELECT kind, payload FROM audit ORDER BY seq DESC LIMIT 1"
                              ).fetchone()
        assert last[0] == "sensor_templates_added" and '"sensor_templates":1' in last[1]


def test_delete_and_re_enrolment_remove_them(tmp_path, key):
    with TemplateStore(tmp_path / "t.db", device_key=key) as s:
        _enrol(s, "alice", [_blob(1), _blob(2)])
        _enrol(s, "bob", [_blob(3)])
        assert _enrol(s, "alice", [_blob(4)], replace=True) == 2
        assert ST.read(s, "alice") == [_blob(4)]
        s.delete_user("bob")
        assert ST.count(s) == 1 and ST.count(s, "bob") == 0
    with TemplateStore(tmp_path / "t.db", device_key=key) as s:
        s.verify()


def test_a_row_removed_or_moved_outside_the_store_is_caught(tmp_path, key):
    db = tmp_path / "t.db"
    with TemplateStore(db, device_key=key) as s:
        _enrol(s, "alice", [_blob(1)])
        _enrol(s, "bob", [_blob(2)])
    c = sqlite3.connect(db)
    c.execute("UPDATE sensor_templates SET user_id='bob' WHERE user_id='alice'")
    c.commit()
    c.close()
    with pytest.raises(TamperedError):                       # the tag, at open
        TemplateStore(db, device_key=key)
    db2 = tmp_path / "u.db"
    with TemplateStore(db2, device_key=key) as s:
        _enrol(s, "alice", [_blob(1)])
    c = sqlite3.connect(db2)
    c.execute("DELETE FROM sensor_templates")               # the check switched off?
    c.commit()
    c.close()
    with pytest.raises(TamperedError, match="sensor templates"):
        TemplateStore(db2, device_key=key)


def test_a_version_3_store_migrates_with_its_users(tmp_path, key, monkeypatch):
    db = tmp_path / "t.db"
    monkeypatch.setattr(store_mod, "migrate",
                        lambda c, store=None: migrations.migrate(c, 3, store))
    with TemplateStore(db, device_key=key) as s:
        assert s.schema_version == 3
        s.enrol("alice", [_tmpl()])
        s.enrol("bob", [_tmpl(1)], replace=False)
        s.delete_user("bob")
        assert ST.read(s, "alice") == [] and ST.count(s) == 0
    monkeypatch.undo()
    with TemplateStore(db, device_key=key) as s:
        assert s.migrated_to == [4] and s.schema_version == 4
        assert [u.user_id for u in s.users()] == ["alice"]
        ST.add(s, "alice", [_blob(5)])
        assert ST.read(s, "alice") == [_blob(5)]
    with TemplateStore(db, device_key=key) as s:
        assert s.migrated_to == [] and s.verify() == 1 + 1 + 1


def test_backup_and_restore_carry_them(tmp_path, key):
    with TemplateStore(tmp_path / "t.db", device_key=key) as s:
        _enrol(s, "alice", [_blob(1), _blob(2)])
        _enrol(s, "bob", [])
        assert s.backup(tmp_path / "b.pgb", passphrase="pw")["sensor_templates"] == 2
    raw = (tmp_path / "b.pgb").read_bytes()
    assert _blob(1)[:32] not in raw
    with TemplateStore(tmp_path / "new.db", device_key=os.urandom(32)) as s:
        _enrol(s, "carol", [_blob(9)])
        n = s.restore(tmp_path / "b.pgb", passphrase="pw")
        assert n == {"users": 2, "templates": 2, "sensor_templates": 2}
        assert ST.read(s, "alice") == [_blob(1), _blob(2)] and ST.read(s, "carol") == []
        assert ST.count(s) == 2


def test_a_running_reader_checks_the_rows_it_reads_against_the_kept_tags(tmp_path, key):
    """device/store/sensor_row_tags.py: store changes are followed (new rows tagged, gone rows
    dropped); rows removed or rewritten outside the store are refused while it runs."""
    from device.store.sensor_row_tags import prime, read_user
    db = tmp_path / "t.db"
    with TemplateStore(db, device_key=key) as s, TemplateStore(db, device_key=key) as admin:
        _enrol(s, "alice", [_blob(1), _blob(2)])
        _enrol(s, "bob", [_blob(3)])
        known = prime(s)
        rows, known = read_user(s, "alice", known)
        assert [b for _, _, b in rows] == [_blob(1), _blob(2)] and rows[0][:2] == (
            1, ST.KINDS[0])
        _enrol(admin, "carol", [_blob(4)])                  # another process's enrolment
        _enrol(admin, "bob", [_blob(5)], replace=True)      # and re-enrolment
        rows, known = read_user(s, "bob", known)
        assert [(v, b) for v, _, b in rows] == [(2, _blob(5))]
        assert read_user(s, "carol", known)[0][0][2] == _blob(4)
        assert read_user(s, "dave", known)[0] == []
        raw = sqlite3.connect(db)
        raw.execute("UPDATE sensor_templates SET sealed=(SELECT sealed FROM sensor_templates "
                    "WHERE user_id='bob') WHERE user_id='carol'")
        raw.execute("DELETE FROM sensor_templates WHERE user_id='alice' AND record_id="
                    "(SELECT MIN(record_id) FROM sensor_templates)")
        raw.commit()
        with pytest.raises(TamperedError, match="changed outside"):
            read_user(s, "carol", known)
        with pytest.raises(TamperedError, match="1 sensor templates where 2"):
            read_user(s, "alice", known)
        assert read_user(s, "bob", known)[0][0][2] == _blob(5)   # untouched: still served
        with pytest.raises(TamperedError):                 # a full re-read: the tag
            read_user(s, "bob", None)
        raw.close()
