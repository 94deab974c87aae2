"""`palmgate audit show|export|verify|verify-chain|archive|prune`.

    audit verify [--archive FILE]      the store's chain (from its archive anchor), or a file
    audit archive --before DATE --out FILE    records before DATE to FILE, then removed
    audit prune                        [audit] retention_days: archive into archive_dir, remove
"""
from __future__ import annotations

import json

from device.commands.common import (add_config, add_operator, admin_audit, audit_dict, err,
                                    load_cfg, open_store)


def _verify_store(st) -> int:
    try:
        n = st.audit.verify()
        anchor = st.audit.anchor()
    except Exception as e:  # noqa: BLE001 - AuditError names the first bad record
        print(json.dumps({"ok": False, "error": str(e)}))
        return 1
    print(json.dumps({"ok": True, "records": n, "archived": anchor["seq"],
                      "archives": len(anchor["archives"])}))
    return 0


def _verify_archive(a) -> int:
    """An archive file: its chain alone; with a configuration, also this unit's MACs and
    the store's record of the archive."""
    from device.commands.common import config_path
    from device.store.audit_archive import ArchiveError, verify_archive
    try:
        config_path(a.config)
        cfg = load_cfg(a)
    except ValueError:
        cfg = None                          # an office PC with the file only: the chain
    try:
        if cfg is None:
            rep = verify_archive(a.archive)
        else:
            with open_store(cfg) as st:
                rep = verify_archive(a.archive, mac=st.audit._mac, anchor=st.audit.anchor())
    except ArchiveError as e:
        print(json.dumps({"ok": False, "archive": a.archive, "error": str(e)}))
        return 1
    print(json.dumps({**rep, "archive": a.archive}))
    return 0


def cmd_audit(a) -> int:
    if a.action == "verify" and a.archive:
        return _verify_archive(a)
    if a.archive:
        raise ValueError("--archive FILE goes with audit verify")
    cfg = load_cfg(a)
    with open_store(cfg) as st:
        if a.action in ("verify", "verify-chain"):
            return _verify_store(st)
        if a.action in ("archive", "prune"):
            return _archive(a, cfg, st)
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


def _archive(a, cfg, st) -> int:
    from device.ops.audit_retention import archive_dir
    from device.store.audit_archive import ArchiveError, archive_before, prune
    try:
        if a.action == "prune":
            rep = prune(st, cfg.audit.retention_days, archive_dir(cfg),
                        audit=admin_audit(cfg, a))
        else:
            from device.ops.audit_export import parse_when
            if not a.before or not a.out:
                raise ValueError("audit archive needs --before DATE and --out FILE")
            rep = archive_before(st, parse_when(a.before, option="--before"), out=a.out,
                                 audit=admin_audit(cfg, a))
    except ArchiveError as e:
        raise ValueError(str(e)) from None
    print(json.dumps(rep))
    if rep["records"]:
        err(f"archived audit records {rep['first_seq']}-{rep['last_seq']} to {rep['out']} "
            f"and removed them from the store")
    else:
        err("no audit record to archive" + ("" if a.action == "archive" or
                                            cfg.audit.retention_days else
                                            " ([audit] retention_days = 0 keeps them all)"))
    return 0


def register(sub) -> None:
    sp = sub.add_parser("audit", help="show / export / verify (the store, or an archive "
                                      "file) / archive / prune of the audit log")
    add_config(sp)
    sp.add_argument("action", choices=["show", "export", "verify", "verify-chain", "archive",
                                       "prune"])
    sp.add_argument("--since", type=int, default=0, help="records after this sequence number")
    sp.add_argument("--last", type=int, default=0, help="show: only the last N")
    sp.add_argument("--out", default=None, help="export: the file (JSON lines, or CSV when it "
                                                "ends in .csv or with --format csv); archive: "
                                                "the archive file (never overwritten)")
    sp.add_argument("--from", dest="date_from", default=None, metavar="WHEN",
                    help="export: records from this date/time on (2026-12-01, "
                         "2026-12-01T08:00; UTC unless an offset is given)")
    sp.add_argument("--to", dest="date_to", default=None, metavar="WHEN",
                    help="export: records before this date/time (a bare date: to the end of "
                         "that day)")
    sp.add_argument("--format", choices=["jsonl", "csv"], default=None)
    sp.add_argument("--before", default=None, metavar="WHEN",
                    help="archive: the records before this date/time (UTC unless an offset "
                         "is given) go to --out and leave the store")
    sp.add_argument("--archive", default=None, metavar="FILE",
                    help="verify: check this archive file (its chain; with a configuration "
                         "also this unit's MACs and the store's record of it)")
    add_operator(sp)
    sp.set_defaults(fn=cmd_audit)
