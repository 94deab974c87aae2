"""``palmgate site recover``: give a gate added later (or a replaced one) every existing user,
without anyone enrolling again. Run by the holder of the site recovery private key, on a
machine of their choosing; the key never reaches the service.

1. the service lists the active users allowed on the gate that have no template sealed to it,
   with their recovery copies (plaintext templates sealed to the recovery public key);
2. here each copy is opened, protected for the gate under fresh seed-002 keys and sealed to
   the gate (pair key of the recovery key and the gate's key), and the plaintext is dropped;
3. the service stores and sends them as enrolments (sender "recovery").

The user's sensor templates (NIR palm patches, :mod:`device.site.sensor_wire`) go the same
way: the service keeps their record, sealed once under a content key, and that key sealed to
the recovery key (where the enrolling gate made them); here the key is opened and sealed to
the gate (the record itself is not opened); the recovery copy's AD names the record's
digest (:func:`device.site.sensor_wire.bind`), which the service passes along. A user whose enrolment carried none (an older
gate's upload) is recovered without them (``not_enrolled`` at the gate, as at every gate).
"""
from __future__ import annotations

import json
import logging
import urllib.request

from device.site import messages as M
from device.site import sensor_wire as SW
from device.site.sealing import SealError, open_sealed, pair_key, public_of, seal
from device.site.templates import decode_plain, encode_for_gate

log = logging.getLogger("palmgate.site.recover")


def recover_items(recovery_priv: bytes, site: str, gate: str, gate_pub: bytes, items,
                  config, importance=None, skipped: list | None = None) -> list[dict]:
    """Pure: the recovery copies ``items`` re-protected and sealed for ``gate``. A copy that
    does not open or decode is left out (that user stays not enrolled on the gate, and
    stays a recovery item) and appended to ``skipped`` as ``{"user_id", "enrol_id",
    "error"}``; the others are recovered."""
    key = pair_key(recovery_priv, gate_pub, "seal")
    out = []
    for it in items:
        try:
            out.append(_one(recovery_priv, key, site, gate, it, config, importance))
        except (SealError, ValueError, KeyError, TypeError, AttributeError) as e:
            uid = it.get("user_id") if isinstance(it, dict) else None
            log.warning("recovery copy of %r for gate %s skipped: %s", uid, gate, e)
            if skipped is not None:
                skipped.append({"user_id": str(uid), "enrol_id": str(
                    it.get("enrol_id") if isinstance(it, dict) else None),
                    "error": f"{type(e).__name__}: {e}"[:200]})
    return out


def _one(recovery_priv, key, site, gate, it, config, importance) -> dict:
    """One recovery copy re-protected and sealed for ``gate`` (raises if it does not open)."""
    uid, eid = it["user_id"], it["enrol_id"]
    dg = it.get("sensor_digest")     # its sensor record's, which the copy's AD names
    if bool(dg) != bool(it.get("sensor_key")):
        raise ValueError(f"the recovery copy of {uid!r} has a sensor record digest or key "
                         f"without the other")
    plain = decode_plain(open_sealed(recovery_priv, bytes.fromhex(it["blob"]),
                                     SW.bind(M.recovery_ad(site, uid, eid), dg)))
    blob = encode_for_gate(plain, config, importance)
    del plain
    item = {"user_id": uid, "enrol_id": eid,
            "sealed": seal(key, blob, SW.bind(M.template_ad(site, "recovery", gate, uid,
                                                            eid), dg)).hex()}
    if it.get("sensor_key"):        # the record's content key, sealed to the gate
        ck = open_sealed(recovery_priv, bytes.fromhex(it["sensor_key"]),
                         SW.recovery_key_ad(site, uid, eid))
        item["sensor_key"] = seal(key, ck, SW.key_ad(site, "recovery", gate, uid,
                                                     eid)).hex()
    return item


def _http(url: str, token: str, body=None):
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {token}",
                                          "Content-Type": "application/json"},
                                 method="GET" if body is None else "POST")
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def recover(service_url: str, token: str, recovery_priv: bytes, site_info: dict, gate: str,
            config, importance=None) -> dict:
    if site_info["recovery_pub"] != public_of(recovery_priv).hex():
        raise ValueError("this is not the site's recovery key")
    if gate not in site_info["gates"]:
        raise ValueError(f"gate {gate!r} is not in site.json (palmgate site add-gate first)")
    base = service_url.rstrip("/")
    _http(f"{base}/api/sync-gates", token, {})
    items = _http(f"{base}/api/recovery?gate={gate}", token)
    skipped: list[dict] = []
    sealed = recover_items(recovery_priv, site_info["site"], gate,
                           bytes.fromhex(site_info["gates"][gate]["pub"]), items, config,
                           importance, skipped)
    r = _http(f"{base}/api/recovered", token, {"gate": gate, "items": sealed,
                                               "skipped": skipped})
    return {"gate": gate, "recovered": len(sealed), "sent": r.get("sent"),
            "skipped": skipped}
