"""Rollback detection at open: the store's generation (inside the database, MAC'd with the
rest of its state) against the monotonic counter outside it (``device.store.counter``), and
the audited way to accept a copy when the counter, not the store, was lost.

    counter missing, generation 1     a new or just-upgraded store: the counter is made
    counter missing, generation > 1   StoreRollback (deleting the counter must not turn the
                                      check off)
    generation < counter              StoreRollback: an older copy of the store
    generation > counter              a crash between a commit and its counter write: the
                                      counter catches up
"""
from __future__ import annotations

from device.store import integrity
from device.store.errors import AuditChainBroken, StoreRollback

_FIX = ("restore the store from a backup, or -- if the counter was lost, not the store rolled "
        "back -- accept this copy with `palmgate store accept-current`, which is audited")


def check_generation(store, verify_audit: bool = True, allow_rollback: bool = False) -> int:
    """Check the opened ``store`` (state MAC, content tag, audit chain, generation against
    its counter); returns the generation."""
    where = f"template store {store.path}"
    # the counter first: it is only ever advanced after a commit, so a snapshot taken after
    # reading it holds at least that generation -- unless the database is an older copy
    try:
        outside = store.counter.read()
    except StoreRollback:
        if not allow_rollback:
            raise
        outside = None
    with store.snapshot():
        gen = integrity.read_generation(store.conn, store._k_state, where)
        store._check_tag()
        if verify_audit:
            try:
                store.audit.verify()
            except AuditChainBroken as e:
                raise AuditChainBroken(f"{where}: the audit chain is broken: {e}") from None
    store.generation = gen
    if not allow_rollback:
        if outside is None and gen > 1 and not store.migrated_to:
            raise StoreRollback(
                f"{where}: its generation counter ({store.counter.describe()}) is missing, so "
                f"an older copy of the store cannot be told from the current one (generation "
                f"{gen}); {_FIX}")
        if outside is not None and gen < outside:
            raise StoreRollback(
                f"{where} is an older copy of itself: its generation is {gen} but the counter "
                f"({store.counter.describe()}) has seen {outside} (records, revocations or "
                f"attempt counts since then would be lost); {_FIX}")
    if outside is None or gen > outside:
        store._advance(gen, wait=True)
    return gen


def accept_current(store, reason: str = "", audit: dict | None = None) -> int:
    """Make this copy of the store (opened with ``allow_rollback``) the current one: its
    generation is raised past the counter's in a transaction with the audit record
    ``store_accepted``. For a counter that was lost or replaced, never to hide a rollback.
    Returns the new generation."""
    try:
        outside = store.counter.read() or 0
    except StoreRollback:
        outside = 0
    before = store.generation or 0
    with store.transaction():
        store._next_at_least = max(outside, before) + 1
        store._record("store_accepted", audit,
                      reason=(reason or f"generation {before}, counter {outside}")[:200])
    store._advance(store.generation, wait=True)
    return store.generation
