"""Template store on SQLite: every record sealed with AES-256-GCM under the device key.

File layout (schema version in ``PRAGMA user_version``, upgraded by ``MIGRATIONS``):

    meta(name, value)                      store id, key check, content tag, attempt state
    users(user_id, rev, nonce, sealed)     sealed JSON: enabled, validity, weekly windows,
                                           template version; AD = user id + rev
    templates(record_id, user_id, version, nonce, sealed)
                                           sealed protected template (encrypted cells, key,
                                           mask, fill); AD = user id + record id + version
    audit(seq, ...)                        append-only chained log (device.store.audit)

- WAL journal, ``synchronous=FULL``, foreign keys, ``secure_delete`` (deleted rows are
  overwritten, so a deleted template is gone from the file, not flagged), ``wal_checkpoint
  (TRUNCATE)`` after deletes; ``vacuum()`` rebuilds the file.
- Keys: HKDF-SHA256 of the 32-byte device key (``device.store.keys.load_device_key``) per purpose.
  A fresh 96-bit nonce per sealed record. Nothing is written in the clear but ids, versions
  and nonces; no plaintext feature is ever given to the store.
- Integrity: a key-check record (a copied file under another device key fails at once, with
  a message that says so); a keyed multiset tag over every sealed row (a deleted, added or
  replayed row fails the open); ``PRAGMA quick_check``; and at a clean close an HMAC of the
  whole file in ``<db>.seal`` (removed while the store is open), so any changed byte of a
  cleanly closed file fails the open. After a crash (no ``.seal``) the open relies on the
  per-record checks; SQLite's WAL keeps every committed transaction and none half-done.
- One transaction per enrolment: a user and all of their templates appear together or not
  at all. Re-enrolment replaces the templates under a new version (revocation); backups are
  one AES-GCM file under a passphrase (scrypt) or under the device key.
"""
from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import hmac
import json
import os
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from device.protect.core import ProtectedTemplate

SCHEMA_VERSION = 2
_KEY_CHECK = b"palmgate template store key check v1"


class StoreError(RuntimeError):
    """The template store cannot be used (missing key, bad file, bad argument)."""


class WrongKeyError(StoreError):
    """The database was sealed under another device key (e.g. copied off another unit)."""


class TamperedError(StoreError):
    """The database (or a backup) was changed outside the store or is corrupted."""


def derive_key(device_key: bytes, purpose: str) -> bytes:
    if not isinstance(device_key, (bytes, bytearray)) or len(device_key) != 32:
        raise StoreError("the device key must be 32 bytes")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"palmgate",
                info=f"palmgate {purpose} v1".encode()).derive(bytes(device_key))


# --------------------------------------------------------------------------- users
@dataclass
class User:
    """An enrolled person. ``schedule``: weekly windows ``[weekday, "HH:MM", "HH:MM"]``
    (weekday 0 = Monday, local time; an end before the start runs past midnight); empty =
    any time. ``valid_from``/``valid_until``: UNIX times or None."""

    user_id: str
    enabled: bool = True
    valid_from: float | None = None
    valid_until: float | None = None
    schedule: list = field(default_factory=list)
    version: int = 0
    label: str = ""

    def active(self, when: float | None = None) -> bool:
        """Whether the user may pass at ``when`` (now by default)."""
        when = time.time() if when is None else when
        if not self.enabled:
            return False
        if self.valid_from is not None and when < self.valid_from:
            return False
        if self.valid_until is not None and when >= self.valid_until:
            return False
        if not self.schedule:
            return True
        t = _dt.datetime.fromtimestamp(when)
        minute = t.hour * 60 + t.minute
        for day, start, end in self.schedule:
            s, e = _minutes(start), _minutes(end)
            if s <= e:
                if t.weekday() == day and s <= minute < e:
                    return True
            else:  # runs past midnight into the next day
                if (t.weekday() == day and minute >= s) or \
                        (t.weekday() == (day + 1) % 7 and minute < e):
                    return True
        return False


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    v = int(h) * 60 + int(m)
    if not 0 <= v <= 24 * 60:
        raise StoreError(f"bad time of day {hhmm!r}")
    return v


def _check_schedule(schedule) -> list:
    out = []
    for w in schedule or []:
        day, start, end = w
        if not 0 <= int(day) <= 6:
            raise StoreError(f"weekday must be 0 (Monday) .. 6, got {day}")
        _minutes(start), _minutes(end)
        out.append([int(day), str(start), str(end)])
    return out


