"""Who may pass when: a user's validity window, weekly time zones and the site's holidays.

Pure functions of the gate's local wall-clock time (a naive ``datetime``: no time zone and no
daylight-saving arithmetic here -- the caller converts the gate's clock once, with
``datetime.fromtimestamp``). A weekly time zone is ``[weekday, "HH:MM", "HH:MM"]`` (weekday 0 =
Monday; an end before the start runs past midnight into the next day; "24:00" is the end of the
day). A user without zones may pass at any hour. A site holiday (a local date) closes
weekly-zone access for the whole day, unless the user's ``holidays`` is ``"allow"``; users
without zones are not affected by holidays.

The order of the checks gives the deny reason: ``user_disabled``, ``not_yet_valid`` (before
``valid_from``), ``expired`` (at or after ``valid_until``), ``holiday``, ``outside_schedule``;
``None`` means the user may pass.

Operators write zones as ``"mon-fri 07:00-19:00"``, ``"sat 08:00-12:00"``, ``"mon,wed
22:00-06:00"``, ``"daily 06:00-22:00"`` (:func:`parse_weekly`); :func:`format_weekly` writes
them back the same way.
"""
from __future__ import annotations

import datetime as _dt
import re

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HOLIDAY_POLICIES = ("closed", "allow")


class ScheduleError(ValueError):
    """A zone, date or time the operator wrote cannot be read (the message says how)."""


# --------------------------------------------------------------------------- times of day
def minutes_of_day(hhmm: str) -> int:
    """"07:30" -> 450; "24:00" -> 1440 (the end of the day)."""
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", str(hhmm).strip())
    if not m or int(m.group(2)) > 59:
        raise ScheduleError(f"bad time of day {hhmm!r}: write HH:MM (00:00 .. 24:00)")
    v = int(m.group(1)) * 60 + int(m.group(2))
    if v > 24 * 60:
        raise ScheduleError(f"bad time of day {hhmm!r}: write HH:MM (00:00 .. 24:00)")
    return v


def check_zones(zones) -> list:
    """Zones as the store keeps them, checked: ``[[weekday, "HH:MM", "HH:MM"], ...]``."""
    out = []
    for z in zones or []:
        try:
            day, start, end = z
        except (TypeError, ValueError):
            raise ScheduleError(f"a weekly zone is [weekday, start, end], got {z!r}") from None
        if not 0 <= int(day) <= 6:
            raise ScheduleError(f"weekday must be 0 (Monday) .. 6 (Sunday), got {day}")
        s, e = minutes_of_day(start), minutes_of_day(end)
        if s == e:
            raise ScheduleError(f"weekly zone {DAYS[int(day)]} {start}-{end} is empty")
        out.append([int(day), f"{s // 60:02d}:{s % 60:02d}", f"{e // 60:02d}:{e % 60:02d}"])
    return out


# --------------------------------------------------------------------------- what operators write
def _day(name: str) -> int:
    """"mon" or "monday" -> 0 (ValueError otherwise)."""
    n = name.strip()
    if len(n) < 3 or not any(full.startswith(n) for full in
                             ("monday", "tuesday", "wednesday", "thursday", "friday",
                              "saturday", "sunday")):
        raise ValueError(name)
    return DAYS.index(n[:3])


def parse_days(text: str) -> list[int]:
    """"mon-fri" -> [0..4]; "fri-mon" -> [4, 5, 6, 0]; "mon,wed" -> [0, 2]; "daily" -> all."""
    t = text.strip().lower()
    if t in ("daily", "all", "mon-sun"):
        return list(range(7))
    days: list[int] = []
    for part in t.split(","):
        a, _, b = part.strip().partition("-")
        try:
            i = _day(a)
            j = i if not b else _day(b)
        except ValueError:
            raise ScheduleError(f"bad days {text!r}: write mon-fri, sat, mon,wed,fri or "
                                f"daily") from None
        k = i
        while True:
            if k not in days:
                days.append(k)
            if k == j:
                break
            k = (k + 1) % 7
    return days


