"""An enrolled person as the store keeps them: enabled, validity, weekly windows, template
version, label (sealed as one JSON record per user by ``device.store.store``)."""
from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass, field

from device.store.errors import StoreError


@dataclass
class User:
    """An enrolled person. ``schedule``: weekly windows ``[weekday, "HH:MM", "HH:MM"]``
    (weekday 0 = Monday, local time; an end before the start runs past midnight); empty =
    any time. ``valid_from``/``valid_until``: UNIX times or None."""

    user_id: str
    enabled: bool = True
    valid_from: float | None = None
    valid_until: float | None = None
    schedule: list = field(default_factory=list)
    version: int = 0
    label: str = ""

    def active(self, when: float | None = None) -> bool:
        """Whether the user may pass at ``when`` (now by default)."""
        when = time.time() if when is None else when
        if not self.enabled:
            return False
        if self.valid_from is not None and when < self.valid_from:
            return False
        if self.valid_until is not None and when >= self.valid_until:
            return False
        if not self.schedule:
            return True
        t = _dt.datetime.fromtimestamp(when)
        minute = t.hour * 60 + t.minute
        for day, start, end in self.schedule:
            s, e = minutes_of_day(start), minutes_of_day(end)
            if s <= e:
                if t.weekday() == day and s <= minute < e:
                    return True
            else:  # runs past midnight into the next day
                if (t.weekday() == day and minute >= s) or \
                        (t.weekday() == (day + 1) % 7 and minute < e):
                    return True
        return False


def minutes_of_day(hhmm: str) -> int:
    h, m = hhmm.split(":")
    v = int(h) * 60 + int(m)
    if not 0 <= v <= 24 * 60:
        raise StoreError(f"bad time of day {hhmm!r}")
    return v


def check_schedule(schedule) -> list:
    out = []
    for w in schedule or []:
        day, start, end = w
        if not 0 <= int(day) <= 6:
            raise StoreError(f"weekday must be 0 (Monday) .. 6, got {day}")
        minutes_of_day(start), minutes_of_day(end)
        out.append([int(day), str(start), str(end)])
    return out
