"""Access times set at the site: a user's enabled state, validity, weekly zones and holiday
policy, and the site's holiday list, held by the service and sent to the gates as changes.

- ``update_user(svc, user_id, changes)``: merged into the user's attributes (``users.attrs``)
  under the user's next version and sent as an ``update`` change to the gates the user may
  open. The attributes also ride along with every later enrolment, re-enrolment and recovery
  of that user (``"user"`` in the change), so a gate that gets the user later gets them too.
- ``set_holidays(svc, days)``: the whole list (``{"YYYY-MM-DD": "label"}``) replaces the
  site's list, under the site's next version, as a ``holidays`` change to every gate; a gate
  replaces its own list with it (:func:`device.store.holidays.replace_holidays`, with its
  ``holiday_sync`` audit record). A gate that joins later, or is replaced, gets the list with
  its first changes (:func:`send_holidays`).

Everything is checked here with the gate's own rules before anything is sent, so a bad value is
refused at the service (``ValueError``: the admin API answers 400), not by twenty gates.
The holiday list travels in the change log under the pseudo user :data:`HOLIDAYS_ID`, which no
user can be named (user ids are ``A-Z a-z 0-9 _ . -``): the gate's per-user ordering then orders
holiday lists too, so an older list that arrives late never replaces a newer one.
"""
from __future__ import annotations

import json
import time

from device.store.errors import StoreError
from device.store.holidays import clean_days
from device.store.user import check_holidays_policy, check_schedule

HOLIDAYS_ID = "@holidays"
"""The change log's user id for the site's holiday list (not a valid user id)."""

ATTRS = ("enabled", "valid_from", "valid_until", "schedule", "holidays")
"""What :func:`update_user` may set (the label stays the enrolling gate's)."""

USER_KINDS = ("enrol", "revoke", "update")
"""Change kinds that are about one user (the others, like ``holidays``, are the site's)."""


def _when(v, what: str):
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{what} must be a UNIX time or null, got {v!r}")
    return float(v)


def check_attrs(changes: dict) -> dict:
    """``changes`` checked with the gate store's rules: a clean copy or ``ValueError``."""
    if not isinstance(changes, dict) or not changes:
        raise ValueError(f"nothing to change: give some of {', '.join(ATTRS)}")
    bad = sorted(set(changes) - set(ATTRS))
    if bad:
        raise ValueError(f"cannot set {bad} at the site (only {', '.join(ATTRS)})")
    out = {}
    try:
        if "enabled" in changes:
            if not isinstance(changes["enabled"], bool):
                raise ValueError(f"enabled must be true or false, got {changes['enabled']!r}")
            out["enabled"] = changes["enabled"]
        for k in ("valid_from", "valid_until"):
            if k in changes:
                out[k] = _when(changes[k], k)
        if "schedule" in changes:
            out["schedule"] = check_schedule(changes["schedule"] or [])
        if "holidays" in changes:
            out["holidays"] = check_holidays_policy(changes["holidays"])
    except StoreError as e:
        raise ValueError(str(e)) from None
    lo = out.get("valid_from")
    hi = out.get("valid_until")
    if lo is not None and hi is not None and hi <= lo:
        raise ValueError("valid_until must be after valid_from")
    return out


def check_days(days: dict) -> dict:
    """``{"YYYY-MM-DD": "label"}`` checked and sorted (the gate store's own
    :func:`device.store.holidays.clean_days`), or ``ValueError``."""
    if not isinstance(days, dict):
        raise ValueError("holidays must be an object {\"YYYY-MM-DD\": \"label\"}")
    clean = clean_days(days)
    if len(clean) > 1000:
        raise ValueError("more than 1,000 holidays")
    return clean


def writes(fn):
    """Marks a service call that writes: it runs inside the service thread's transaction and
    gets ``out`` (:meth:`device.site.service.SiteService.call`)."""
    fn._writes = True
    return fn


@writes
def update_user(svc, user_id: str, changes: dict, out=None) -> dict:
    """Set some of ``enabled``, ``valid_from``, ``valid_until``, ``schedule``, ``holidays``
    for ``user_id`` at the site; every gate the user may open gets the change."""
    clean = check_attrs(changes)
    row = svc.db.execute("SELECT state, gates, attrs, label FROM users WHERE user_id=?",
                         (user_id,)).fetchone()
    if row is None:
        raise KeyError(f"no user {user_id!r}")
    if row[0] != "active":
        raise ValueError(f"user {user_id!r} is {row[0]}")
    attrs = dict(json.loads(row[2] or "{}"), **clean)
    v = svc._next_version()
    svc.db.execute("UPDATE users SET attrs=?, version=?, updated=? WHERE user_id=?",
                   (json.dumps(attrs, sort_keys=True), v, time.time(), user_id))
    gates = svc._user_gates(row[1])
    for g in gates:
        svc._change(g, "update", user_id, v, {"user": dict(attrs, label=row[3] or "")}, out)
    svc._event("update", f"{user_id}: {', '.join(sorted(clean))} set on {len(gates)} gates "
                         f"(version {v})")
    return {"user_id": user_id, "version": v, "attrs": attrs, "gates": gates}


def site_holidays(svc) -> dict:
    """The site's holiday list and its version: ``{"holidays": {...}, "version": v}``."""
    r = svc.db.execute("SELECT value FROM meta WHERE name='holidays'").fetchone()
    return json.loads(r[0]) if r else {"holidays": {}, "version": 0}


def _put_meta(svc, value: dict) -> None:
    svc.db.execute("INSERT INTO meta(name, value) VALUES('holidays', ?) ON CONFLICT(name) DO "
                   "UPDATE SET value=excluded.value", (json.dumps(value, sort_keys=True),))


@writes
def set_holidays(svc, days: dict, out=None) -> dict:
    """Replace the site's holiday list; every gate gets it."""
    clean = check_days(days)
    v = svc._next_version()
    _put_meta(svc, {"holidays": clean, "version": v})
    gates = [r[0] for r in svc.db.execute("SELECT gate_id FROM gates ORDER BY gate_id")]
    for g in gates:
        svc._change(g, "holidays", HOLIDAYS_ID, v, {"holidays": clean}, out)
    svc._event("holidays", f"{len(clean)} holidays sent to {len(gates)} gates (version {v})")
    return {"holidays": clean, "version": v, "gates": gates}


def send_holidays(svc, gate: str, out=None) -> bool:
    """The current list to one gate (joined or replaced), if the site has one."""
    cur = site_holidays(svc)
    if not cur["version"]:
        return False
    svc._change(gate, "holidays", HOLIDAYS_ID, cur["version"], {"holidays": cur["holidays"]},
                out)
    return True
