"""``palmgate-calibrate verify``: the unit's signed calibration file, loaded as the gate loads it
(signature, serial, age, required steps), and every step's recorded pass."""
from __future__ import annotations

from calibration.commands.common import InputError, finish
from calibration.limits import check
from device.store.keys import load_device_key
from device.vision.calibration import load_calibration


def cmd_verify(a) -> int:
    if not a.calfile or not a.key:
        raise InputError("verify needs --calfile and --key")
    key = load_device_key(a.key)
    required = tuple(s for s in (a.require or "").split(",") if s)
    max_age = a.max_age_days * 86400 if a.max_age_days else None
    cal = load_calibration(a.calfile, key, unit_serial=a.serial, max_age_s=max_age,
                           required=required)
    res = cal.results
    checks = []
    for step, r in sorted(res.items()):
        recs = r.items() if step == "intrinsics" else [("", r)]
        for sub, rec in recs:
            checks.append(check(f"{step}{'.' + sub if sub else ''}.pass", int(bool(rec.get("pass"))),
                                ">=", 1))
    out = {"step": "verify", "unit_serial": cal.unit_serial, "signed_utc": cal.doc.get("signed_utc"),
           "tool": cal.doc.get("tool"), "steps": sorted(res), "checks": checks}
    human = [f"calibration file {a.calfile}: signature OK, unit {cal.unit_serial}, "
             f"signed {cal.doc.get('signed_utc')}, steps {sorted(res)}"]
    return finish(a, out, human)
