"""Integrity kept inside the store's own transactions: a generation counter and a keyed MAC over
the whole protected state, rewritten by every transaction that changes anything.

The protected state is
- the content tag (meta ``content_tag``): the XOR of a keyed tag of every sealed user and
  template row (``device.store.sealing.row_tag``), so a row added, removed, moved or put back
  from an older copy changes it;
- every other meta record: the audit head (which chains every audit record), the attempt
  limiter's state, pending split deletes, the store id and key check;
- the schema (``sqlite_master``: tables, indexes and the audit table's append-only triggers).

The state record (meta ``state``) is ``generation (8 bytes) || MAC``, with
``MAC = HMAC(k_state, "palmgate store state v1" || generation || H(schema) || meta records)``.
``TemplateStore.transaction()`` checks it when a write transaction begins (a state changed
outside the store stops the change), and writes generation + 1 with the new MAC just before
COMMIT -- in the same SQLite transaction as the change, so a power cut leaves the old state
and its MAC or the new ones, never a mismatch, and there is no file beside the database whose
deletion turns a check off.

What the MAC cannot see is a whole older copy (the database, or all of its protected state
at once, put back): that is what the generation is for. It is also kept outside the database
(``device.store.counter``), advanced after every commit; a database whose generation is below
it is a rollback (``StoreRollback``).

Pure functions (``state_mac``, ``encode_state``, ``decode_state``) do the math; the functions
that take a connection only read and write the meta table.
"""
from __future__ import annotations

import hashlib
import hmac
import sqlite3

from device.store.errors import TamperedError
from device.store.sealing import row_tag

STATE = "state"                 # the meta record that holds generation || MAC
_DOMAIN = b"palmgate store state v1"


# --------------------------------------------------------------------------- pure
def state_mac(key: bytes, generation: int, schema: bytes,
              records: list[tuple[str, bytes]]) -> bytes:
    """HMAC-SHA256 over the generation, the schema and the meta records (sorted by name,
    each length-prefixed, so no two different sets serialise alike)."""
    h = hmac.new(key, _DOMAIN, hashlib.sha256)
    h.update(int(generation).to_bytes(8, "big"))
    h.update(hashlib.sha256(schema).digest())
    for name, value in sorted(records):
        n = name.encode()
        h.update(len(n).to_bytes(4, "big") + n + len(value).to_bytes(8, "big") + value)
    return h.digest()


def encode_state(generation: int, mac: bytes) -> bytes:
    return int(generation).to_bytes(8, "big") + mac


def decode_state(blob: bytes) -> tuple[int, bytes]:
    if len(blob) != 40:
        raise TamperedError("the store's state record is malformed")
    return int.from_bytes(blob[:8], "big"), blob[8:]


def fold_tags(tags) -> int:
    acc = 0
    for t in tags:
        acc ^= t
    return acc


# --------------------------------------------------------------------------- on a connection
def schema_text(conn: sqlite3.Connection) -> bytes:
    rows = conn.execute("SELECT type, name, tbl_name, COALESCE(sql, '') FROM sqlite_master "
                        "WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name").fetchall()
    return "\n".join("|".join(map(str, r)) for r in rows).encode()


def meta_records(conn: sqlite3.Connection) -> list[tuple[str, bytes]]:
    return [(n, bytes(v)) for n, v in conn.execute(
        "SELECT name, value FROM meta WHERE name != ?", (STATE,))]


def compute_mac(conn: sqlite3.Connection, key: bytes, generation: int) -> bytes:
    return state_mac(key, generation, schema_text(conn), meta_records(conn))


def read_generation(conn: sqlite3.Connection, key: bytes, where: str) -> int:
    """The generation of the state as it is now, after checking its MAC (TamperedError when
    the state record is missing or does not match the meta records and schema)."""
    r = conn.execute("SELECT value FROM meta WHERE name=?", (STATE,)).fetchone()
    if r is None:
        raise TamperedError(f"{where}: the integrity record is missing (removed outside the "
                            f"store)")
    gen, mac = decode_state(bytes(r[0]))
    if not hmac.compare_digest(mac, compute_mac(conn, key, gen)):
        raise TamperedError(
            f"{where}: the store's state (audit head, attempt records, content tag, schema) "
            f"does not match its MAC: it was changed outside the store, or parts of an older "
            f"copy were put back")
    return gen


def write_state(conn: sqlite3.Connection, key: bytes, generation: int) -> None:
    """Inside a write transaction, after every other change: the new state record."""
    value = encode_state(generation, compute_mac(conn, key, generation))
    conn.execute("INSERT INTO meta(name, value) VALUES(?, ?) ON CONFLICT(name) DO UPDATE SET "
                 "value=excluded.value", (STATE, value))


USER_ROWS = "SELECT user_id, rev, nonce, sealed FROM users"
TEMPLATE_ROWS = "SELECT record_id, user_id, version, nonce, sealed FROM templates"


def tagged_rows(key: bytes, users, templates):
    """(user_id, row tag) of each (user_id, rev, nonce, sealed) user row and (record_id,
    user_id, version, nonce, sealed) template row, as :data:`USER_ROWS` and
    :data:`TEMPLATE_ROWS` read them."""
    for uid, rev, nonce, sealed in users:
        yield uid, row_tag(key, "U", uid, rev, bytes(nonce), bytes(sealed))
    for rid, uid, ver, nonce, sealed in templates:
        yield uid, row_tag(key, "T", f"{uid}|{rid}", ver, bytes(nonce), bytes(sealed))


def content_tag(conn: sqlite3.Connection, key: bytes) -> tuple[int, int]:
    """(XOR of the row tags of every sealed user and template row, rows)."""
    tags = [t for _, t in tagged_rows(key, conn.execute(USER_ROWS),
                                      conn.execute(TEMPLATE_ROWS))]
    return fold_tags(tags), len(tags)
