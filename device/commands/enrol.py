"""`palmgate enroll | identify | verify`: enrolment and decisions on recorded bursts."""
from __future__ import annotations

import json
import time

from device.commands.common import add_config, admin_audit, load_cfg, open_store, read_bursts


# ------------------------------------------------------------------ enrol / identify / verify
def cmd_enroll(a) -> int:
    from device.gate.enrol import enrol_user
    from device.gate.pipeline import Pipeline
    cfg = load_cfg(a)
    if not a.burst and a.synthetic is None:
        raise ValueError("give --burst DIR (recorded bursts) or --synthetic PERSON")
    bursts = read_bursts(a.burst or [], cfg.gate.views)
    if a.synthetic is not None:
        from device.synth.source import SyntheticPeople
        people = SyntheticPeople(seed=a.seed, views=cfg.gate.views, sensor=cfg.liveness.sensor)
        bursts += [people.burst(a.synthetic, "enrol", k) for k in range(a.presentations)]
    pipe = Pipeline(cfg)
    try:
        with open_store(cfg) as st:
            r = enrol_user(pipe, st, a.user_id, bursts, replace=a.replace, label=a.label,
                           operator=admin_audit(cfg)["operator"])
    finally:
        pipe.close()
    r.pop("rois")
    print(json.dumps(r))
    return 0


def _decide(a, claimed):
    from device.gate.gallery import load_gallery
    from device.gate.pipeline import Pipeline
    cfg = load_cfg(a)
    pipe = Pipeline(cfg)
    out = []
    try:
        with open_store(cfg) as st:
            pipe.gallery, pipe.versions = load_gallery(
                st, pipe.protect_config, pipe.extractor.importance, when=time.time(),
                shifts=pipe.extractor.shifts, shortlist=cfg.match.shortlist,
                storage=cfg.match.storage)
        for b in read_bursts(a.burst, cfg.gate.views):
            d = pipe.decide(b, claimed)
            out.append(d.summary())
            print(json.dumps(d.summary()), flush=True)
    finally:
        pipe.close()
    return 0 if out and all(o["decision"] == "open" for o in out) else 1


def cmd_identify(a) -> int:
    """1:N on recorded bursts, no relay: prints each decision; exit 0 when all matched."""
    return _decide(a, None)


def cmd_verify(a) -> int:
    """1:1 against USER_ID on recorded bursts, no relay."""
    return _decide(a, a.user_id)

def register(sub) -> None:
    sp = sub.add_parser("enroll", help="enrol a user from recorded bursts (or a synthetic "
                                       "person) into the sealed store")
    add_config(sp)
    sp.add_argument("user_id")
    sp.add_argument("--burst", action="append", help="burst folder, or a folder of bursts "
                                                     "(repeatable)")
    sp.add_argument("--synthetic", type=int, default=None, metavar="PERSON",
                    help="render synthetic person PERSON's enrolment presentations instead")
    sp.add_argument("--presentations", type=int, default=2, help="with --synthetic")
    sp.add_argument("--seed", type=int, default=0, help="with --synthetic")
    sp.add_argument("--replace", action="store_true", help="re-enrol (revokes the old "
                                                           "templates)")
    sp.add_argument("--label", default="")
    sp.set_defaults(fn=cmd_enroll)

    for name, fn, hlp in (("identify", cmd_identify, "1:N on recorded bursts (no relay)"),
                          ("verify", cmd_verify, "1:1 against USER_ID on recorded bursts "
                                                 "(no relay)")):
        sp = sub.add_parser(name, help=hlp)
        add_config(sp)
        if name == "verify":
            sp.add_argument("user_id")
        sp.add_argument("--burst", action="append", required=True)
        sp.set_defaults(fn=fn)