# --------------------------------------------------------------------------- migrations
def _m1(c: sqlite3.Connection) -> None:
    c.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)")
    c.execute("CREATE TABLE users (user_id TEXT PRIMARY KEY, rev INTEGER NOT NULL, "
              "nonce BLOB NOT NULL, sealed BLOB NOT NULL)")
    c.execute("CREATE TABLE templates (record_id INTEGER PRIMARY KEY AUTOINCREMENT, "
              "user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE, "
              "version INTEGER NOT NULL, nonce BLOB NOT NULL, sealed BLOB NOT NULL)")
    c.execute("CREATE INDEX templates_user ON templates(user_id)")


def _m2(c: sqlite3.Connection) -> None:
    c.execute("CREATE TABLE audit (seq INTEGER PRIMARY KEY, ts REAL NOT NULL, "
              "kind TEXT NOT NULL, payload TEXT NOT NULL, prev BLOB NOT NULL, "
              "hash BLOB NOT NULL, mac BLOB NOT NULL)")
    c.execute("CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit "
              "BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END")
    c.execute("CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit "
              "BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END")


MIGRATIONS = {1: _m1, 2: _m2}      # version -> step that reaches it


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Bring the schema to ``target`` one step at a time, each in its own transaction."""
    v = conn.execute("PRAGMA user_version").fetchone()[0]
    if v > SCHEMA_VERSION:
        raise StoreError(f"database schema {v} is newer than this software ({SCHEMA_VERSION})")
    while v < target:
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[v + 1](conn)
            conn.execute(f"PRAGMA user_version = {v + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        v += 1
    return v


# --------------------------------------------------------------------------- the store
class TemplateStore:
    """``TemplateStore(path, device_key=...)`` or ``TemplateStore(path, key_path=...)``."""

    def __init__(self, path, device_key: bytes | None = None, key_path=None,
                 create: bool = True):
        self.path = Path(path)
        if device_key is None:
            if key_path is None:
                raise StoreError("the template store needs the device key (device_key= or "
                                 "key_path=)")
            from device.store.keys import load_device_key   # lazily: the key file lives on the unit
            device_key = load_device_key(key_path, create=create)
        self._k_seal = derive_key(device_key, "template store seal")
        self._k_tag = derive_key(device_key, "template store tag")
        self._k_file = derive_key(device_key, "template store file")
        self._k_backup = derive_key(device_key, "template store backup")
        self.audit_key = derive_key(device_key, "audit log")
        self._aead = AESGCM(self._k_seal)
        existed = self.path.exists()
        if not existed and not create:
            raise StoreError(f"template store not found: {self.path}")
        self.conn = None
        try:
            self.conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=30)
            c = self.conn
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA synchronous=FULL")
            c.execute("PRAGMA foreign_keys=ON")
            c.execute("PRAGMA secure_delete=ON")
            ok = c.execute("PRAGMA quick_check").fetchone()[0]
            if ok != "ok":
                raise TamperedError(f"template store {self.path} is corrupted: {ok}")
            if c.execute("PRAGMA user_version").fetchone()[0] >= 1:
                self._check_key()                 # read-only: a copied file stops here
            self._check_seal_file(existed)        # then any byte changed since a clean close
            migrate(c)
            if self._meta("key_check_nonce") is None:
                self._init_key()
            self.verify()
        except sqlite3.DatabaseError as e:
            self._abort()
            raise TamperedError(f"template store {self.path} is not a readable database "
                                f"(corrupted or not a PalmGate store): {e}") from None
        except BaseException:
            self._abort()
            raise
        from device.store.audit import AuditLog
        self.audit = AuditLog(self.conn, self.audit_key)

    def _abort(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    # ------------------------------------------------------------------ file seal
    @property
    def _seal_path(self) -> Path:
        return self.path.with_name(self.path.name + ".seal")

    def _file_mac(self) -> bytes:
        h = hmac.new(self._k_file, digestmod=hashlib.sha256)
        with open(self.path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.digest()

    def _check_seal_file(self, existed: bool) -> None:
        sp = self._seal_path
        if existed and sp.exists():
            wal = self.path.with_name(self.path.name + "-wal")
            if wal.exists() and wal.stat().st_size:
                raise TamperedError(f"template store {self.path} has a write-ahead log that "
                                    f"was added after its clean close")
            if not hmac.compare_digest(sp.read_bytes(), self._file_mac()):
                raise TamperedError(
                    f"template store {self.path} was modified outside the store since its "
                    f"last clean close, or was sealed under another device key")
        if sp.exists():
            sp.unlink()     # open for writing: only a clean close writes it again

    def close(self) -> None:
        """Checkpoint the WAL into the file and seal the whole file (``<db>.seal``)."""
        if getattr(self, "conn", None) is None:
            return
        self.verify()
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.conn.close()
        self.conn = None
        # SQLite removes the -wal and -shm files when its last connection closes; if they
        # are still there, another process (the running gate, while ``palmgate users ...``
        # closes) has the store open: unlinking them would cut that connection off from
        # its log, and a seal now would be stale at once. The last one to close seals.
        if self.path.with_name(self.path.name + "-wal").exists():
            return
        tmp = self._seal_path.with_suffix(".tmp")
        tmp.write_bytes(self._file_mac())
        os.replace(tmp, self._seal_path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ sealing
    def _seal(self, plain: bytes, ad: bytes) -> tuple[bytes, bytes]:
        nonce = os.urandom(12)
        return nonce, self._aead.encrypt(nonce, plain, ad)

    def _open(self, nonce: bytes, sealed: bytes, ad: bytes, what: str) -> bytes:
        try:
            return self._aead.decrypt(nonce, sealed, ad)
        except InvalidTag:
            raise TamperedError(f"{what} in {self.path} failed authentication: the file was "
                                f"changed or damaged") from None

    @staticmethod
    def _ad_user(user_id: str, rev: int) -> bytes:
        return f"palmgate/user|{user_id}|{rev}".encode()

    @staticmethod
    def _ad_template(user_id: str, record_id: int, version: int) -> bytes:
        return f"palmgate/template|{user_id}|{record_id}|{version}".encode()

    def _row_tag(self, kind: str, ident: str, version: int, nonce: bytes,
                 sealed: bytes) -> int:
        d = hashlib.sha256(nonce + sealed).digest()
        msg = f"{kind}|{ident}|{version}|".encode() + d
        return int.from_bytes(hmac.new(self._k_tag, msg, hashlib.sha256).digest(), "big")

    def _meta(self, name: str) -> bytes | None:
        r = self.conn.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        return None if r is None else bytes(r[0])

    def _set_meta(self, name: str, value: bytes) -> None:
        self.conn.execute("INSERT INTO meta(name, value) VALUES(?, ?) ON CONFLICT(name) "
                          "DO UPDATE SET value=excluded.value", (name, value))

    def _tag_update(self, delta: int) -> None:
        cur = int.from_bytes(self._meta("content_tag") or bytes(32), "big")
        self._set_meta("content_tag", (cur ^ delta).to_bytes(32, "big"))

    def _init_key(self) -> None:
        if self.conn.execute("SELECT COUNT(*) FROM users").fetchone()[0]:
            raise TamperedError(f"template store {self.path} has records but no key check")
        store_id = os.urandom(16)
        n, s = self._seal(_KEY_CHECK, b"palmgate/key-check|" + store_id)
        with self._tx():
            self._set_meta("store_id", store_id)
            self._set_meta("key_check_nonce", n)
            self._set_meta("key_check", s)
            self._set_meta("content_tag", bytes(32))

    def _check_key(self) -> None:
        nonce = self._meta("key_check_nonce")
        if nonce is None:
            if self.conn.execute("SELECT COUNT(*) FROM users").fetchone()[0]:
                raise TamperedError(f"template store {self.path} has records but no key check")
            return
        store_id = self._meta("store_id") or b""
        try:
            ok = self._aead.decrypt(nonce, self._meta("key_check") or b"",
                                    b"palmgate/key-check|" + store_id) == _KEY_CHECK
        except InvalidTag:
            ok = False
        if not ok:
            raise WrongKeyError(
                f"template store {self.path} was sealed under another device key (a database "
                f"copied from another unit, or the key file was replaced); it yields nothing")

    def verify(self) -> int:
        """Recompute the keyed tag over every sealed row; returns the number of rows."""
        acc, n = 0, 0
        for uid, rev, nonce, sealed in self.conn.execute(
                "SELECT user_id, rev, nonce, sealed FROM users"):
            acc ^= self._row_tag("U", uid, rev, bytes(nonce), bytes(sealed))
            n += 1
        for rid, uid, ver, nonce, sealed in self.conn.execute(
                "SELECT record_id, user_id, version, nonce, sealed FROM templates"):
            acc ^= self._row_tag("T", f"{uid}|{rid}", ver, bytes(nonce), bytes(sealed))
            n += 1
        want = int.from_bytes(self._meta("content_tag") or bytes(32), "big")
        if acc != want:
            raise TamperedError(f"template store {self.path}: the set of sealed records does "
                                f"not match its tag (rows added, removed, replayed or changed)")
        return n

    class _Tx:
        def __init__(self, conn):
            self.conn = conn

        def __enter__(self):
            self.conn.execute("BEGIN IMMEDIATE")

        def __exit__(self, et, e, tb):
            self.conn.execute("COMMIT" if et is None else "ROLLBACK")

    def _tx(self):
        return self._Tx(self.conn)

    # ------------------------------------------------------------------ users
    def _read_user_row(self, user_id: str):
        return self.conn.execute("SELECT rev, nonce, sealed FROM users WHERE user_id=?",
                                 (user_id,)).fetchone()

    def get_user(self, user_id: str) -> User | None:
        r = self._read_user_row(user_id)
        if r is None:
            return None
        rev, nonce, sealed = r
        d = json.loads(self._open(bytes(nonce), bytes(sealed), self._ad_user(user_id, rev),
                                  f"user {user_id!r}"))
        if d.get("user_id") != user_id:
            raise TamperedError(f"user record {user_id!r} holds another user's data")
        return User(**{k: d[k] for k in User.__dataclass_fields__ if k in d})

    def users(self) -> list[User]:
        ids = [r[0] for r in self.conn.execute("SELECT user_id FROM users ORDER BY user_id")]
        return [self.get_user(u) for u in ids]

    def _write_user(self, user: User) -> None:
        """Inside a transaction: replace the user's sealed row (rev + 1)."""
        old = self._read_user_row(user.user_id)
        rev = 0 if old is None else old[0] + 1
        if old is not None:
            self._tag_update(self._row_tag("U", user.user_id, old[0], bytes(old[1]),
                                           bytes(old[2])))
        plain = json.dumps(asdict(user), sort_keys=True).encode()
        nonce, sealed = self._seal(plain, self._ad_user(user.user_id, rev))
        self.conn.execute("INSERT INTO users(user_id, rev, nonce, sealed) VALUES(?,?,?,?) "
                          "ON CONFLICT(user_id) DO UPDATE SET rev=excluded.rev, "
                          "nonce=excluded.nonce, sealed=excluded.sealed",
                          (user.user_id, rev, nonce, sealed))
        self._tag_update(self._row_tag("U", user.user_id, rev, nonce, sealed))

    def _insert_template(self, user_id: str, version: int, tmpl: ProtectedTemplate) -> int:
        cur = self.conn.execute("INSERT INTO templates(user_id, version, nonce, sealed) "
                                "VALUES(?, ?, zeroblob(12), zeroblob(0))", (user_id, version))
        rid = cur.lastrowid
        nonce, sealed = self._seal(tmpl.to_bytes(), self._ad_template(user_id, rid, version))
        self.conn.execute("UPDATE templates SET nonce=?, sealed=? WHERE record_id=?",
                          (nonce, sealed, rid))
        self._tag_update(self._row_tag("T", f"{user_id}|{rid}", version, nonce, sealed))
        return rid

    def _delete_templates(self, user_id: str) -> int:
        rows = self.conn.execute("SELECT record_id, version, nonce, sealed FROM templates "
                                 "WHERE user_id=?", (user_id,)).fetchall()
        for rid, ver, nonce, sealed in rows:
            self._tag_update(self._row_tag("T", f"{user_id}|{rid}", ver, bytes(nonce),
                                           bytes(sealed)))
        self.conn.execute("DELETE FROM templates WHERE user_id=?", (user_id,))
        return len(rows)

    def enrol(self, user_id: str, templates: list[ProtectedTemplate], *,
              replace: bool = False, enabled: bool = True, valid_from: float | None = None,
              valid_until: float | None = None, schedule=None, label: str = "") -> int:
        """Enrol a user with one or more protected templates, in one transaction. An existing
        user is refused unless ``replace`` (re-enrolment: the old templates are deleted and
        the new ones get the next version -- the way to revoke). Returns the version."""
        if not templates:
            raise StoreError("enrolment needs at least one template")
        if not isinstance(user_id, str) or not user_id or "|" in user_id:
            raise StoreError("user id must be a non-empty string without '|'")
        for t in templates:
            if not isinstance(t, ProtectedTemplate):
                raise StoreError("the store takes protected templates only, never features")
        with self._tx():
            old = self._read_user_row(user_id)
            if old is not None and not replace:
                raise StoreError(f"user {user_id!r} is already enrolled (use replace=True "
                                 f"to re-enrol)")
            version = 1
            if old is not None:
                version = self.get_user(user_id).version + 1
                self._delete_templates(user_id)
            user = User(user_id, enabled, valid_from, valid_until, _check_schedule(schedule),
                        version, label)
            self._write_user(user)
            for t in templates:
                self._insert_template(user_id, version, t)
        return version

    def add_templates(self, user_id: str, templates: list[ProtectedTemplate]) -> list[int]:
        """More templates for an enrolled user, under the current version."""
        with self._tx():
            user = self.get_user(user_id)
            if user is None:
                raise StoreError(f"no user {user_id!r}")
            return [self._insert_template(user_id, user.version, t) for t in templates]

    def update_user(self, user_id: str, **changes) -> User:
        """Change ``enabled``, ``valid_from``, ``valid_until``, ``schedule`` or ``label``."""
        allowed = {"enabled", "valid_from", "valid_until", "schedule", "label"}
        if set(changes) - allowed:
            raise StoreError(f"cannot change {sorted(set(changes) - allowed)}")
        with self._tx():
            user = self.get_user(user_id)
            if user is None:
                raise StoreError(f"no user {user_id!r}")
            if "schedule" in changes:
                changes["schedule"] = _check_schedule(changes["schedule"])
            for k, v in changes.items():
                setattr(user, k, v)
            self._write_user(user)
        return user

    def set_enabled(self, user_id: str, enabled: bool) -> User:
        return self.update_user(user_id, enabled=bool(enabled))

    def delete_user(self, user_id: str) -> int:
        """Delete a user and their templates (rows overwritten: secure_delete), then fold the
        WAL into the file so no old page survives there. Returns the templates removed."""
        with self._tx():
            old = self._read_user_row(user_id)
            if old is None:
                raise StoreError(f"no user {user_id!r}")
            n = self._delete_templates(user_id)
            self._tag_update(self._row_tag("U", user_id, old[0], bytes(old[1]),
                                           bytes(old[2])))
            self.conn.execute("DELETE FROM users WHERE user_id=?", (user_id,))
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return n

    # ------------------------------------------------------------------ split mode
    def split_pending(self) -> dict:
        """Split-mode deletes that a node has not yet confirmed: {user_id: {"nodes":
        [roles still to apply it], "since": ts, ...}} (one sealed meta record; the gate
        retries them before any other job on its next connection to the nodes)."""
        raw = self._meta("split_pending")
        if raw is None:
            return {}
        plain = self._open(raw[:12], raw[12:], self._ad_split_pending(),
                           "split pending-delete record")
        return json.loads(plain)

    def update_split_pending(self, change) -> dict:
        """Read, change and write the pending deletes in one transaction (the gate and a
        ``palmgate users delete`` in another process may both be at it): ``change(dict)``
        edits the dict in place or returns a new one. Returns what was written."""
        with self._tx():
            cur = self.split_pending()
            new = change(cur)
            new = cur if new is None else new
            nonce, sealed = self._seal(json.dumps(new, sort_keys=True).encode(),
                                       self._ad_split_pending())
            self._set_meta("split_pending", nonce + sealed)
        return new

    def _ad_split_pending(self) -> bytes:
        return b"palmgate/split-pending|" + (self._meta("store_id") or b"")

    def vacuum(self) -> None:
        """Rebuild the file (drops free pages); safe at any time."""
        self.conn.execute("VACUUM")
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # ------------------------------------------------------------------ templates
    def templates(self, user_id: str | None = None):
        """[(user_id, record_id, version, ProtectedTemplate)] -- every record authenticated
        before any is returned."""
        q = "SELECT record_id, user_id, version, nonce, sealed FROM templates"
        args: tuple = ()
        if user_id is not None:
            q += " WHERE user_id=?"
            args = (user_id,)
        out = []
        for rid, uid, ver, nonce, sealed in self.conn.execute(q + " ORDER BY record_id", args):
            blob = self._open(bytes(nonce), bytes(sealed), self._ad_template(uid, rid, ver),
                              f"template record {rid}")
            out.append((uid, rid, ver, ProtectedTemplate.from_bytes(blob)))
        return out

    def count(self) -> dict:
        return {"users": self.conn.execute("SELECT COUNT(*) FROM users").fetchone()[0],
                "templates": self.conn.execute("SELECT COUNT(*) FROM templates").fetchone()[0]}

    def gallery(self, config, weights, when: float | None = None, **kw):
        """A ``ProtectedGallery`` of the templates of users active at ``when`` (all enabled
        users when ``when`` is None) made with ``config``; the owner of each is the user id."""
        from device.protect.gallery import ProtectedGallery
        gal = ProtectedGallery(config, weights, **kw)
        users = {u.user_id: u for u in self.users()}
        for uid, _, ver, t in self.templates():
            u = users[uid]
            if ver != u.version or t.config != config:
                continue
            if (when is None and u.enabled) or (when is not None and u.active(when)):
                gal.add(uid, t)
        return gal

    # ------------------------------------------------------------------ backup
    def backup(self, path, passphrase: bytes | str | None = None) -> dict:
        """Write an encrypted backup (AES-256-GCM over the whole payload). With a passphrase
        the key is scrypt(passphrase) and any unit can restore it; without, the key comes
        from this unit's device key."""
        header = {"format": "palmgate-template-backup", "v": 1, "created": time.time(),
                  "schema": SCHEMA_VERSION}
        if passphrase is not None:
            salt = os.urandom(16)
            header.update(kdf="scrypt", salt=base64.b64encode(salt).decode(), n=2 ** 15, r=8,
                          p=1)
            key = _scrypt(passphrase, salt, 2 ** 15, 8, 1)
        else:
            header["kdf"] = "device"
            key = self._k_backup
        payload = {"users": [asdict(u) for u in self.users()],
                   "templates": [{"user_id": uid, "version": ver,
                                  "template": base64.b64encode(t.to_bytes()).decode()}
                                 for uid, _, ver, t in self.templates()]}
        head = json.dumps(header, sort_keys=True).encode()
        nonce = os.urandom(12)
        body = AESGCM(key).encrypt(nonce, json.dumps(payload).encode(), head)
        blob = len(head).to_bytes(4, "big") + head + nonce + body
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, blob)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return {"users": len(payload["users"]), "templates": len(payload["templates"])}

    def restore(self, path, passphrase: bytes | str | None = None) -> dict:
        """Replace the whole store's content with a backup, in one transaction, re-sealed
        under this unit's device key."""
        blob = Path(path).read_bytes()
        try:
            n = int.from_bytes(blob[:4], "big")
            head = blob[4:4 + n]
            header = json.loads(head)
            nonce, body = blob[4 + n:16 + n], blob[16 + n:]
        except (ValueError, json.JSONDecodeError):
            raise TamperedError(f"{path} is not a PalmGate template backup") from None
        if header.get("format") != "palmgate-template-backup":
            raise TamperedError(f"{path} is not a PalmGate template backup")
        if header["kdf"] == "scrypt":
            if passphrase is None:
                raise StoreError("this backup needs its passphrase")
            key = _scrypt(passphrase, base64.b64decode(header["salt"]), header["n"],
                          header["r"], header["p"])
        else:
            key = self._k_backup
        try:
            payload = json.loads(AESGCM(key).decrypt(nonce, body, head))
        except InvalidTag:
            raise TamperedError(f"backup {path} failed authentication: wrong passphrase or "
                                f"device key, or the file was changed") from None
        with self._tx():
            for uid in [r[0] for r in self.conn.execute("SELECT user_id FROM users")]:
                old = self._read_user_row(uid)
                self._delete_templates(uid)
                self._tag_update(self._row_tag("U", uid, old[0], bytes(old[1]), bytes(old[2])))
                self.conn.execute("DELETE FROM users WHERE user_id=?", (uid,))
            for u in payload["users"]:
                self._write_user(User(**u))
            for t in payload["templates"]:
                self._insert_template(t["user_id"], t["version"], ProtectedTemplate.from_bytes(
                    base64.b64decode(t["template"])))
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return {"users": len(payload["users"]), "templates": len(payload["templates"])}


def _scrypt(passphrase, salt: bytes, n: int, r: int, p: int) -> bytes:
    pw = passphrase.encode() if isinstance(passphrase, str) else bytes(passphrase)
    return hashlib.scrypt(pw, salt=salt, n=n, r=r, p=p, maxmem=2 ** 27, dklen=32)
