"""`palmgate users list|show|disable|enable|delete` (and the door actions of
device/commands/users_door.py: add-credential, remove-credential, mode, label)."""
from __future__ import annotations

import json
import time

from device.commands.common import (add_config, add_operator, admin_audit, err, load_cfg,
                                    open_store, operator)
from device.commands.users_door import DOOR_ACTIONS, add_door_options, door_action, door_details
from device.commands.users_schedule import (SCHEDULE_ACTIONS, add_schedule_options,
                                            schedule_action, schedule_view)


# ------------------------------------------------------------------ users
def _user_dict(u, n_templates=None, holidays=()) -> dict:
    d = {"user_id": u.user_id, "enabled": u.enabled, "version": u.version, "label": u.label,
         "valid_from": u.valid_from, "valid_until": u.valid_until, "schedule": u.schedule,
         "active_now": u.active(time.time(), holidays), **schedule_view(u, holidays)}
    if n_templates is not None:
        d["templates"] = n_templates
    return d


def cmd_users(a) -> int:
    from device.store.holidays import holiday_dates
    cfg = load_cfg(a)
    with open_store(cfg) as st:
        days = holiday_dates(st)
        if a.action == "list":
            for u in st.users():
                print(json.dumps(_user_dict(u, holidays=days)))
            return 0
        if not a.user_id:
            raise ValueError(f"users {a.action} needs a USER_ID")
        if a.action == "show":
            u = st.get_user(a.user_id)
            if u is None:
                raise ValueError(f"no user {a.user_id!r}")
            from device.store.sensor_templates import count
            print(json.dumps({**_user_dict(u, len(st.templates(a.user_id)), days),
                              "sensor_templates": count(st, a.user_id),
                              **door_details(st, a.user_id)}, indent=2))
        elif a.action in DOOR_ACTIONS:
            print(json.dumps(door_action(a, cfg, st)))
        elif a.action in SCHEDULE_ACTIONS:
            print(json.dumps(schedule_action(a, cfg, st)))
        elif a.action in ("disable", "enable"):
            # the change and its audit record commit together (one transaction)
            u = st.set_enabled(a.user_id, a.action == "enable", audit=admin_audit(cfg, a))
            print(json.dumps(_user_dict(u, holidays=days)))
        elif a.action == "delete" and cfg.split.mode == "split":
            return _delete_split(cfg, st, a.user_id, a.wait)
        elif a.action == "delete":
            n = st.delete_user(a.user_id, audit=admin_audit(cfg, a))
            print(json.dumps({"user_id": a.user_id, "deleted_templates": n}))
    return 0


def _delete_split(cfg, st, user_id: str, wait_s: float) -> int:
    """``users delete`` in split mode: the user's template slots are tombstoned on both
    nodes (and a plaintext record of the same id, if any, deleted from the store). Exit 0
    when both nodes confirmed; 1 when the delete is pending on a node (recorded in the store
    and the audit log; the gate retries it before its next job and denies meanwhile); an
    id that neither node nor the store holds is an error (exit 2)."""
    from device.gate.split_stage import SplitStage
    from device.store.store import StoreError
    local = None
    if st.get_user(user_id) is not None:
        local = st.delete_user(user_id, audit=admin_audit(cfg))
    stage = SplitStage(cfg)
    stage.store = st
    try:
        r = stage.delete(user_id, wait_s=wait_s)
    finally:
        stage.close()
    if local is not None:
        r["deleted_templates"] = local
    if r["status"] == "unknown":
        if local is not None:
            print(json.dumps(r))
            return 0
        raise StoreError(f"no user {user_id!r}: neither split node holds a template of it "
                         f"(and the store has no record)")
    print(json.dumps(r))
    if r["status"] == "pending":
        err(f"palmgate users delete: {user_id!r} is NOT yet deleted on node(s) "
             f"{', '.join(map(str, r['pending_nodes']))} ({r.get('error')}); the delete is "
             f"recorded as pending: the gate sends it again before its next job and denies "
             f"every presentation until both nodes have it")
        return 1
    err(f"palmgate users delete: {user_id!r} deleted on both nodes (slots "
         f"{r.get('slots')} tombstoned)" if r.get("nodes") else
         f"palmgate users delete: {user_id!r} deleted on both nodes by {r.get('applied_by')}")
    return 0


def register(sub) -> None:
    sp = sub.add_parser("users", help="list / show / disable / enable / delete enrolled users; "
                                      "add-credential / remove-credential (cards), set-pin / "
                                      "remove-pin (keypad), mode (palm, card+palm or "
                                      "pin+palm), label; schedule (validity, weekly zones, "
                                      "holidays); unlock (lockout reset)")
    add_config(sp)
    sp.add_argument("action", choices=["list", "show", "disable", "enable", "delete",
                                       *DOOR_ACTIONS, *SCHEDULE_ACTIONS])
    sp.add_argument("user_id", nargs="?")
    sp.add_argument("--wait", type=float, default=10.0, metavar="S",
                    help="split mode, delete: when the nodes cannot be reached (a node down, "
                         "or the running gate holds their links), wait up to S seconds for "
                         "the running gate to apply it before reporting it pending")
    add_door_options(sp)
    add_schedule_options(sp)
    add_operator(sp)
    sp.set_defaults(fn=cmd_users)
