"""`palmgate holidays add DATE [--label TEXT] | list | remove DATE`: the site's holidays, on
which users' weekly time zones are closed (unless their schedule says ``--holidays allow``).
Each change writes its audit record (``holiday_add``/``holiday_remove``, with the operator) in
the same store transaction."""
from __future__ import annotations

import json

from device.commands.common import add_config, add_operator, admin_audit, load_cfg, open_store


def cmd_holidays(a) -> int:
    from device.store import holidays as hol
    from device.store.schedule import ScheduleError
    cfg = load_cfg(a)
    with open_store(cfg) as st:
        if a.action == "list":
            for day, label in hol.holidays(st).items():
                print(json.dumps({"date": day, "label": label}))
            return 0
        if not a.date:
            raise ValueError(f"holidays {a.action} needs a DATE (YYYY-MM-DD)")
        try:
            if a.action == "add":
                rep = hol.add_holiday(st, a.date, a.label or "", audit=admin_audit(cfg, a))
            else:
                rep = hol.remove_holiday(st, a.date, audit=admin_audit(cfg, a))
        except ScheduleError as e:
            raise ValueError(f"DATE: {e}") from None
        print(json.dumps(rep))
    return 0


def register(sub) -> None:
    sp = sub.add_parser("holidays", help="the site's holidays: add DATE [--label] / list / "
                                         "remove DATE (a holiday closes weekly time zones)")
    add_config(sp)
    sp.add_argument("action", choices=["add", "list", "remove"])
    sp.add_argument("date", nargs="?", help="the holiday, YYYY-MM-DD (the gate's local date)")
    sp.add_argument("--label", default=None, metavar="TEXT", help="add: a name for the day")
    add_operator(sp)
    sp.set_defaults(fn=cmd_holidays)
