"""The `palmgate users` actions of access times and lockouts:

    palmgate users schedule USER [--valid-from D] [--valid-until D] [--weekly "DAYS HH:MM-HH:MM"]...
                                 [--holidays allow|closed] [--clear]
    palmgate users unlock USER          the user's attempt-limiter lockout cleared

Dates and times are the gate's local time. ``--weekly`` values together replace the user's
weekly time zones; ``--valid-from none`` / ``--valid-until none`` remove a bound; ``--clear``
first resets everything to "any time" (no window, no zones, holidays closed). Each change and
its audit record (naming the operator) commit in one store transaction.
"""
from __future__ import annotations

import datetime as _dt

from device.commands.common import admin_audit

SCHEDULE_ACTIONS = ("schedule", "unlock")


def add_schedule_options(sp) -> None:
    sp.add_argument("--valid-from", default=None, metavar="DATE",
                    help="schedule: may pass from this local date (YYYY-MM-DD, its midnight) "
                         "or date and time (YYYY-MM-DDTHH:MM); none = no start")
    sp.add_argument("--valid-until", default=None, metavar="DATE",
                    help="schedule: may pass until this local date (a bare date: to the end "
                         "of that day) or date and time; none = no end")
    sp.add_argument("--weekly", action="append", default=None, metavar="ZONE",
                    help="schedule: a weekly time zone, e.g. \"mon-fri 07:00-19:00\", "
                         "\"sat 08:00-12:00\", \"fri 22:00-06:00\" (past midnight); "
                         "repeat for more; together they replace the user's zones")
    sp.add_argument("--holidays", choices=["closed", "allow"], default=None,
                    help="schedule: closed = a site holiday (palmgate holidays) closes the "
                         "weekly zones (the default); allow = the zones apply on holidays too")
    sp.add_argument("--clear", action="store_true",
                    help="schedule: first back to any time (no window, no zones, holidays "
                         "closed); other options then apply")


def _bound(text: str | None, end: bool):
    """An option's value -> (given?, UNIX time or None)."""
    from device.store.schedule import window_bound
    if text is None:
        return False, None
    if text.strip().lower() in ("none", ""):
        return True, None
    return True, window_bound(text, end).timestamp()


def schedule_changes(a, user) -> dict:
    """The ``users schedule`` options -> the changes to the user record (ValueError naming
    the option when one cannot be read, or when nothing was asked)."""
    from device.store.schedule import ScheduleError, parse_weekly
    if not (a.clear or a.weekly or a.holidays or a.valid_from is not None
            or a.valid_until is not None):
        raise ValueError("users schedule needs --valid-from, --valid-until, --weekly, "
                         "--holidays or --clear")
    ch: dict = {}
    if a.clear:
        ch = {"valid_from": None, "valid_until": None, "schedule": [], "holidays": "closed"}
    try:
        for opt, text, end in (("valid_from", a.valid_from, False),
                               ("valid_until", a.valid_until, True)):
            given, v = _bound(text, end)
            if given:
                ch[opt] = v
        if a.weekly:
            zones: list = []
            for spec in a.weekly:
                zones += [z for z in parse_weekly(spec) if z not in zones]
            ch["schedule"] = zones
    except ScheduleError as e:
        raise ValueError(str(e)) from None
    if a.holidays:
        ch["holidays"] = a.holidays
    vf = ch.get("valid_from", user.valid_from)
    vu = ch.get("valid_until", user.valid_until)
    if vf is not None and vu is not None and vu <= vf:
        raise ValueError(f"--valid-until ({_local(vu)}) must come after --valid-from "
                         f"({_local(vf)})")
    return ch


def _local(ts) -> str | None:
    return None if ts is None else _dt.datetime.fromtimestamp(ts).isoformat(timespec="minutes")


def schedule_view(u, holidays=()) -> dict:
    """A user's schedule as ``users list/show`` print it (local times)."""
    from device.store.schedule import format_weekly
    reason = u.access(holidays=holidays)
    return {"valid_from_local": _local(u.valid_from), "valid_until_local": _local(u.valid_until),
            "weekly": format_weekly(u.schedule) or ["any time"],
            "holidays": getattr(u, "holidays", "closed"), "access_now": reason or "ok"}


def schedule_action(a, cfg, st) -> dict:
    if a.action == "schedule":
        from device.store.holidays import holiday_dates
        u = st.get_user(a.user_id)
        if u is None:
            raise ValueError(f"no user {a.user_id!r}")
        # the change and its user_update audit record (with the operator): one transaction
        u = st.update_user(a.user_id, audit=admin_audit(cfg, a), **schedule_changes(a, u))
        return {"user_id": u.user_id, "valid_from": u.valid_from,
                "valid_until": u.valid_until, "schedule": u.schedule,
                **schedule_view(u, holiday_dates(st))}
    # unlock: the user's attempt counter (attempts_reset record, with the operator)
    from device.commands.attempts import limiter_for
    lim = limiter_for(cfg, st)
    if st.get_user(a.user_id) is None and a.user_id not in lim.snapshot()["users"]:
        raise ValueError(f"no user {a.user_id!r} (and no attempt counter of that id)")
    rep = lim.reset(a.user_id, audit=admin_audit(cfg, a))
    return {"user_id": a.user_id, "unlocked": True,
            "failures_cleared": rep["user"]["failures"]}
