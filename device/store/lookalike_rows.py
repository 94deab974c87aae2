"""The look-alike lists' rows (:mod:`device.gate.lookalikes`): one sealed sensor row a person,
of the list kind beside their feature kind (:data:`device.store.sensor_templates.LIST_KIND`),
under the person's template version.

Kept in ``sensor_templates`` so they have its sealing, its tags and its life: sealed under
the store's key (AD = user, record id, version, kind), tagged into ``sensor_tag`` (a list
deleted, replayed or changed outside the store fails the open check, and the running
gate's kept tags, :mod:`device.store.sensor_row_tags`), deleted with the person's templates
(re-enrolment, delete, restore), carried by backups. A list is rewritten as a new row (the
old one deleted, its tag XORed out), never changed in place.
"""
from __future__ import annotations

from device.store import sensor_templates as ST
from device.store.errors import StoreError


CURRENT = "SELECT user_id, MAX(version) FROM templates GROUP BY user_id"
"""Each person's current version: their palm templates' (replaced at each re-enrolment)."""


def gallery(store, kind: str, lists: bool = True) -> tuple[dict, dict]:
    """``({user_id: stamp}, {user_id: list bytes})``: every person holding rows of feature
    ``kind`` at their current version, each with the **stamp** of those rows (``(version,
    first record id)``: record ids are never reused, so a person deleted and enrolled again
    at the same version has another stamp), and the lists (of the list kind, current version,
    unsealed; ``lists=False``: none read), in one read snapshot. No template is unsealed
    (:func:`templates` reads one person's)."""
    c = store.conn
    if not ST._present(c):
        return {}, {}
    lk = ST.LIST_KIND[kind]
    stamps: dict = {}
    out: dict = {}
    kinds = (kind, lk) if lists else (kind, kind)
    with store.snapshot():
        current = dict(c.execute(CURRENT))
        for row in c.execute(ST.ROWS + " WHERE kind IN (?, ?) ORDER BY record_id", kinds):
            rid, uid, ver, k = row[:4]
            if current.get(uid) != ver:
                continue
            if k == kind:
                stamps.setdefault(uid, (ver, rid))
            else:
                out[uid] = ST.unseal(store, *row)
    return stamps, out


def templates(store, user_id: str, kind: str) -> tuple[tuple | None, list]:
    """``(stamp, [template bytes])`` of ``user_id``'s rows of feature ``kind`` at their current
    version, unsealed, in one read snapshot (``(None, [])``: none). Enrolment's and the
    lists' upkeep's reads (one person at a time), never a decision's."""
    c = store.conn
    if not ST._present(c):
        return None, []
    with store.snapshot():
        r = c.execute("SELECT MAX(version) FROM templates WHERE user_id=?",
                      (user_id,)).fetchone()
        if r is None or r[0] is None:
            return None, []
        rows = c.execute(ST.ROWS + " WHERE user_id=? AND kind=? AND version=? ORDER BY "
                         "record_id", (user_id, kind, r[0])).fetchall()
        if not rows:
            return None, []
        return (r[0], rows[0][0]), [ST.unseal(store, *row) for row in rows]


def unchanged_list(store, user_id: str, sensor) -> bytes | None:
    """Before a site change replaces ``user_id``'s enrolment with ``sensor`` (``(kind,
    [template bytes])``): their list, when the templates of that kind they hold now are
    exactly these (the gate's own enrolment coming back from the site, or a change sent
    again), so it stays true under the new version; None otherwise (the gate's upkeep makes
    a new one, :mod:`device.gate.lookalike_upkeep`)."""
    kind, blobs = sensor
    stamp, now = templates(store, user_id, kind)
    if not now or now != [bytes(b) for b in blobs]:
        return None
    got = ST.read(store, user_id, stamp[0], ST.LIST_KIND[kind])
    return got[-1] if got else None


def write_list(store, user_id: str, version: int, kind: str, blob: bytes) -> int:
    """Inside a store transaction: ``user_id``'s list of feature ``kind`` replaced by
    ``blob`` (their earlier list rows deleted, tags XORed out); returns the new record id."""
    c = store.conn
    if not c.in_transaction:
        raise StoreError("a look-alike list is written inside a store transaction")
    lk = ST.LIST_KIND[kind]
    ST.delete(store, user_id, lk)
    return ST.insert(store, user_id, version, [blob], lk)[0]


UNLISTED = (" WHERE kind=? AND user_id NOT IN (SELECT user_id FROM sensor_templates WHERE "
            "kind=?)")
"""The rows (of the feature kind, then its list kind) of the people without a list."""


def waiting(store, kind: str, most: int) -> list | None:
    """The people holding templates of feature ``kind`` and no list (newest first, by their
    rows' record ids) when they are at most ``most``; None when more."""
    c = store.conn
    if not ST._present(c):
        return []
    rows = c.execute("SELECT user_id FROM sensor_templates" + UNLISTED + " GROUP BY user_id "
                     "ORDER BY MIN(record_id) DESC LIMIT ?",
                     (kind, ST.LIST_KIND[kind], int(most) + 1)).fetchall()
    return None if len(rows) > most else [r[0] for r in rows]


def users_without_list(store, kind: str) -> int:
    """How many people hold templates of feature ``kind`` and no list of its list kind
    (enrolled before the lists were kept: ``palmgate lookalikes --build`` makes theirs)."""
    c = store.conn
    if not ST._present(c):
        return 0
    return c.execute("SELECT COUNT(DISTINCT user_id) FROM sensor_templates" + UNLISTED,
                     (kind, ST.LIST_KIND[kind])).fetchone()[0]
