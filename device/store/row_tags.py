"""The content tag kept by a reader that re-reads only some users: a running gate's gallery.

The store's meta ``content_tag`` is the XOR of a keyed tag of every sealed user and template
row (:func:`device.store.integrity.content_tag`), under the state MAC. Transactions check
the MAC, not the rows, so a genuine older row put back by someone who can write the file but
has no key (the enabled version of a user since disabled, a deleted template row) still
unseals: only ``store.verify()`` saw it, at the next start. A gate that patches its gallery
(:mod:`device.gate.gallery_refresh`) would serve it until then.

:class:`RowTags` is what such a reader keeps: per user, the XOR of their user row's tag and
of every template row of theirs (one int a user: ~1.5 MB at 10,000 users), the generation
it was read at, and their XOR. :func:`baseline` reads every row (the full load reads them
anyway) and checks the total against the store's; :func:`advance` re-tags only the changed
users' rows, XORs their old tags out and the new in, and checks again -- in the caller's
read snapshot, the one the changed rows are read in, so what is checked is what is served.
Both raise :class:`TamperedError` when the tag or the state MAC does not match, and when
the generation is below one already seen: below the generation counter outside the store
(read before the snapshot: it is only advanced after a commit) or the ``floor`` the caller
saw (a whole older state -- its meta records, state record and rows -- put back while the
gate runs; at open, ``device.store.rollback`` says it).

Cost at 10,000 users, 20,000 templates (``python -m tools.gallery_refresh_bench --users
10000 --changes 8``, one run each, 2 shared cores): the patch's refresh 8.1 ms CPU median
against 7.7 ms without this check (per-change spread ~1 ms), the full load 3.17 s against
2.92 s (every row tagged), peak RSS 285.7 MB against 281.4 MB.

A row rewritten outside the store for a user the marks do not name is not read, not served,
and not seen here: it is seen when that user next changes, or at the next full load.
"""
from __future__ import annotations

from dataclasses import dataclass

from device.store import integrity
from device.store.errors import TamperedError
from device.store.integrity import TEMPLATE_ROWS, USER_ROWS, fold_tags, tagged_rows


@dataclass
class RowTags:
    by_user: dict           # user_id -> XOR of the tags of their user row and template rows
    total: int              # XOR of every value of by_user: the store's content tag
    generation: int         # the store's generation when it was read


# --------------------------------------------------------------------------- pure
def fold_rows(key: bytes, users, templates) -> dict:
    """{user_id: XOR of the row tags of their rows} of (user_id, rev, nonce, sealed) user
    rows and (record_id, user_id, version, nonce, sealed) template rows, as
    :func:`device.store.integrity.content_tag` tags them."""
    out: dict = {}
    for uid, tag in tagged_rows(key, users, templates):
        out[uid] = out.get(uid, 0) ^ tag
    return out


# --------------------------------------------------------------------------- on a store
def floor(store, seen: int | None = None) -> int:
    """The lowest generation the store may have now: ``seen`` (what this reader saw), or
    the counter outside the store -- read only outside a read snapshot, before it starts
    (a snapshot already open may rightly be older than the counter)."""
    low = int(seen or 0)
    counter = getattr(store, "counter", None)
    if counter is not None and not store.conn.in_transaction:
        low = max(low, int(counter.read() or 0))
    return low


def _check(store, total: int, low: int) -> int:
    """The store's generation after checking its state MAC, that the generation is not below
    ``low`` and that its content tag is ``total``."""
    where = f"template store {store.path}"
    gen = integrity.read_generation(store.conn, store._k_state, where)
    if gen < low:
        raise TamperedError(f"{where}: its generation {gen} is below {low}, already seen: "
                            f"an older copy of its state was put back")
    r = store.conn.execute("SELECT value FROM meta WHERE name='content_tag'").fetchone()
    want = int.from_bytes(bytes(r[0]) if r is not None else bytes(32), "big")
    if total != want:
        raise TamperedError(f"{where}: the sealed records read do not match the content tag "
                            f"(rows added, removed, replayed or changed outside the store)")
    return gen


def baseline(store, low: int = 0) -> RowTags:
    """Every row's tag, checked against the store (call inside the read snapshot the
    gallery is loaded in; ``low``: :func:`floor`, read before it). TamperedError on any
    mismatch."""
    conn = store.conn
    by_user = fold_rows(store._k_tag, conn.execute(USER_ROWS), conn.execute(TEMPLATE_ROWS))
    total = fold_tags(by_user.values())
    return RowTags(by_user, total, _check(store, total, low))


def advance(store, old: RowTags, users, low: int = 0) -> RowTags:
    """``old`` with the rows of ``users`` (those whose rows changed: present, added or
    removed) tagged again as the store holds them now, checked against the store (call
    inside the snapshot those users' rows are read in; ``low``: :func:`floor`, read before
    it; never below ``old``'s generation). ``old`` is left as it was."""
    conn = store.conn
    key = store._k_tag
    by_user = dict(old.by_user)
    total = old.total
    for uid in users:
        total ^= by_user.pop(uid, 0)
        new = fold_rows(key, conn.execute(USER_ROWS + " WHERE user_id=?", (uid,)),
                        conn.execute(TEMPLATE_ROWS + " WHERE user_id=?", (uid,))).get(uid, 0)
        if new:
            by_user[uid] = new
        total ^= new
    return RowTags(by_user, total, _check(store, total, max(low, old.generation)))
