"""A gate's gallery kept up to date from the site's changes, user by user, instead of being
rebuilt from the whole store after every batch (at 20,000 users a rebuild took seconds of CPU
per gate: up to 94 s wall for 20 gates at once on 2 shared cores).

``refresh_users(gal, store, users, ...)`` drops every template of ``users`` from the gallery
and adds back the current-version templates of those still enrolled and active -- the same
selection :func:`device.gate.gallery.load_gallery` makes for the whole store, so the gallery
after it is the one a full reload would give (tested). The gallery is the gate's
:class:`~device.gate.slot_gallery.SlotGallery`: removed templates' slots are marked dead and
reused, nothing is copied (the gate's own patch, :mod:`device.gate.gallery_refresh`, works
the same way); :class:`~device.gate.slot_gallery.GalleryFull` when the free slots run out
(load the gallery again). The sync client reports the users it changed through
``GateSync(on_applied=...)`` (site changes and local enrolments); the caller must own both
the store connection and the gallery (one thread).
"""
from __future__ import annotations


def changed_users(results) -> set:
    """Users of the applied changes in a sync client's ``on_applied`` results."""
    from device.site.access import USER_KINDS
    return {h["user_id"] for h, outcome, _ in results
            if outcome == "applied" and h["kind"] in USER_KINDS}


def refresh_users(gal, store, users, config, when: float | None = None) -> int:
    """Bring ``users`` in ``gal`` to what ``store`` holds now; returns templates added."""
    from device.gate.gallery import add_user_templates
    users = set(users)
    if not users:
        return 0
    gal.remove_owners(users)                # first: a failure below leaves them out
    n = len(gal)
    with store.snapshot():
        for uid in sorted(users):
            u = store.get_user(uid)
            if u is None or not (u.enabled if when is None else u.active(when)):
                continue
            add_user_templates(gal, store, u, config, {})
    return len(gal) - n
