"""The service's recovery calls (run on its thread through ``SiteService.call``, as the other
admin operations of :mod:`device.site.service`, which re-exports them):

- ``recovery_items(svc, gate)``: the recovery copies of the active users allowed on ``gate``
  that have neither a ciphertext sealed to it waiting nor their current enrolment delivered
  there (a gate added later, a replaced one after ``forget_gate``, a gate that lost a user
  through ``set_gates`` and got them back);
- ``add_recovered(svc, gate, items, skipped)``: what ``palmgate site recover`` sealed for the
  gate, stored and sent as enrolments; the copies it could not open are recorded as events;
- ``forget_gate(svc, gate)``: a replaced unit: forget what was delivered to the old one.
"""
from __future__ import annotations

import json

from device.site import sensor_keep as K
from device.site.access import send_holidays
from device.site.access import writes as _writes


def recovery_items(svc, gate: str) -> list[dict]:
    """Active users allowed on ``gate`` that have neither a template sealed to it waiting nor
    their current enrolment delivered there: their recovery copies (sealed to the recovery
    key), for ``recover``. A replaced gate: ``forget_gate`` first."""
    out = []
    for uid, eid, blob, gj in svc.db.execute(
            "SELECT u.user_id, r.enrol_id, r.blob, u.gates FROM users u JOIN recovery r USING "
            "(user_id) WHERE u.state='active' AND NOT EXISTS (SELECT 1 FROM sealed s WHERE "
            "s.user_id=u.user_id AND s.gate_id=?) AND NOT EXISTS (SELECT 1 FROM delivered d "
            "WHERE d.user_id=u.user_id AND d.gate_id=? AND d.enrol_id=u.enrol_id)",
            (gate, gate)):
        if gj is None or gate in json.loads(gj):
            out.append({"user_id": uid, "enrol_id": eid, "blob": bytes(blob).hex(),
                        **K.recovery_key(svc.db, uid, eid)})
    return out


@_writes
def add_recovered(svc, gate: str, items, skipped=None, out=None) -> dict:
    """Templates that ``recover`` protected and sealed for ``gate`` (from the recovery key):
    stored and sent as enrolments. ``skipped``: the copies ``recover`` could not open, each
    recorded as an event (those users stay not enrolled there, and recovery items)."""
    svc._sync_gates()
    svc._publish_rosters(out)
    n = 0
    for it in items:
        uid, eid = it["user_id"], it["enrol_id"]
        row = svc.db.execute("SELECT state, enrol_id, attrs, label FROM users WHERE "
                             "user_id=?", (uid,)).fetchone()
        if row is None or row[0] != "active" or row[1] != eid:
            continue                          # revoked or re-enrolled since: not sent
        svc.db.execute("INSERT OR REPLACE INTO sealed VALUES(?,?,?,?,?)",
                       (uid, gate, eid, "recovery", bytes.fromhex(it["sealed"])))
        K.keep_recovered(svc.db, gate, uid, eid, it.get("sensor_key"))
        v = svc._next_version()
        svc.db.execute("UPDATE users SET version=? WHERE user_id=?", (v, uid))
        svc._change(gate, "enrol", uid, v,
                    {"from": "recovery", "from_pub": svc.info["recovery_pub"],
                     "enrol_id": eid, "user": dict(json.loads(row[2] or "{}"),
                                                   label=row[3] or "")}, out)
        n += 1
    if skipped is not None and not (isinstance(skipped, list)
                                    and all(isinstance(x, dict) for x in skipped)):
        raise ValueError("skipped must be a list of {user_id, enrol_id, error} objects")
    names = [str(x.get("user_id"))[:100] for x in skipped or []]
    for x, uid in zip(skipped or [], names):
        svc._event("recover-skipped", f"{uid} not recovered for gate {gate}: its recovery "
                                      f"copy did not open ({str(x.get('error'))[:200]})")
    svc._event("recover", f"{n} users recovered for gate {gate}"
                          + (f", {len(names)} skipped" if names else ""))
    return {"gate": gate, "sent": n, "skipped": names}


@_writes
def forget_gate(svc, gate: str, out=None) -> dict:
    """A gate replaced (new unit, empty store): forget what was delivered to it, so that
    ``recover`` gives it every user again."""
    n = svc.db.execute("DELETE FROM delivered WHERE gate_id=?", (gate,)).rowcount
    send_holidays(svc, gate, out)               # its new store has no list yet
    svc._event("forget", f"gate {gate} replaced: {n} deliveries forgotten")
    return {"gate": gate, "forgotten": n}
