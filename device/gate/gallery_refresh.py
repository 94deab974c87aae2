"""The gate's galleries kept in step with its store: a full load, or a patch of the users
whose rows changed.

The pipeline holds, from one read snapshot of the store: the gallery of enabled users, the
gallery of disabled users (matched after a no-match, so the deny says ``user_disabled``),
each user's record (access times), the site's holidays, and the row marks of every user
(:mod:`device.store.row_marks`). After another process commits, :func:`patch` compares the
marks with the store's now, in one snapshot, and re-reads only the users whose rows changed:
their templates leave both galleries first (slots marked dead before anything is read, so a
revoked user is never matched after the change is committed, whatever fails next), then
their current templates go into free slots of the gallery their state selects -- the
selection :func:`load_full` makes for the whole store, so the patched galleries give the
same decisions and scores as a fresh load (tests/test_gallery_patch.py).

The full load runs instead (:func:`refresh`) when there is no baseline (first load, a
failed patch), when more than ``PATCH_MAX_SHARE`` of the users changed (a restore, a bulk
import: re-reading them one by one would cost as much), when the galleries have no free slots
left (:class:`~device.gate.slot_gallery.GalleryFull`: the reload drops the old gallery first
and allocates new headroom, so memory never goes above a fresh load), and when the patch
raises anything at all.

Both check what they read against the store's content tag (:mod:`device.store.row_tags`):
the full load tags every row (~the cost of ``store.verify()``), the patch only the changed
users' rows, XORed into the tags kept from the last load; a genuine older row put back
from outside the store (no key needed) raises ``TamperedError``: the patch drops the changed
users and the full load runs, which raises it again with no gallery left -- the gate
refuses, it never serves the replayed row.
"""
from __future__ import annotations

import logging

from device.gate.gallery import add_user_templates, load_gallery
from device.gate.slot_gallery import GalleryFull, SlotGallery, headroom
from device.store.holidays import holiday_dates
from device.store.row_marks import changes, read_marks
from device.store.row_tags import advance, baseline, floor

log = logging.getLogger("palmgate.gate")

# more changed users than this share of the users (and than PATCH_MIN): the full load. At
# 10,000 users (20,000 templates) a patch cost 0.43-0.56 ms of CPU a changed user (100-3,000
# users), the full load 0.39 ms a user: they cross near 90 %; half keeps the patch well under
# a reload (docs/results.md, "The first decision after a store change")
PATCH_MAX_SHARE = 0.5
PATCH_MIN = 256


def _kw(pipe) -> dict:
    ext = pipe.extractor
    return dict(dim=ext.dim, shifts=ext.shifts, shortlist=pipe.cfg.match.shortlist,
                storage=pipe.cfg.match.storage)


def _empty(pipe, capacity: int) -> SlotGallery:
    return SlotGallery(pipe.protect_config, pipe.extractor.importance, capacity, **_kw(pipe))


def load_full(pipe, store) -> None:
    """(Re)build both galleries, the users' records, the holidays and the row marks from
    one snapshot of ``store``; the old galleries go first, so the two never sit in memory
    together."""
    pipe.gallery = pipe.inactive = None
    pipe.marks = pipe.row_tags = None
    cfg, w, kw = pipe.protect_config, pipe.extractor.importance, _kw(pipe)
    seen = getattr(pipe, "generation_seen", None)   # (store path, generation) loaded last
    low = floor(store, seen[1] if seen and seen[0] == str(store.path) else None)
    with store.snapshot():
        tags = baseline(store, low)     # every row against the content tag: TamperedError
        marks = read_marks(store.conn)
        users = store.users()
        n = store.count()["templates"]
        pipe.gallery, pipe.versions = load_gallery(store, cfg, w, users=users,
                                                   headroom=headroom(n), **kw)
        pipe.users = {u.user_id: u for u in users}
        pipe.holidays = holiday_dates(store)
        # disabled users: matched only after a no_match, so their denial says why
        why = {u.user_id: "user_disabled" for u in users if not u.enabled}
        pipe.inactive_reason = why
        if why:
            pipe.inactive, _ = load_gallery(store, cfg, w, select=lambda u: u.user_id in why,
                                            users=users, headroom=headroom(n), **kw)
    pipe.marks, pipe.row_tags = marks, tags
    pipe.generation_seen = (str(store.path), tags.generation)  # kept when a load fails


