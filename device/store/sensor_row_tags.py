"""The sensor templates' tag kept by a running reader: the gate's identity stage, which reads
one user's sensor rows at each decision (:mod:`device.gate.sensor_identity_stage`).

The store checks its meta ``sensor_tag`` (the XOR of every sensor row's keyed tag, under the
state MAC: :mod:`device.store.sensor_templates`) at open and ``verify()`` only. Someone who can
write the file but has no key could, while the gate runs, delete a user's sensor rows (or move
them to another version or kind, or delete the user's row, which cascades to them): the user
would read as having none -- ``not_enrolled``, unchecked under ``sensor_identity =
"when_enrolled"``. So the reader keeps each row's tag by record id (:class:`SensorTags`) and
:func:`read_user` checks, in one read snapshot: the state MAC; when ``sensor_tag`` moved
since (an enrolment, a delete, a restore), the new rows are tagged, the gone ones dropped and
the whole set checked against it again; then the identified user's rows as read now against
their kept tags -- the same record ids, each with the same tag. Any difference raises
:class:`~device.store.errors.TamperedError` (the gate denies ``error:identity``).

Cost: the first call tags every row (~ the open check's cost); afterwards a decision tags the
user's own rows (a few) and reads the (record id, user id) pairs only when ``sensor_tag``
moved. At 10,000 users, 2 sensor templates each (``python -m tools.sensor_row_tags_bench
--users 10000``, one run, 2 shared cores): the start 469 ms, a decision's read 0.084 ms
median (0.019 ms unchecked), the first read after another connection's enrolment 11.5 ms. Record ids are never reused (AUTOINCREMENT), and rows are never rewritten in place by
the store (a row changed in place keeps its id, and its tag no longer matches the kept one).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from device.store import integrity
from device.store.errors import TamperedError
from device.store.sensor_templates import ROWS, TAG, _present, _tag, unseal


@dataclass
class SensorTags:
    total: int                                      # the store's sensor_tag they fold to
    by_user: dict = field(default_factory=dict)     # user_id -> {record_id: tag}; never
    #                                                 changed in place (a failed check leaves
    #                                                 the kept tags as they were)
    owner: dict = field(default_factory=dict)       # record_id -> user_id


def _where(store) -> str:
    return f"template store {store.path}"


def _current(store, known: SensorTags | None) -> SensorTags:
    """``known`` brought to the store's ``sensor_tag`` now (inside a read snapshot, the state
    MAC checked by the caller): new rows tagged, gone rows dropped, the total checked."""
    want = int.from_bytes(store._meta(TAG) or bytes(32), "big")
    if known is not None and known.total == want:
        return known
    c = store.conn
    ids = dict(c.execute("SELECT record_id, user_id FROM sensor_templates"))
    if known is None:
        known = SensorTags(0)
    owner = dict(known.owner)
    by_user = dict(known.by_user)                   # inner dicts copied where changed
    total = known.total
    for rid, uid in known.owner.items():            # gone (or moved: tagged again below)
        if ids.get(rid) != uid:
            del owner[rid]
            tags = by_user[uid] = dict(by_user[uid])
            total ^= tags.pop(rid)
            if not tags:
                del by_user[uid]
    new = [rid for rid in ids if rid not in owner]
    for i in range(0, len(new), 500):
        part = new[i:i + 500]
        q = ROWS + f" WHERE record_id IN ({','.join('?' * len(part))})"
        for rid, uid, ver, kind, nonce, sealed in c.execute(q, part):
            t = _tag(store, uid, rid, ver, kind, nonce, sealed)
            tags = by_user[uid] = dict(by_user.get(uid, {}))
            tags[rid] = t
            owner[rid] = uid
            total ^= t
    if total != want:
        raise TamperedError(f"{_where(store)}: the sealed sensor templates do not match their "
                            f"tag (rows added, removed, replayed or changed outside the store)")
    return SensorTags(want, by_user, owner)


def read_user(store, user_id: str, known: SensorTags | None
              ) -> tuple[list, SensorTags | None]:
    """((version, kind, bytes) of every sensor row of ``user_id``, unsealed, in record
    order; the tags kept, brought up to date) -- the rows checked against the tags kept and
    the store's ``sensor_tag`` under its state MAC. TamperedError on any mismatch."""
    c = store.conn
    with store.snapshot():
        # the state MAC first: it covers the schema, so a table dropped outside the store
        # is caught here, not read as "no rows"
        integrity.read_generation(c, store._k_state, _where(store))
        if not _present(c):
            return [], known
        known = _current(store, known)
        rows = c.execute(ROWS + " WHERE user_id=? ORDER BY record_id", (user_id,)).fetchall()
        kept = known.by_user.get(user_id, {})
        if len(rows) != len(kept):
            raise TamperedError(f"{_where(store)}: {user_id!r} has {len(rows)} sensor "
                                f"templates where {len(kept)} were written")
        out = []
        for rid, uid, ver, kind, nonce, sealed in rows:
            if kept.get(rid) != _tag(store, uid, rid, ver, kind, nonce, sealed):
                raise TamperedError(f"{_where(store)}: sensor template record {rid} was "
                                    f"changed outside the store")
            out.append((ver, kind, unseal(store, rid, uid, ver, kind, nonce, sealed)))
    return out, known


def prime(store) -> SensorTags | None:
    """Every row tagged and checked now (at the gate's start), so the first decision does
    not pay for it; None before schema step 4."""
    if not _present(store.conn):
        return None
    with store.snapshot():
        integrity.read_generation(store.conn, store._k_state, _where(store))
        return _current(store, None)
