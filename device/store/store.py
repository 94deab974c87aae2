"""Template store on SQLite: every record sealed with AES-256-GCM under the device key, every
change written together with its audit record and the store's integrity state, in one
transaction.

File layout (schema version in ``PRAGMA user_version``, upgraded by
``device.store.migrations``):

    meta(name, value)                      store id, key check, content tag, audit head,
                                           attempt state, pending split deletes, and the
                                           state record (generation + MAC over all of them)
    users(user_id, rev, nonce, sealed)     sealed JSON: enabled, validity, weekly windows,
                                           template version; AD = user id + rev
    templates(record_id, user_id, version, nonce, sealed)
                                           sealed protected template (encrypted cells, key,
                                           mask, fill); AD = user id + record id + version
    audit(seq, ...)                        append-only chained log (device.store.audit)
    sensor_templates(...)                  sealed sensor features (device.store.sensor_templates)

- One writer at a time through SQLite's own locking only: WAL, ``synchronous=FULL``, a busy
  timeout, ``BEGIN IMMEDIATE`` for every change. No descriptor on the database file (or its
  -wal/-shm) is ever opened outside SQLite while a connection is open: closing one would drop
  every POSIX lock the process holds on it, and another process could then reset the WAL
  under this one (../shared/FINDINGS.md, "SQLite and a second descriptor"). The running gate
  and ``palmgate users|enroll|audit|status`` in other processes share the file this way;
  the gate sees their commits through ``PRAGMA data_version``.
- ``transaction()``: BEGIN IMMEDIATE; check the state record's MAC (a state changed outside
  the store stops the change); the change and its audit record; the next generation and its
  MAC; COMMIT; then the generation counter outside the database (``device.store.counter``).
  Each method that changes users or templates writes its own audit record (``audit=``: extra
  fields such as the terminal or the operator) inside that transaction, so no change is ever
  saved without its record, nor a record without its change.
- Opening checks: ``quick_check``; the key check (a file copied from another unit fails
  with ``WrongKeyError``); the content tag over every sealed row; the state MAC; the audit
  chain; the generation against the counter (``StoreRollback``). A full disk, an I/O error
  or a lock held too long are reported as such (``device.store.errors.classify``), never as
  corruption.
- ``secure_delete`` (deleted rows are overwritten) and a WAL checkpoint after deletes, so a
  deleted template is gone from the file; ``vacuum()`` rebuilds the file.
- Keys: HKDF-SHA256 of the 32-byte device key per purpose; a fresh 96-bit nonce per sealed
  record; nothing in the clear but ids, versions and nonces; no plaintext feature is ever
  given to the store. Backups: ``device.store.backup``.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
from dataclasses import asdict
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from device.protect.core import ProtectedTemplate
from device.store import integrity, sensor_templates
from device.store.errors import (StoreBusy, StoreDiskFull, StoreError, StoreRollback,
                                 TamperedError, WrongKeyError, classify)
from device.store.migrations import (KEY_CHECK, SCHEMA_VERSION, check_legacy_seal,
                                     drop_legacy_seal, migrate)
from device.store.sealing import ad_template, ad_user, derive_key, row_tag, seal, unseal
from device.store.user import User, check_holidays_policy, check_schedule

__all__ = ["TemplateStore", "User", "StoreError", "WrongKeyError", "TamperedError",
           "StoreRollback", "StoreDiskFull", "StoreBusy", "SCHEMA_VERSION", "migrate",
           "derive_key"]

log = logging.getLogger("palmgate.store")

# connections this process holds, per database file: the pre-v3 seal is read (one
# descriptor, outside SQLite) only while there is none
_OPEN_HERE: dict[str, int] = {}
_OPEN_LOCK = threading.Lock()
_RESERVED_META = {integrity.STATE, "store_id", "key_check", "key_check_nonce", "content_tag",
                  "audit_head", "audit_anchor", "split_pending", "sensor_tag"}


def _held_here(key: str, delta: int = 0) -> int:
    with _OPEN_LOCK:
        n = _OPEN_HERE.get(key, 0) + delta
        if n > 0:
            _OPEN_HERE[key] = n
        else:
            _OPEN_HERE.pop(key, None)
        return n


class TemplateStore:
    """``TemplateStore(path, device_key=...)`` or ``TemplateStore(path, key_path=...)``.

    ``counter``: the generation counter outside the database (default: a ``FileCounter`` at
    ``counter_path``, else ``<db>.generation``); ``verify_audit``: walk the audit chain at
    open (default); ``allow_rollback``: open an older copy anyway (``accept_current``)."""

    def __init__(self, path, device_key: bytes | None = None, key_path=None,
                 create: bool = True, *, counter=None, counter_path=None,
                 verify_audit: bool = True, allow_rollback: bool = False,
                 busy_timeout_s: float = 30.0):
        self.path = Path(path)
        self.conn = None
        self._depth = 0
        self._next_at_least = 0
        self.migrated_to: list[int] = []
        self.generation: int | None = None
        self.counter = counter
        self._writer = None
        self.counter_path = Path(counter_path) if counter_path else \
            self.path.with_name(self.path.name + ".generation")
        if device_key is None:
            if key_path is None:
                raise StoreError("the template store needs the device key (paths.device_key "
                                 "in the configuration)")
            from device.store.keys import load_device_key   # lazily: the key file lives on the unit
            try:
                device_key = load_device_key(key_path, create=create)
            except OSError as e:
                raise classify(e, key_path, "creating the device key") from None
        self._k_seal = derive_key(device_key, "template store seal")
        self._k_tag = derive_key(device_key, "template store tag")
        self._k_file = derive_key(device_key, "template store file")
        self._k_backup = derive_key(device_key, "template store backup")
        self._k_state = derive_key(device_key, "template store state")
        self._k_counter = derive_key(device_key, "template store generation counter")
        self.audit_key = derive_key(device_key, "audit log")
        self._aead = AESGCM(self._k_seal)
        existed = self.path.exists()
        if not existed and not create:
            raise StoreError(f"template store not found: {self.path}")
        self._id = os.path.realpath(self.path)
        from device.store.audit import AuditLog
        try:
            legacy = None
            if existed and _held_here(self._id) == 0:
                legacy = check_legacy_seal(self.path, self._k_file)
            self.conn = sqlite3.connect(str(self.path), isolation_level=None,
                                        timeout=busy_timeout_s)
            _held_here(self._id, +1)
            c = self.conn
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA synchronous=FULL")
            c.execute("PRAGMA foreign_keys=ON")
            c.execute("PRAGMA secure_delete=ON")
            self.audit = AuditLog(c, self.audit_key, transaction=self.transaction)
            ok = c.execute("PRAGMA quick_check").fetchone()[0]
            if ok != "ok":
                first = str(ok).replace("\n", "; ")
                raise TamperedError(f"template store {self.path} is corrupted: "
                                    f"{first[:300]}{' ...' if len(first) > 300 else ''}")
            if c.execute("PRAGMA user_version").fetchone()[0] >= 1:
                self._check_key()                 # read-only: a copied file stops here
            migrate(c, store=self)
            if self.counter is None:
                from device.store.counter import FileCounter
                self.counter = FileCounter(self.counter_path, self._k_counter,
                                           self._meta("store_id") or b"")
            self._check_generation(verify_audit, allow_rollback)
            drop_legacy_seal(legacy)
        except (sqlite3.Error, OSError) as e:
            self._abort()
            raise classify(e, self.path, "opening") from None
        except BaseException:
            self._abort()
            raise

    def _abort(self) -> None:
        if self._writer is not None:
            self._writer.flush()            # the counter is written before we go
        if self.conn is not None:
            self.conn.close()
            self.conn = None
            _held_here(self._id, -1)

    def close(self) -> None:
        """Close the connection (SQLite folds the WAL into the file when the last one
        closes). Every change was durable at its commit: there is nothing else to write."""
        self._abort()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def schema_version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    # ------------------------------------------------------------------ integrity
    def _check_generation(self, verify_audit: bool, allow_rollback: bool) -> None:
        from device.store.rollback import check_generation
        check_generation(self, verify_audit, allow_rollback)

    def _advance(self, gen: int, wait: bool = False) -> None:
        """The counter outside the database to ``gen`` -- after the commit, off this thread
        (``CounterWriter``): it may lag the database, never lead it. ``wait``: until
        written."""
        if self._writer is None:
            from device.store.counter import CounterWriter
            self._writer = CounterWriter(self.counter)
        self._writer.submit(gen)
        if wait:
            self._writer.flush()

    def _check_tag(self) -> int:
        acc, n = integrity.content_tag(self.conn, self._k_tag)
        want = int.from_bytes(self._meta("content_tag") or bytes(32), "big")
        if acc != want:
            raise TamperedError(f"template store {self.path}: the set of sealed records does "
                                f"not match its tag (rows added, removed, replayed or changed)")
        return n + sensor_templates.check_tag(self)

    def verify(self) -> int:
        """Check the state MAC and the tag over every sealed row; returns the rows."""
        with self.snapshot():
            integrity.read_generation(self.conn, self._k_state, f"template store {self.path}")
            return self._check_tag()

    def _check_key(self) -> None:
        nonce = self._meta("key_check_nonce")
        if nonce is None:
            if self.conn.execute("SELECT COUNT(*) FROM users").fetchone()[0]:
                raise TamperedError(f"template store {self.path} has records but no key check")
            return
        store_id = self._meta("store_id") or b""
        try:
            ok = unseal(self._aead, nonce, self._meta("key_check") or b"",
                        b"palmgate/key-check|" + store_id, "key check") == KEY_CHECK
        except TamperedError:
            ok = False
        if not ok:
            raise WrongKeyError(
                f"template store {self.path} was sealed under another device key (a database "
                f"copied from another unit, or the key file was replaced); it yields nothing")

    # ------------------------------------------------------------------ transactions
    @contextlib.contextmanager
    def snapshot(self):
        """One consistent read view for several statements (another process may commit
        between them otherwise). Inside a transaction: that transaction's view."""
        c = self.conn
        if c.in_transaction:
            yield
            return
        c.execute("BEGIN")
        try:
            yield
        finally:
            if c.in_transaction:
                c.execute("COMMIT")

    @contextlib.contextmanager
    def transaction(self):
        """One write transaction (nested calls join the outer one): BEGIN IMMEDIATE (waits
        for another writer up to the busy timeout), the state checked, the body, the next
        generation sealed, COMMIT, the counter advanced. Anything raised rolls all back."""
        c = self.conn
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        try:
            c.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise classify(e, self.path, "starting a change") from None
        self._depth = 1
        try:
            gen = integrity.read_generation(c, self._k_state, f"template store {self.path}")
            yield
            gen = max(gen + 1, self._next_at_least)
            integrity.write_state(c, self._k_state, gen)
            c.execute("COMMIT")
        except BaseException as e:
            # SQLite may have rolled back already (SQLITE_FULL, I/O errors)
            if c.in_transaction:
                c.execute("ROLLBACK")
            if isinstance(e, (sqlite3.Error, OSError)):
                raise classify(e, self.path, "writing a change") from e
            raise
        finally:
            self._depth = 0
            self._next_at_least = 0
        self.generation = gen
        self._advance(gen)

    def _record(self, kind: str, audit: dict | None, **fields) -> None:
        """Inside a transaction: the audit record of the change being made."""
        payload = {k: v for k, v in fields.items() if v is not None}
        payload.update({k: v for k, v in (audit or {}).items() if v is not None})
        self.audit.append(kind, **payload)

    def accept_current(self, reason: str = "", audit: dict | None = None) -> int:
        """Make this copy the current one (opened with ``allow_rollback``): its generation
        raised past the counter's, audited (``device.store.rollback``)."""
        from device.store.rollback import accept_current
        return accept_current(self, reason, audit)

    # ------------------------------------------------------------------ sealed rows
    def _seal(self, plain: bytes, ad: bytes) -> tuple[bytes, bytes]:
        return seal(self._aead, plain, ad)

    def _open(self, nonce: bytes, sealed: bytes, ad: bytes, what: str) -> bytes:
        return unseal(self._aead, nonce, sealed, ad, f"{what} in {self.path}")

    def _row_tag(self, kind, ident, version, nonce, sealed) -> int:
        return row_tag(self._k_tag, kind, ident, version, nonce, sealed)

    def _meta(self, name: str) -> bytes | None:
        r = self.conn.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        return None if r is None else bytes(r[0])

    def _set_meta(self, name: str, value: bytes) -> None:
        self.conn.execute("INSERT INTO meta(name, value) VALUES(?, ?) ON CONFLICT(name) "
                          "DO UPDATE SET value=excluded.value", (name, value))

    def read_meta(self, name: str) -> bytes | None:
        return self._meta(name)

    def write_meta(self, name: str, value: bytes) -> None:
        """A small record of another part of the gate (e.g. the attempt limiter's state),
        written in a store transaction, so it is covered by the state MAC and the
        generation: an older copy put back is detected like any other change."""
        if name in _RESERVED_META:
            raise StoreError(f"meta record {name!r} belongs to the store")
        with self.transaction():
            self._set_meta(name, bytes(value))

    def _tag_update(self, delta: int) -> None:
        cur = int.from_bytes(self._meta("content_tag") or bytes(32), "big")
        self._set_meta("content_tag", (cur ^ delta).to_bytes(32, "big"))

    # ------------------------------------------------------------------ users
    def _read_user_row(self, user_id: str):
        return self.conn.execute("SELECT rev, nonce, sealed FROM users WHERE user_id=?",
                                 (user_id,)).fetchone()

    def get_user(self, user_id: str) -> User | None:
        r = self._read_user_row(user_id)
        if r is None:
            return None
        rev, nonce, sealed = r
        d = json.loads(self._open(bytes(nonce), bytes(sealed), ad_user(user_id, rev),
                                  f"user {user_id!r}"))
        if d.get("user_id") != user_id:
            raise TamperedError(f"user record {user_id!r} holds another user's data")
        return User(**{k: d[k] for k in User.__dataclass_fields__ if k in d})

    def users(self) -> list[User]:
        with self.snapshot():
            ids = [r[0] for r in self.conn.execute("SELECT user_id FROM users ORDER BY "
                                                   "user_id")]
            return [self.get_user(u) for u in ids]

    def _write_user(self, user: User) -> None:
        """Inside a transaction: replace the user's sealed row (rev + 1)."""
        old = self._read_user_row(user.user_id)
        rev = 0 if old is None else old[0] + 1
        if old is not None:
            self._tag_update(self._row_tag("U", user.user_id, old[0], bytes(old[1]),
                                           bytes(old[2])))
        plain = json.dumps(asdict(user), sort_keys=True).encode()
        nonce, sealed = self._seal(plain, ad_user(user.user_id, rev))
        self.conn.execute("INSERT INTO users(user_id, rev, nonce, sealed) VALUES(?,?,?,?) "
                          "ON CONFLICT(user_id) DO UPDATE SET rev=excluded.rev, "
                          "nonce=excluded.nonce, sealed=excluded.sealed",
                          (user.user_id, rev, nonce, sealed))
        self._tag_update(self._row_tag("U", user.user_id, rev, nonce, sealed))

    def _insert_template(self, user_id: str, version: int, tmpl: ProtectedTemplate) -> int:
        cur = self.conn.execute("INSERT INTO templates(user_id, version, nonce, sealed) "
                                "VALUES(?, ?, zeroblob(12), zeroblob(0))", (user_id, version))
        rid = cur.lastrowid
        nonce, sealed = self._seal(tmpl.to_bytes(), ad_template(user_id, rid, version))
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
        sensor_templates.delete(self, user_id)         # the sensor frames' go with them
        return len(rows)

    def _remove_user(self, user_id: str) -> int:
        """Inside a transaction: the user's row and templates; returns the templates."""
        old = self._read_user_row(user_id)
        n = self._delete_templates(user_id)
        self._tag_update(self._row_tag("U", user_id, old[0], bytes(old[1]), bytes(old[2])))
        self.conn.execute("DELETE FROM users WHERE user_id=?", (user_id,))
        return n

    def enrol(self, user_id: str, templates: list[ProtectedTemplate], *,
              replace: bool = False, enabled: bool | None = None,
              valid_from: float | None = None, valid_until: float | None = None,
              schedule=None, label: str = "", audit: dict | None = None) -> int:
        """Enrol a user with one or more protected templates and write the audit record
        (``enrol``, or ``re_enrol``), in one transaction. An existing user is refused unless
        ``replace`` (re-enrolment: the old templates are deleted and the new ones get the
        next version -- the way to revoke). Re-enrolment replaces the templates only: the
        user's enabled state, validity, schedule and label stay unless given here (a
        disabled user re-enrolled stays disabled). ``audit``: extra fields of the record
        (terminal, views, operator). Returns the version."""
        if not templates:
            raise StoreError("enrolment needs at least one template")
        if not isinstance(user_id, str) or not user_id or "|" in user_id:
            raise StoreError("user id must be a non-empty string without '|'")
        for t in templates:
            if not isinstance(t, ProtectedTemplate):
                raise StoreError("the store takes protected templates only, never features")
        schedule = check_schedule(schedule)
        with self.transaction():
            old = self._read_user_row(user_id)
            if old is not None and not replace:
                raise StoreError(f"user {user_id!r} is already enrolled (use --replace to "
                                 f"re-enrol)")
            if old is None:
                user = User(user_id, True if enabled is None else bool(enabled), valid_from,
                            valid_until, schedule, 1, label)
            else:
                user = self.get_user(user_id)
                user.version += 1
                self._delete_templates(user_id)
                for k, v in (("enabled", enabled), ("valid_from", valid_from),
                             ("valid_until", valid_until), ("label", label or None)):
                    if v is not None:
                        setattr(user, k, v)
                if schedule:
                    user.schedule = schedule
            version = user.version
            enabled = user.enabled
            self._write_user(user)
            for t in templates:
                self._insert_template(user_id, version, t)
            self._record("re_enrol" if old is not None else "enrol", audit, user_id=user_id,
                         template_version=version, templates=len(templates),
                         status="enabled" if enabled else "disabled")
        return version

    def add_templates(self, user_id: str, templates: list[ProtectedTemplate],
                      audit: dict | None = None) -> list[int]:
        """More templates for an enrolled user, under the current version."""
        with self.transaction():
            user = self.get_user(user_id)
            if user is None:
                raise StoreError(f"no user {user_id!r}")
            rids = [self._insert_template(user_id, user.version, t) for t in templates]
            self._record("templates_added", audit, user_id=user_id,
                         template_version=user.version, templates=len(rids))
            return rids

    def update_user(self, user_id: str, audit: dict | None = None, **changes) -> User:
        """Change ``enabled``, ``valid_from``, ``valid_until``, ``schedule``, ``holidays`` or
        ``label``, with its audit record (``user_enable``/``user_disable`` when only
        ``enabled`` changes, else ``user_update``)."""
        allowed = {"enabled", "valid_from", "valid_until", "schedule", "holidays", "label"}
        if set(changes) - allowed:
            raise StoreError(f"cannot change {sorted(set(changes) - allowed)}")
        if "schedule" in changes:
            changes["schedule"] = check_schedule(changes["schedule"])
        if "holidays" in changes:
            changes["holidays"] = check_holidays_policy(changes["holidays"])
        with self.transaction():
            user = self.get_user(user_id)
            if user is None:
                raise StoreError(f"no user {user_id!r}")
            for k, v in changes.items():
                setattr(user, k, v)
            self._write_user(user)
            kind = ("user_enable" if user.enabled else "user_disable") \
                if set(changes) == {"enabled"} else "user_update"
            self._record(kind, audit, user_id=user_id, template_version=user.version,
                         status="enabled" if user.enabled else "disabled",
                         reason=None if kind != "user_update" else
                         "changed: " + ",".join(sorted(changes)))
        return user

    def set_enabled(self, user_id: str, enabled: bool, audit: dict | None = None) -> User:
        return self.update_user(user_id, audit=audit, enabled=bool(enabled))

    def delete_user(self, user_id: str, audit: dict | None = None) -> int:
        """Delete a user and their templates (rows overwritten: secure_delete) with the audit
        record ``user_delete``, then fold the WAL into the file so no old page survives
        there. Returns the templates removed."""
        with self.transaction():
            if self._read_user_row(user_id) is None:
                raise StoreError(f"no user {user_id!r}")
            n = self._remove_user(user_id)
            self._record("user_delete", audit, user_id=user_id, templates=n)
        self.checkpoint()
        return n

    def checkpoint(self) -> None:
        """Fold the WAL into the file and truncate it (waits for readers up to the busy
        timeout; what a reader still needs stays until the next checkpoint)."""
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as e:
            log.warning("WAL checkpoint of %s postponed: %s", self.path, e)

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
        with self.transaction():
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
        try:
            self.conn.execute("VACUUM")
        except sqlite3.Error as e:
            raise classify(e, self.path, "rebuilding the file") from None
        self.checkpoint()

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
            blob = self._open(bytes(nonce), bytes(sealed), ad_template(uid, rid, ver),
                              f"template record {rid}")
            out.append((uid, rid, ver, ProtectedTemplate.from_bytes(blob)))
        return out

    def count(self) -> dict:
        with self.snapshot():
            return {"users": self.conn.execute("SELECT COUNT(*) FROM users").fetchone()[0],
                    "templates": self.conn.execute("SELECT COUNT(*) FROM templates"
                                                   ).fetchone()[0]}

    def gallery(self, config, weights, when: float | None = None, **kw):
        """A ``ProtectedGallery`` of the templates of users active at ``when`` (all enabled
        users when ``when`` is None) made with ``config``; the owner of each is the user id."""
        from device.protect.gallery import ProtectedGallery
        gal = ProtectedGallery(config, weights, **kw)
        with self.snapshot():
            users = {u.user_id: u for u in self.users()}
            rows = self.templates()
        for uid, _, ver, t in rows:
            u = users[uid]
            if ver != u.version or t.config != config:
                continue
            if (when is None and u.enabled) or (when is not None and u.active(when)):
                gal.add(uid, t)
        return gal

    # ------------------------------------------------------------------ backup
    def backup(self, path, passphrase: bytes | str | None = None) -> dict:
        """Write an encrypted backup (``device.store.backup``): with a passphrase any unit
        can restore it; without, only this unit (its device key)."""
        from device.store.backup import backup
        return backup(self, path, passphrase)

    def restore(self, path, passphrase: bytes | str | None = None,
                audit: dict | None = None) -> dict:
        """Replace the whole store's content with a backup and its audit record, in one
        transaction, re-sealed under this unit's device key."""
        from device.store.backup import restore
        return restore(self, path, passphrase, audit)
