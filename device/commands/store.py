"""`palmgate store verify|accept-current`: the template store's own checks, and the audited way
to accept a copy whose generation counter was lost."""
from __future__ import annotations

import json

from device.commands.common import add_config, admin_audit, err, load_cfg, open_store


def cmd_store(a) -> int:
    from device.store.errors import StoreError
    cfg = load_cfg(a)
    if a.action == "verify":
        try:
            with open_store(cfg) as st:
                rep = {"ok": True, "path": cfg.paths.store, "schema": st.schema_version,
                       "generation": st.generation, "counter": st.counter.describe(),
                       "rows": st.verify(), "audit_records": st.audit.verify(), **st.count()}
        except StoreError as e:         # typed: corrupt, rollback, disk full, busy, ...
            print(json.dumps({"ok": False, "path": cfg.paths.store,
                              "error": type(e).__name__, "detail": str(e)}))
            return 1
        print(json.dumps(rep))
        return 0
    # accept-current
    if not a.reason:
        raise ValueError("store accept-current needs --reason TEXT (it goes to the audit log)")
    with open_store(cfg, allow_rollback=True) as st:
        before = st.generation
        gen = st.accept_current(reason=a.reason, audit=admin_audit(cfg))
        print(json.dumps({"ok": True, "generation_before": before, "generation": gen,
                          "counter": st.counter.describe()}))
    err("palmgate store accept-current: this copy of the store is now the current one "
        "(audit record store_accepted)")
    return 0


def register(sub) -> None:
    sp = sub.add_parser("store", help="verify the template store (integrity, generation, audit "
                                      "chain), or accept-current: accept this copy when its "
                                      "generation counter was lost (audited)")
    add_config(sp)
    sp.add_argument("action", choices=["verify", "accept-current"])
    sp.add_argument("--reason", default="", help="accept-current: why (audit record)")
    sp.set_defaults(fn=cmd_store)
