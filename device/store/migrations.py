"""Schema migrations of the template store (``PRAGMA user_version``), one transaction a step,
and the one-time check of a pre-v3 store's ``<db>.seal``.

    1  meta, users, templates
    2  audit (append-only: UPDATE and DELETE refused by triggers)
    3  integrity inside the database: the key check (new stores) and the state record
       (generation + MAC over the meta records and the schema, ``device.store.integrity``);
       the store's rows, content tag and audit chain are verified before the first state
       record vouches for them. The whole-file ``<db>.seal`` of versions 1-2 is retired:
       checked once (``check_legacy_seal``) and removed after this step.
    4  sensor templates (``device.store.sensor_templates``): their table and tag, the state
       record rewritten at the same generation

Each step re-reads the version inside its ``BEGIN IMMEDIATE``, so two processes opening an old
store at once migrate it once.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
from pathlib import Path

from device.store import integrity
from device.store.errors import StoreError, TamperedError

SCHEMA_VERSION = 4
KEY_CHECK = b"palmgate template store key check v1"


def _m1(c: sqlite3.Connection, store) -> None:
    c.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)")
    c.execute("CREATE TABLE users (user_id TEXT PRIMARY KEY, rev INTEGER NOT NULL, "
              "nonce BLOB NOT NULL, sealed BLOB NOT NULL)")
    c.execute("CREATE TABLE templates (record_id INTEGER PRIMARY KEY AUTOINCREMENT, "
              "user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE, "
              "version INTEGER NOT NULL, nonce BLOB NOT NULL, sealed BLOB NOT NULL)")
    c.execute("CREATE INDEX templates_user ON templates(user_id)")


def _m2(c: sqlite3.Connection, store) -> None:
    c.execute("CREATE TABLE audit (seq INTEGER PRIMARY KEY, ts REAL NOT NULL, "
              "kind TEXT NOT NULL, payload TEXT NOT NULL, prev BLOB NOT NULL, "
              "hash BLOB NOT NULL, mac BLOB NOT NULL)")
    c.execute("CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit "
              "BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END")
    c.execute("CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit "
              "BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END")


def _m3(c: sqlite3.Connection, store) -> None:
    if store is None:
        raise StoreError("schema step 3 needs the store's keys")
    if store._meta("key_check_nonce") is None:
        if c.execute("SELECT COUNT(*) FROM users").fetchone()[0]:
            raise TamperedError(f"template store {store.path} has records but no key check")
        store_id = os.urandom(16)
        n, s = store._seal(KEY_CHECK, b"palmgate/key-check|" + store_id)
        store._set_meta("store_id", store_id)
        store._set_meta("key_check_nonce", n)
        store._set_meta("key_check", s)
        store._set_meta("content_tag", bytes(32))
    else:
        store._check_tag()                  # nothing is vouched for unchecked
        store.audit.verify()
    integrity.write_state(c, store._k_state, 1)


def _m4(c: sqlite3.Connection, store) -> None:
    from device.store.sensor_templates import create
    create(c, store)


MIGRATIONS = {1: _m1, 2: _m2, 3: _m3, 4: _m4}      # version -> step that reaches it


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION, store=None) -> int:
    """Bring the schema to ``target`` one step at a time, each in its own transaction.
    Returns the version reached; ``store.migrated_to`` lists the steps this call made."""
    v = conn.execute("PRAGMA user_version").fetchone()[0]
    if v > SCHEMA_VERSION:
        raise StoreError(f"database schema {v} is newer than this software ({SCHEMA_VERSION})")
    while v < target:
        conn.execute("BEGIN IMMEDIATE")
        try:
            v = conn.execute("PRAGMA user_version").fetchone()[0]   # another process's step?
            if v < target:
                MIGRATIONS[v + 1](conn, store)
                conn.execute(f"PRAGMA user_version = {v + 1}")
                if store is not None:
                    store.migrated_to.append(v + 1)
                v += 1
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return v


# --------------------------------------------------------------------------- the old seal
def legacy_seal_path(db: Path) -> Path:
    return db.with_name(db.name + ".seal")


def check_legacy_seal(db: Path, file_key: bytes) -> Path | None:
    """Before this process opens ``db`` with SQLite (the caller makes sure it holds no
    connection to it: reading the file through another descriptor and closing it would drop
    that connection's locks): check a ``<db>.seal`` left by a clean close of versions 1-2
    once, as those versions did -- an HMAC of the whole file. Returns the seal's path (for
    the caller to remove once the store is open and migrated), or None.

    A seal of a store already at version 3 (a migration interrupted before it removed the
    seal) vouches for nothing and is just removed. An empty or short seal is a write the old
    software never fsync'd before a power cut: no better than no seal (a crash), which
    versions 1-2 accepted too. A full seal that does not match means the file changed
    since its last clean close: TamperedError, as before."""
    sp = legacy_seal_path(db)
    if not sp.exists() or not db.exists():
        return sp if sp.exists() else None
    seal = sp.read_bytes()
    h = hmac.new(file_key, digestmod=hashlib.sha256)
    with open(db, "rb") as f:
        header = f.read(100)
        h.update(header)
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    version = int.from_bytes(header[60:64], "big") if len(header) >= 64 else 0
    if version >= 3 or len(seal) != 32:
        return sp
    wal = db.with_name(db.name + "-wal")
    if wal.exists() and wal.stat().st_size:
        raise TamperedError(f"template store {db} has a write-ahead log that was added after "
                            f"its clean close (checked once, while upgrading from the "
                            f"whole-file seal {sp})")
    if not hmac.compare_digest(seal, h.digest()):
        raise TamperedError(
            f"template store {db} was modified outside the store since its last clean close "
            f"under the previous software, or was sealed under another device key (checked "
            f"once, while upgrading from the whole-file seal {sp}). If the unit lost power "
            f"right after that close, the old seal may be stale: restore a backup, or move "
            f"{sp.name} away to accept the file as it is (every record is still checked)")
    return sp


def drop_legacy_seal(sp: Path | None) -> None:
    if sp is None:
        return
    try:
        sp.unlink()
    except FileNotFoundError:
        return
    try:
        fd = os.open(sp.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