def patch(pipe, store) -> str | None:
    """Bring the galleries to what ``store`` holds now, user by user. Returns None when
    done, else why the full load must run instead (nothing was changed then, or the
    changed users were taken out of the galleries and the baseline dropped)."""
    tags = getattr(pipe, "row_tags", None)
    if pipe.marks is None or tags is None or not isinstance(pipe.gallery, SlotGallery):
        return "no baseline to patch"
    low = floor(store)                      # before the snapshot
    with store.snapshot():
        found = changes(store.conn, pipe.marks)
        if found is None:
            return "a change the row marks cannot name"
        users, new = found
        if len(users) > max(PATCH_MIN, PATCH_MAX_SHARE * len(new.users)):
            return f"{len(users)} of {len(new.users)} users changed"
        pipe.marks = pipe.row_tags = None   # a failure from here on: the full load
        _drop_users(pipe, users)
        # the changed users' rows as read in this snapshot against the store's content tag
        # (and state MAC): an older row put back raises TamperedError, the users stay out
        tags = advance(store, tags, users, low)
        _add_users(pipe, store, users)
        pipe.holidays = holiday_dates(store)
    pipe.marks, pipe.row_tags = new, tags
    pipe.generation_seen = (str(store.path), tags.generation)
    for g in (pipe.gallery, pipe.inactive):
        if g is not None and g.needs_compaction():
            g.compact()
    return None


def _drop_users(pipe, users: set) -> None:
    # fail secure: every changed user's templates out first (slots dead before any read)
    if not users:
        return
    pipe.gallery.remove_owners(users)
    if pipe.inactive is not None:
        pipe.inactive.remove_owners(users)
    for uid in users:
        pipe.versions.pop(uid, None)
        pipe.users.pop(uid, None)
        pipe.inactive_reason.pop(uid, None)


def _add_users(pipe, store, users: set) -> None:
    cfg = pipe.protect_config
    for uid in sorted(users):
        u = store.get_user(uid)
        if u is None:                           # deleted
            continue
        pipe.users[uid] = u
        if u.enabled:
            target, versions = pipe.gallery, pipe.versions
        else:
            pipe.inactive_reason[uid] = "user_disabled"
            if pipe.inactive is None:
                pipe.inactive = _empty(pipe, headroom(pipe.gallery.capacity))
            target, versions = pipe.inactive, {}
        if add_user_templates(target, store, u, cfg, versions):
            log.warning("user %s has templates of another palm feature: not matched", uid)


def store_version(store):
    """What moves when any connection commits a change of the galleries' rows: (PRAGMA
    data_version -- another connection's commit --, template rows -- this connection's);
    None when the store cannot be read (``device.api`` refreshes then; the gate decides on
    the gallery it holds, its audit record first)."""
    try:
        return store.conn.execute("PRAGMA data_version").fetchone()[0], \
            store.count()["templates"]
    except Exception:          # noqa: BLE001
        return None


def refresh(pipe, store, reload) -> str:
    """After a commit by another process: :func:`patch`, else ``reload()`` (the full load).
    Returns what was done ("patched" or "reloaded: <why>")."""
    try:
        why = patch(pipe, store)
    except GalleryFull as e:                # new enrolments used the headroom up
        why = f"no free slots: {e}"
    except Exception as e:      # noqa: BLE001 - any failure of the patch: the full load
        why = f"patch failed: {type(e).__name__}: {e}"
        log.warning("gallery patch failed, reloading it whole: %s", why)
    if why is None:
        return "patched"
    reload()
    return f"reloaded: {why}"
