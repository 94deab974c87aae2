"""The site's holidays: local dates on which weekly time zones are closed (users whose schedule
says ``holidays = "allow"`` excepted; :mod:`device.store.schedule`). One meta record of the
store (``holidays``: JSON ``{"YYYY-MM-DD": "label"}``), written in a store transaction with its
audit record, so it is covered by the store's state MAC and generation like any other change.
"""
from __future__ import annotations

import json

from device.store.schedule import parse_holiday

META = "holidays"


def holidays(store) -> dict[str, str]:
    """{date: label} of the site's holidays, in date order."""
    raw = store.read_meta(META)
    if not raw:
        return {}
    d = json.loads(raw)
    return {k: d[k] for k in sorted(d)}


def holiday_dates(store) -> frozenset:
    return frozenset(holidays(store))


def _label(label) -> str:
    return str(label or "")[:100]


def clean_days(days: dict) -> dict:
    """``{date: label}`` with every date read as ``YYYY-MM-DD`` (:class:`ScheduleError`, a
    ``ValueError``, on the first that is not) and labels cut to 100 characters, in date
    order."""
    clean = {parse_holiday(d): _label(label) for d, label in dict(days).items()}
    return {k: clean[k] for k in sorted(clean)}


def _write(store, days: dict) -> None:
    store.write_meta(META, json.dumps(days, sort_keys=True, separators=(",", ":")).encode())


def add_holiday(store, date: str, label: str = "", audit: dict | None = None) -> dict:
    """Add (or relabel) a holiday; the change and its ``holiday_add`` record together."""
    day = parse_holiday(date)
    label = _label(label)
    with store.transaction():
        days = holidays(store)
        days[day] = label
        _write(store, days)
        store.audit.append("holiday_add", reason=day, **(audit or {}))
    return {"date": day, "label": label, "holidays": len(days)}


def remove_holiday(store, date: str, audit: dict | None = None) -> dict:
    day = parse_holiday(date)
    with store.transaction():
        days = holidays(store)
        if day not in days:
            raise ValueError(f"{day} is not a holiday (palmgate holidays list)")
        del days[day]
        _write(store, days)
        store.audit.append("holiday_remove", reason=day, **(audit or {}))
    return {"date": day, "removed": True, "holidays": len(days)}


def replace_holidays(store, days: dict, audit: dict | None = None) -> dict:
    """The whole list at once (the site's list, sent by the site service): validated first,
    then written with its ``holiday_sync`` record in one transaction (joins an outer one, as
    the sync client's batch). Returns ``{"holidays": n, "added": [...], "removed": [...]}``."""
    new = clean_days(days)
    with store.transaction():
        old = holidays(store)
        _write(store, new)
        added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
        why = f"site list: {len(new)} holidays, {len(added)} added, {len(removed)} removed"
        store.audit.append("holiday_sync", **dict({"reason": why}, **(audit or {})))
    return {"holidays": len(new), "added": added, "removed": removed}
