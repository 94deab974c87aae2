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
            if not a.out:
                raise ValueError("audit export needs --out FILE")
            with open(a.out, "w") as f:
                for r in recs:
                    f.write(json.dumps(audit_dict(r)) + "\n")
            err(f"exported {len(recs)} audit records to {a.out}")
            print(json.dumps({"records": len(recs), "out": a.out}))
    return 0


def register(sub) -> None:
    sp = sub.add_parser("audit", help="show / export / verify-chain of the audit log")
    add_config(sp)
    sp.add_argument("action", choices=["show", "export", "verify-chain"])
    sp.add_argument("--since", type=int, default=0, help="records after this sequence number")
    sp.add_argument("--last", type=int, default=0, help="show: only the last N")
    sp.add_argument("--out", default=None, help="export: JSON-lines file")
    sp.set_defaults(fn=cmd_audit)
