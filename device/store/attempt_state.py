"""Where the attempt limiter keeps its counters: one MAC'd record in the template store's
``meta`` table (row ``attempts``), so a restart or a pulled plug does not reset a lockout.

Record: ``b"PGA2" | JSON | HMAC-SHA256`` with the key HKDF(store's audit key, "attempt
state") over ``store_id | JSON`` (a record copied from another store fails). JSON:
``{"terminal": {"failures", "locked_until", "at"}, "users": {id: {...}}}``. The record of the
first limiter (``JSON | HMAC(audit key, "attempts" | JSON)``, one terminal-wide counter) is
still read and becomes the terminal counter.

These functions only read and write the row; ``device.store.attempts`` decides. They use the
store's connection and SQLite's own locking (``BEGIN IMMEDIATE`` in :func:`transaction`), so
``palmgate attempts reset`` in another process and the running gate never lose an update.
"""
from __future__ import annotations

import hashlib
import hmac
import json

from device.store.subkeys import derive_subkey

ROW = "attempts"
_MAGIC = b"PGA2"


class AttemptStateError(RuntimeError):
    """The attempt record fails its MAC (forged, replayed from another store, or damaged)."""


def empty_state() -> dict:
    return {"terminal": {"failures": 0, "locked_until": 0.0, "at": 0.0}, "users": {}}


def _key(store) -> bytes:
    return derive_subkey(store.audit_key, "attempt state")


def _store_id(store) -> bytes:
    r = store.conn.execute("SELECT value FROM meta WHERE name='store_id'").fetchone()
    return b"" if r is None else bytes(r[0])


def _mac(store, data: bytes) -> bytes:
    return hmac.new(_key(store), _store_id(store) + b"|" + data, hashlib.sha256).digest()


def load_state(store) -> dict:
    """The stored counters (an empty state when there is no record). Raises
    :class:`AttemptStateError` when the record does not verify."""
    r = store.conn.execute("SELECT value FROM meta WHERE name=?", (ROW,)).fetchone()
    if r is None:
        return empty_state()
    v = bytes(r[0])
    if v.startswith(_MAGIC):
        data, mac = v[len(_MAGIC):-32], v[-32:]
        if not hmac.compare_digest(mac, _mac(store, data)):
            raise AttemptStateError("the attempt record fails its MAC")
        d = json.loads(data)
        st = empty_state()
        st["terminal"].update(d.get("terminal", {}))
        st["users"] = {str(u): dict(c) for u, c in d.get("users", {}).items()}
        return st
    # the first limiter's record: one terminal-wide counter
    data, mac = v[:-32], v[-32:]
    want = hmac.new(store.audit_key, b"attempts" + data, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, want):
        raise AttemptStateError("the attempt record fails its MAC")
    d = json.loads(data)
    st = empty_state()
    st["terminal"].update(failures=int(d["failures"]), locked_until=float(d["locked_until"]))
    return st


def save_state(store, state: dict) -> None:
    """Inside :func:`transaction`: the record, covered by the store's state MAC and generation
    (``TemplateStore.write_meta``), so an older copy put back is a detected rollback."""
    data = json.dumps(state, sort_keys=True, separators=(",", ":")).encode()
    store.write_meta(ROW, _MAGIC + data + _mac(store, data))


def transaction(store):
    """One write transaction of the store (its own: the state record is sealed with it)."""
    return store.transaction()
