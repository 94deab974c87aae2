"""Which users' rows changed since a gallery was read: marks of the sealed rows, read without
unsealing anything.

- Every write of a user row seals it again under a fresh random 96-bit nonce
  (``device.store.sealing``): a user whose row nonce differs (or who appeared or went) was
  enrolled, re-enrolled, enabled, disabled, updated, deleted or restored.
- Template record ids are never reused (AUTOINCREMENT): the owners of rows above the highest
  id seen had templates added.
- Template rows are never rewritten in place (a re-encryption or re-keying must write
  new rows, or its users' rows: tests/test_gallery_patch.py guards it) and are deleted
  only with their user's row written or removed; a count that
  does not add up (the templates of the unchanged users are not what they were) means a
  change the marks cannot name: :func:`changes` returns None, and the caller reloads all.

A user named for no change only costs a re-read. At 10,000 users and 20,000 templates the
check reads 10,000 (id, nonce) pairs: a few ms of CPU (tools/gallery_refresh_bench.py),
growing with the users.
Nothing here is secret: ids and nonces are stored in the clear.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RowMarks:
    users: dict             # user_id -> nonce of the sealed user row
    counts: dict            # user_id -> template rows
    total: int              # template rows
    max_rid: int            # highest template record id


def _users(conn) -> dict:
    return dict(conn.execute("SELECT user_id, nonce FROM users"))       # nonces: bytes


def _totals(conn) -> tuple[int, int]:
    # two statements: MAX alone is one b-tree seek, beside COUNT it would scan the table
    n = conn.execute("SELECT COUNT(*) FROM templates").fetchone()[0]
    m = conn.execute("SELECT MAX(record_id) FROM templates").fetchone()[0]
    return int(n), int(m or 0)


def read_marks(conn) -> RowMarks:
    """The marks of the store now (call inside the read snapshot the gallery is loaded in)."""
    counts = dict(conn.execute("SELECT user_id, COUNT(*) FROM templates GROUP BY user_id"))
    return RowMarks(_users(conn), counts, *_totals(conn))


def changes(conn, old: RowMarks) -> tuple[set, RowMarks] | None:
    """(users whose rows changed since ``old``, the marks now), or None when the store
    changed in a way the marks cannot name (reload everything). One read snapshot."""
    users = _users(conn)
    changed = {u for u, _ in old.users.items() ^ users.items()}       # one pass, in C
    total, max_rid = _totals(conn)
    changed |= {r[0] for r in conn.execute("SELECT DISTINCT user_id FROM templates WHERE "
                                           "record_id > ?", (old.max_rid,))}
    counts = dict(old.counts)
    expect = old.total
    for u in changed:
        n = conn.execute("SELECT COUNT(*) FROM templates WHERE user_id=?", (u,)).fetchone()[0]
        expect += n - counts.pop(u, 0)
        if n:
            counts[u] = n
    if expect != total:
        return None
    return changed, RowMarks(users, counts, total, max_rid)
