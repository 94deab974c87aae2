"""`palmgate enroll | identify | verify`: enrolment and decisions on recorded bursts."""
from __future__ import annotations

import json

from device.commands.common import (add_config, load_cfg, open_store, operator,
                                    read_bursts)


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
    site = None
    if cfg.site.enabled:        # sealed for every gate of the site, sent by the sync client
        from device.site.client import outbox_hook
        site = outbox_hook(cfg, pipe.protect_config, pipe.extractor.importance)
    try:
        with open_store(cfg) as st:
            label = a.label
            if label is None:                   # --replace keeps the label it had
                old = st.get_user(a.user_id) if a.replace else None
                label = old.label if old is not None else ""
            r = enrol_user(pipe, st, a.user_id, bursts, replace=a.replace, label=label,
                           site=site, allow_duplicate=a.allow_duplicate,
                           operator=operator(a))
    finally:
        pipe.close()
    r.pop("rois")
    print(json.dumps(r))
    return 0


def _decide(a, claimed):
    from device.gate.pipeline import Pipeline
    cfg = load_cfg(a)
    pipe = Pipeline(cfg)
    out = []
    try:
        with open_store(cfg) as st:
            pipe.load_gallery(st)
        for b in read_bursts(a.burst, cfg.gate.views):
            d = pipe.decide(b, claimed)
            s = d.debug() if a.scores else d.summary()
            out.append(s)
            print(json.dumps(s), flush=True)
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
    sp.add_argument("--label", default=None, help="the user's label (default: none; with "
                                                    "--replace, the label they had)")
    sp.add_argument("--allow-duplicate", action="store_true",
                    help="enrol even when the palm matches another enrolled user at the "
                         "identification threshold (twins' hands and the like); audited")
    sp.set_defaults(fn=cmd_enroll)

    for name, fn, hlp in (("identify", cmd_identify, "1:N on recorded bursts (no relay)"),
                          ("verify", cmd_verify, "1:1 against USER_ID on recorded bursts "
                                                 "(no relay)")):
        sp = sub.add_parser(name, help=hlp)
        add_config(sp)
        if name == "verify":
            sp.add_argument("user_id")
        sp.add_argument("--burst", action="append", required=True)
        sp.add_argument("--scores", action="store_true",
                        help="debugging: also print the exact score, threshold and p(live) "
                             "(never shown by the running gate)")
        sp.set_defaults(fn=fn)
