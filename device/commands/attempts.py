"""`palmgate attempts show | reset [USER] [--terminal]`: the attempt limiter's counters in the
store, and the admin reset (audited). The running gate reads the counters at every
presentation, so a reset takes effect at the next one."""
from __future__ import annotations

import json

from device.commands.common import add_config, add_operator, admin_audit, load_cfg, open_store


def limiter_for(cfg, store):
    from device.store.attempts import AttemptLimiter
    a = cfg.attempts
    return AttemptLimiter(liveness=cfg.liveness.enabled, max_failures=a.max_failures or None,
                          base_delay=a.base_delay_s, max_delay=a.max_delay_s,
                          terminal_max_failures=a.terminal_max_failures or None,
                          terminal_decay_s=a.terminal_decay_s, store=store,
                          terminal=cfg.gate.terminal)


def cmd_attempts(a) -> int:
    cfg = load_cfg(a)
    with open_store(cfg) as st:
        lim = limiter_for(cfg, st)
        if a.action == "show":
            snap = lim.snapshot()
            if a.user_id:
                snap["users"] = {a.user_id: snap["users"].get(
                    a.user_id, {"failures": 0, "wait_s": 0.0})}
            print(json.dumps(snap, indent=2))
            return 0
        if not a.user_id and not a.terminal:
            raise ValueError("attempts reset needs a USER_ID, --terminal, or both")
        if a.user_id and st.get_user(a.user_id) is None and \
                a.user_id not in lim.snapshot()["users"]:
            raise ValueError(f"no user {a.user_id!r} (and no attempt counter of that id)")
        print(json.dumps(lim.reset(a.user_id or None, terminal=a.terminal,
                                   audit=admin_audit(cfg, a))))
    return 0


def register(sub) -> None:
    sp = sub.add_parser("attempts", help="attempt limiter: show the counters, or reset a "
                                         "user's (and/or the terminal's) lockout (audited)")
    add_config(sp)
    sp.add_argument("action", choices=["show", "reset"])
    sp.add_argument("user_id", nargs="?", help="the user whose counter to show or reset")
    sp.add_argument("--terminal", action="store_true",
                    help="reset: also (or only) the terminal-wide counter")
    add_operator(sp)
    sp.set_defaults(fn=cmd_attempts)
