"""`palmgate enroll | identify | verify`: enrolment (at the terminal with --capture, or from
recorded bursts) and decisions on recorded bursts."""
from __future__ import annotations

import json

from device.commands.common import (add_config, add_operator, load_cfg, open_store,
                                    operator, read_bursts)


# ------------------------------------------------------------------ enrol / identify / verify
def cmd_enroll(a) -> int:
    from device.gate.enrol import enrol_user
    from device.gate.pipeline import Pipeline
    cfg = load_cfg(a)
    dirs = (a.burst or []) + ([a.burst_dir] if a.burst_dir else [])
    if a.capture and dirs:
        raise ValueError("give either --capture (live, from the configured source) or "
                         "recorded bursts (DIR / --burst DIR), not both")
    if not a.capture and not dirs and a.synthetic is None:
        raise ValueError("give --capture (at the terminal), a folder of recorded bursts "
                         "(palmgate enroll NAME DIR, or --burst DIR), or --synthetic PERSON")
    bursts = read_bursts(dirs, cfg.gate.views)
    presentations = 2 if a.presentations is None else a.presentations
    if a.synthetic is not None and not a.capture:
        from device.synth.source import SyntheticPeople
        people = SyntheticPeople(seed=a.seed, views=cfg.gate.views, sensor=cfg.liveness.sensor)
        bursts += [people.burst(a.synthetic, "enrol", k) for k in range(presentations)]
    pipe = Pipeline(cfg)
    if a.capture:                           # live: the gate's prompts until N good ones
        from device.gate.enrol_capture import PRESENTATIONS
        bursts = _capture(a, cfg, pipe, PRESENTATIONS if a.presentations is None
                          else presentations)
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
    if a.capture:
        r["presentations"] = len(bursts)
    print(json.dumps(r))
    return 0


def _capture(a, cfg, pipe, n: int) -> list:
    """The capture session (device/gate/enrol_capture.py); a failed one is audited
    (``enrol_refused``) and nothing else is written."""
    from device.gate.enrol_capture import (CaptureFailed, Prompter, capture_presentations,
                                           enrolment_source)
    with open_store(cfg) as st:             # before anyone holds a hand out
        if st.get_user(a.user_id) is not None and not a.replace:
            pipe.close()
            raise ValueError(f"{a.user_id!r} is already enrolled: use --replace to re-enrol")
    try:
        src = enrolment_source(cfg, a.synthetic, n, a.retries)
        say = Prompter(speak=a.speak).say
        return capture_presentations(pipe, src, n, retries=a.retries, timeout_s=a.timeout,
                                     interval_s=a.interval, say=say)
    except CaptureFailed as e:
        try:
            with open_store(cfg) as st:
                st.audit.append("enrol_refused", user_id=a.user_id, reason=e.reason[:200],
                                terminal=cfg.gate.terminal, operator=operator(a))
        except Exception:       # noqa: BLE001 - the refusal stands; the error says why
            pass
        pipe.close()
        raise
    except BaseException:
        pipe.close()
        raise


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
    sp = sub.add_parser("enroll", help="enrol a user at the terminal (--capture), from "
                                       "recorded bursts (DIR), or a synthetic person, into "
                                       "the sealed store")
    add_config(sp)
    sp.add_argument("user_id")
    sp.add_argument("burst_dir", nargs="?", default=None, metavar="DIR",
                    help="recorded bursts: a burst folder or a folder of them (palmgate "
                         "record writes them); the same as --burst DIR")
    sp.add_argument("--capture", action="store_true",
                    help="capture the presentations now from the configured source ([source]: "
                         "the cameras), with prompts; each must pass quality and liveness")
    sp.add_argument("--retries", type=int, default=5, metavar="M",
                    help="with --capture: bad captures in a row allowed per presentation, "
                         "each followed by a prompt (default 5)")
    sp.add_argument("--timeout", type=float, default=120.0, metavar="S",
                    help="with --capture: the whole session's time limit in seconds "
                         "(default 120)")
    sp.add_argument("--interval", type=float, default=2.0, metavar="S",
                    help="with --capture: seconds after a good presentation for the hand to "
                         "be lifted and shown again (default 2)")
    sp.add_argument("--speak", action="store_true",
                    help="with --capture: also say the prompts (espeak-ng or espeak)")
    sp.add_argument("--burst", action="append", help="burst folder, or a folder of bursts "
                                                     "(repeatable)")
    sp.add_argument("--synthetic", type=int, default=None, metavar="PERSON",
                    help="render synthetic person PERSON's enrolment presentations instead "
                         "(with --capture and [source] kind = \"synthetic\": the person at "
                         "the gate)")
    sp.add_argument("--presentations", type=int, default=None, metavar="N",
                    help="presentations to enrol: with --capture (default 3) or --synthetic "
                         "(default 2)")
    sp.add_argument("--seed", type=int, default=0, help="with --synthetic")
    sp.add_argument("--replace", action="store_true", help="re-enrol (revokes the old "
                                                           "templates)")
    sp.add_argument("--label", default=None, help="the user's label (default: none; with "
                                                    "--replace, the label they had)")
    sp.add_argument("--allow-duplicate", action="store_true",
                    help="enrol even when the palm matches another enrolled user at the "
                         "identification threshold (twins' hands and the like); audited")
    add_operator(sp)
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
