"""The schedule math (device.store.schedule): weekly time zones, holidays, validity windows, on
the gate's local wall clock (naive datetimes: no time zone, no DST arithmetic)."""
import datetime as dt

import pytest

from device.store.schedule import (ScheduleError, access_reason, format_weekly, in_zones,
                                   parse_days, parse_holiday, parse_weekly, window_bound)

MON = dt.datetime(2026, 12, 7)          # a Monday


def at(day: int, hh: int, mm: int = 0) -> dt.datetime:
    return MON + dt.timedelta(days=day, hours=hh, minutes=mm)


def test_days_and_zones_as_operators_write_them():
    assert parse_days("mon-fri") == [0, 1, 2, 3, 4]
    assert parse_days("fri-mon") == [4, 5, 6, 0]            # wraps over the week end
    assert parse_days("mon,wed,fri") == [0, 2, 4]
    assert parse_days("daily") == list(range(7))
    assert parse_days("Saturday") == [5]
    assert parse_weekly("mon-fri 07:00-19:00") == [[d, "07:00", "19:00"] for d in range(5)]
    assert parse_weekly("sat 8:00-12:00") == [[5, "08:00", "12:00"]]
    assert parse_weekly("sun 22:00-24:00") == [[6, "22:00", "24:00"]]
    for bad in ("mon-fri", "mon-fri 7-19", "xyz 07:00-19:00", "mon 07:00-07:00",
                "mon 25:00-26:00", "mon 07:60-08:00", "mo 07:00-08:00"):
        with pytest.raises(ScheduleError):
            parse_weekly(bad)
    with pytest.raises(ScheduleError, match="--weekly"):
        parse_weekly("weekdays")


def test_zones_written_back_grouped():
    z = parse_weekly("mon-fri 07:00-19:00") + parse_weekly("sat 08:00-12:00")
    assert format_weekly(z) == ["mon-fri 07:00-19:00", "sat 08:00-12:00"]
    assert format_weekly(parse_weekly("mon,wed,thu 06:00-07:00")) == ["mon,wed-thu 06:00-07:00"]
    assert format_weekly(parse_weekly("daily 00:00-24:00")) == ["daily 00:00-24:00"]
    assert format_weekly([]) == []


def test_in_zones_bounds_and_past_midnight():
    z = parse_weekly("mon-fri 07:00-19:00")
    assert in_zones(z, at(0, 7)) and in_zones(z, at(4, 18, 59))
    assert not in_zones(z, at(0, 6, 59)) and not in_zones(z, at(0, 19))   # end excluded
    assert not in_zones(z, at(5, 10))                                     # Saturday
    night = parse_weekly("fri 22:00-06:00")
    assert in_zones(night, at(4, 22)) and in_zones(night, at(5, 5, 59))   # into Saturday
    assert not in_zones(night, at(5, 6)) and not in_zones(night, at(4, 21, 59))
    assert not in_zones(night, at(0, 5))                                  # not Monday night
    sun = parse_weekly("sun 22:00-02:00")                                 # into Monday
    assert in_zones(sun, at(0, 1)) and in_zones(sun, at(6, 23))


def _reason(local, zones=(), policy="closed", holidays=(), vf=None, vu=None, enabled=True):
    return access_reason(enabled, vf, vu, list(zones), policy, local.timestamp(), local,
                         holidays)


def test_access_reasons_in_order():
    z = parse_weekly("mon-fri 07:00-19:00")
    t = at(0, 9)
    assert _reason(t, z) is None
    assert _reason(at(0, 20), z) == "outside_schedule"
    assert _reason(t, z, enabled=False) == "user_disabled"
    assert _reason(t, z, vf=at(1, 0).timestamp()) == "not_yet_valid"
    assert _reason(t, z, vu=t.timestamp()) == "expired"                  # until: exclusive
    assert _reason(t, z, vu=t.timestamp() + 1) is None
    assert _reason(t, vf=at(1, 0).timestamp(), enabled=False) == "user_disabled"


def test_holidays_close_weekly_zones_only():
    z = parse_weekly("mon-fri 07:00-19:00")
    xmas = ["2026-12-07"]                                     # that Monday
    assert _reason(at(0, 9), z, holidays=xmas) == "holiday"
    assert _reason(at(0, 9), z, holidays=xmas, policy="allow") is None
    assert _reason(at(0, 20), z, holidays=xmas, policy="allow") == "outside_schedule"
    assert _reason(at(1, 9), z, holidays=xmas) is None        # the next day
    assert _reason(at(0, 9), (), holidays=xmas) is None       # no zones: any time
    # the part of a night zone after midnight falls on the holiday's date: closed
    night = parse_weekly("sun 22:00-06:00")
    assert _reason(at(0, 2), night) is None
    assert _reason(at(0, 2), night, holidays=xmas) == "holiday"


def test_local_wall_clock_without_dst_arithmetic():
    # the decision reads the wall clock it is given: 02:30 on the night clocks go forward
    # in Europe (a time that does not exist there) is simply 02:30
    z = parse_weekly("sun 02:00-03:00")
    gap = dt.datetime(2026, 3, 29, 2, 30)
    assert in_zones(z, gap) and _reason(gap, z) is None
    assert not in_zones(z, dt.datetime(2026, 3, 29, 3, 0))
    # window bounds: a bare date starts at its local midnight; as an end it includes the day
    assert window_bound("2026-12-01", end=False) == dt.datetime(2026, 12, 1)
    assert window_bound("2026-12-01", end=True) == dt.datetime(2026, 12, 2)
    assert window_bound("2026-12-01T08:30", end=True) == dt.datetime(2026, 12, 1, 8, 30)
    for bad in ("2026-13-01", "tomorrow", "2026-12-01T08:00+02:00"):
        with pytest.raises(ScheduleError):
            window_bound(bad, end=False)


def test_holiday_dates():
    assert parse_holiday("2026-12-25") == "2026-12-25"
    with pytest.raises(ScheduleError, match="whole day"):
        parse_holiday("2026-12-25T10:00")
    with pytest.raises(ScheduleError):
        parse_holiday("25.12.2026")
