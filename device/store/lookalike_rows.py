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


def gallery(store, kind: str, templates: bool = True) -> tuple[dict, dict]:
    """``({user_id: (version, [template bytes])}, {user_id: list bytes})`` of every person's
    rows of feature ``kind`` and of its list kind, unsealed, of each person's current
    version only, in one read snapshot. Unseals every person's templates: enrolment's and
    the build command's, never a decision's (``templates=False``: the lists only, each
    person's template list left empty -- a report's)."""
    c = store.conn
    if not ST._present(c):
        return {}, {}
    lk = ST.LIST_KIND[kind]
    feats: dict = {}
    lists: dict = {}
    with store.snapshot():
        # a person's current version: their palm templates' (replaced at each re-enrolment)
        current = dict(c.execute("SELECT user_id, MAX(version) FROM templates "
                                 "GROUP BY user_id"))
        for row in c.execute(ST.ROWS + " WHERE kind IN (?, ?) ORDER BY record_id", (kind, lk)):
            rid, uid, ver, k = row[:4]
            if current.get(uid) != ver:
                continue
            if k == kind:
                got = feats.setdefault(uid, (ver, []))[1]
                if templates:
                    got.append(ST.unseal(store, *row))
            else:
                lists[uid] = ST.unseal(store, *row)
    return feats, lists


def write_list(store, user_id: str, version: int, kind: str, blob: bytes) -> int:
    """Inside a store transaction: ``user_id``'s list of feature ``kind`` replaced by
    ``blob`` (their earlier list rows deleted, tags XORed out); returns the new record id."""
    c = store.conn
    if not c.in_transaction:
        raise StoreError("a look-alike list is written inside a store transaction")
    lk = ST.LIST_KIND[kind]
    ST.delete(store, user_id, lk)
    return ST.insert(store, user_id, version, [blob], lk)[0]


def users_without_list(store, kind: str) -> int:
    """How many people hold templates of feature ``kind`` and no list of its list kind
    (enrolled before the lists were kept: ``palmgate lookalikes --build`` makes theirs)."""
    c = store.conn
    if not ST._present(c):
        return 0
    return c.execute("SELECT COUNT(DISTINCT user_id) FROM sensor_templates WHERE kind=? AND "
                     "user_id NOT IN (SELECT user_id FROM sensor_templates WHERE kind=?)",
                     (kind, ST.LIST_KIND[kind])).fetchone()[0]
