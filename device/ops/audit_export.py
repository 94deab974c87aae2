"""Audit records out of the store for the site's records: a date range, JSON lines or CSV.

``parse_when("2026-12-05")`` (midnight UTC), ``"2026-12-05T14:30"``, ``"2026-12-05T14:30:00Z"``
or a UNIX time -> seconds; ``--to`` with a bare date means the end of that day (UTC).
``write(records, out, fmt)``: one JSON object per line, or CSV with the columns ``seq``, ``ts``,
``time``, ``kind`` and then every payload field that occurs, in first-seen order.
"""
from __future__ import annotations

import csv
import json
import re
from datetime import datetime, timedelta, timezone

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_when(text: str, end_of_day: bool = False, option: str = "--from") -> float:
    t = text.strip()
    try:
        return float(t)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{option} {text!r}: give a date (2026-12-05), a date and time "
                         f"(2026-12-05T14:30, UTC unless it says +02:00) or a UNIX time") \
            from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    if end_of_day and _DATE.fullmatch(t):
        dt += timedelta(days=1)
    return dt.timestamp()


def select(records, since: float | None = None, until: float | None = None) -> list:
    """Records with ``since <= ts < until`` (either bound may be None)."""
    return [r for r in records if (since is None or r["ts"] >= since)
            and (until is None or r["ts"] < until)]


def write(rows: list[dict], out, fmt: str = "jsonl") -> int:
    if fmt == "jsonl":
        with open(out, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    elif fmt == "csv":
        cols = ["seq", "ts", "time", "kind"]
        for r in rows:
            cols += [k for k in r if k not in cols]
        with open(out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    else:
        raise ValueError(f"--format {fmt!r}: use jsonl or csv")
    return len(rows)
