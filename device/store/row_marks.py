"""Which users' rows changed: a mark of every user's sealed rows, read without unsealing.

Every write of a user row or a template row seals it again under a fresh random 96-bit
nonce (``device.store.sealing``), and template record ids are never reused (AUTOINCREMENT).
So a user's mark -- a digest of their row's revision and nonce and of their template rows'
record ids, versions and nonces -- changes with every change of the user or of their
templates, by any process, whatever the change was (enrol, re-enrol, templates added,
enable, disable, access times, label, delete, restore). Two marks that differ name the users
a gallery must re-read; a mark that differs for no change (an order SQLite chose
differently) only costs a re-read. Nothing here is secret: ids, revisions and nonces are
stored in the clear.
"""
from __future__ import annotations

import hashlib

_ROWS = ("SELECT u.user_id, u.rev, u.nonce, t.record_id, t.version, t.nonce "
         "FROM users u LEFT JOIN templates t ON t.user_id = u.user_id "
         "ORDER BY u.user_id, t.record_id")


def row_marks(conn) -> dict:
    """{user_id: 16-byte mark} of every user row (call inside one read snapshot)."""
    out: dict = {}
    uid, h = None, None
    for u, rev, nonce, rid, ver, tnonce in conn.execute(_ROWS):
        if u != uid:
            if uid is not None:
                out[uid] = h.digest()
            uid, h = u, hashlib.blake2b(digest_size=16)
            h.update(b"%d|" % rev + bytes(nonce))
        if rid is not None:
            h.update(b"|%d.%d." % (rid, ver) + bytes(tnonce))
    if uid is not None:
        out[uid] = h.digest()
    return out


def changed(old: dict, new: dict) -> set:
    """Users added, removed or changed between two marks."""
    return {u for u in old.keys() | new.keys() if old.get(u) != new.get(u)}
