"""An enrolled person as the store keeps them: enabled, validity, weekly time zones, holiday
policy, template version, label (sealed as one JSON record per user by
``device.store.store``). When they may pass is :mod:`device.store.schedule`."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from device.store import schedule as _schedule
from device.store.errors import StoreError


@dataclass
class User:
    """An enrolled person. ``schedule``: weekly time zones ``[weekday, "HH:MM", "HH:MM"]``
    (weekday 0 = Monday, local time; an end before the start runs past midnight); empty =
    any time. ``valid_from``/``valid_until``: UNIX times or None. ``holidays``: "closed" (a
    site holiday closes the weekly zones) or "allow"."""

    user_id: str
    enabled: bool = True
    valid_from: float | None = None
    valid_until: float | None = None
    schedule: list = field(default_factory=list)
    version: int = 0
    label: str = ""
    holidays: str = "closed"

    def access(self, when: float | None = None, holidays=()) -> str | None:
        """Why the user may not pass at ``when`` (now by default) on this machine's local
        clock -- ``user_disabled``, ``not_yet_valid``, ``expired``, ``holiday``,
        ``outside_schedule`` -- or None."""
        return _schedule.user_reason(self, time.time() if when is None else when, holidays)

    def active(self, when: float | None = None, holidays=()) -> bool:
        """Whether the user may pass at ``when`` (now by default)."""
        return self.access(when, holidays) is None


def minutes_of_day(hhmm: str) -> int:
    try:
        return _schedule.minutes_of_day(hhmm)
    except _schedule.ScheduleError as e:
        raise StoreError(str(e)) from None


def check_schedule(schedule) -> list:
    try:
        return _schedule.check_zones(schedule)
    except _schedule.ScheduleError as e:
        raise StoreError(str(e)) from None


def check_holidays_policy(policy: str) -> str:
    if policy not in _schedule.HOLIDAY_POLICIES:
        raise StoreError(f"holidays must be one of {', '.join(_schedule.HOLIDAY_POLICIES)}, "
                         f"got {policy!r}")
    return policy