def parse_weekly(spec: str) -> list:
    """One ``--weekly`` value, "DAYS HH:MM-HH:MM" -> zones, one per day."""
    m = re.fullmatch(r"\s*(\S+)\s+(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s*", str(spec))
    if not m:
        raise ScheduleError(f"--weekly {spec!r}: write DAYS HH:MM-HH:MM, e.g. "
                            f"\"mon-fri 07:00-19:00\" or \"sat 08:00-12:00\"")
    return check_zones([[d, m.group(2), m.group(3)] for d in parse_days(m.group(1))])


def format_weekly(zones) -> list[str]:
    """Zones -> "mon-fri 07:00-19:00" lines: days with the same hours together, runs of
    consecutive days as ranges."""
    by_hours: dict[tuple, list[int]] = {}
    for day, s, e in zones or []:
        by_hours.setdefault((s, e), []).append(int(day))
    out = []
    for (s, e), days in by_hours.items():
        days = sorted(set(days))
        runs, run = [], [days[0]]
        for d in days[1:]:
            if d == run[-1] + 1:
                run.append(d)
            else:
                runs.append(run)
                run = [d]
        runs.append(run)
        names = "daily" if len(days) == 7 else ",".join(
            DAYS[r[0]] if len(r) == 1 else f"{DAYS[r[0]]}-{DAYS[r[-1]]}" for r in runs)
        out.append(f"{names} {s}-{e}")
    return out


def parse_local(text: str) -> tuple[_dt.datetime, bool]:
    """"2026-12-01" or "2026-12-01T08:00" (local time) -> (naive datetime, date only?)."""
    t = str(text).strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", t):
            return _dt.datetime.fromisoformat(t), True
        d = _dt.datetime.fromisoformat(t.replace(" ", "T"))
    except ValueError:
        raise ScheduleError(f"bad date {text!r}: write YYYY-MM-DD or YYYY-MM-DDTHH:MM (the "
                            f"gate's local time)") from None
    if d.tzinfo is not None:
        raise ScheduleError(f"bad date {text!r}: give the gate's local time, without an "
                            f"offset")
    return d, False


def window_bound(text: str, end: bool) -> _dt.datetime:
    """A ``--valid-from``/``--valid-until`` value as a local time: a bare date starts at its
    midnight, and as the end (``--valid-until``) includes that whole day."""
    d, date_only = parse_local(text)
    return d + _dt.timedelta(days=1) if end and date_only else d


def parse_holiday(text: str) -> str:
    """A holiday's date, "YYYY-MM-DD"."""
    d, date_only = parse_local(text)
    if not date_only:
        raise ScheduleError(f"a holiday is a whole day: write YYYY-MM-DD, got {text!r}")
    return d.date().isoformat()


# --------------------------------------------------------------------------- the decision
def in_zones(zones, local: _dt.datetime) -> bool:
    """Whether the local time falls in one of the weekly zones."""
    minute, wd = local.hour * 60 + local.minute, local.weekday()
    for day, start, end in zones:
        s, e = minutes_of_day(start), minutes_of_day(end)
        if s < e:
            if wd == day and s <= minute < e:
                return True
        elif (wd == day and minute >= s) or (wd == (day + 1) % 7 and minute < e):
            return True                      # runs past midnight into the next day
    return False


def access_reason(enabled: bool, valid_from: float | None, valid_until: float | None,
                  zones, holidays_policy: str, when: float, local: _dt.datetime,
                  holidays=()) -> str | None:
    """Why the user may not pass at ``when`` (UNIX time; ``local`` the same moment on the
    gate's wall clock), or None. ``holidays``: the site's holiday dates ("YYYY-MM-DD")."""
    if not enabled:
        return "user_disabled"
    if valid_from is not None and when < valid_from:
        return "not_yet_valid"
    if valid_until is not None and when >= valid_until:
        return "expired"
    if not zones:
        return None
    if holidays_policy != "allow" and local.date().isoformat() in set(holidays):
        return "holiday"
    return None if in_zones(zones, local) else "outside_schedule"


def user_reason(user, when: float, holidays=()) -> str | None:
    """:func:`access_reason` of a store ``User`` at ``when`` on this machine's local clock."""
    local = _dt.datetime.fromtimestamp(when)
    return access_reason(user.enabled, user.valid_from, user.valid_until, user.schedule,
                         getattr(user, "holidays", "closed"), when, local, holidays)
