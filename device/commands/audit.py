"""`palmgate audit show|export|verify-chain`."""
from __future__ import annotations

import json

from device.commands.common import add_config, audit_dict, err, load_cfg, open_store



def cmd_audit(a) -> int:
    cfg = load_cfg(a)
    with open_store(cfg) as st:
        if a.action == "verify-chain":
            try:
                n = st.audit.verify()
            except Exception as e:  # noqa: BLE001 - AuditError names the first bad record
                print(json.dumps({"ok": False, "error": str(e)}))
                return 1
            print(json.dumps({"ok": True, "records": n}))
            return 0
        recs = st.audit.records(since=a.since)
        if a.action == "show":
            for r in recs[-a.last:] if a.last else recs:
                print(json.dumps(audit_dict(r)))
        else:                                   # export
            from device.ops.audit_export import parse_when, select, write
            if not a.out:
                raise ValueError("audit export needs --out FILE")
            since = parse_when(a.date_from) if a.date_from else None
            until = parse_when(a.date_to, end_of_day=True, option="--to") if a.date_to \
                else None
            rows = select([audit_dict(r) for r in recs], since, until)
            fmt = a.format or ("csv" if a.out.endswith(".csv") else "jsonl")
            n = write(rows, a.out, fmt)
            err(f"exported {n} audit records to {a.out} ({fmt})")
            print(json.dumps({"records": n, "out": a.out, "format": fmt,
                              "first_seq": rows[0]["seq"] if rows else None,
                              "last_seq": rows[-1]["seq"] if rows else None}))
    return 0


def register(sub) -> None:
    sp = sub.add_parser("audit", help="show / export / verify-chain of the audit log")
    add_config(sp)
    sp.add_argument("action", choices=["show", "export", "verify-chain"])
    sp.add_argument("--since", type=int, default=0, help="records after this sequence number")
    sp.add_argument("--last", type=int, default=0, help="show: only the last N")
    sp.add_argument("--out", default=None, help="export: the file (JSON lines, or CSV when it "
                                                "ends in .csv or with --format csv)")
    sp.add_argument("--from", dest="date_from", default=None, metavar="WHEN",
                    help="export: records from this date/time on (2026-12-01, "
                         "2026-12-01T08:00; UTC unless an offset is given)")
    sp.add_argument("--to", dest="date_to", default=None, metavar="WHEN",
                    help="export: records before this date/time (a bare date: to the end of "
                         "that day)")
    sp.add_argument("--format", choices=["jsonl", "csv"], default=None)
    sp.set_defaults(fn=cmd_audit)
