"""`palmgate lookalikes [--build]`: the sensor templates' look-alike lists
(:mod:`device.gate.lookalikes`) -- how many people have one, how many look-alikes the check
compares -- and, with ``--build``, the missing lists now (people enrolled before they were
kept, or received from another gate; audited; :mod:`device.gate.lookalike_upkeep`, which
``palmgate run`` also runs between presentations)."""
from __future__ import annotations

import json

from device.commands.common import add_config, add_operator, admin_audit, load_cfg, open_store


def cmd_lookalikes(a) -> int:
    from device.gate import lookalike_lists as LL
    from device.gate.lookalike_upkeep import ListUpkeep
    from device.gate.sensor_identity_stage import SensorIdentityStage
    cfg = load_cfg(a)
    stage = SensorIdentityStage(cfg)
    if stage.numbers is None:
        raise ValueError(f"the sensor identity check has no signed numbers: {stage.error}")
    with open_store(cfg) as st:
        out = {}
        if a.build:
            out["built"] = ListUpkeep(stage, st, admin_audit(cfg, a)).run()
        out.update(LL.report(st, stage.kind, stage.numbers.get("lookalikes")))
    print(json.dumps(out))
    return 0


def register(sub) -> None:
    sp = sub.add_parser("lookalikes", help="the sensor templates' look-alike lists (people "
                                           "whose bones agree like one person's); --build "
                                           "makes the lists of people enrolled before they "
                                           "were kept (audited)")
    add_config(sp)
    sp.add_argument("--build", action="store_true",
                    help="make the missing lists now (each such person compared with every "
                         "enrolled person: ~25 ms a pair; one short transaction a person, so "
                         "a running gate goes on deciding; palmgate run makes them too, "
                         "between presentations)")
    add_operator(sp)
    sp.set_defaults(fn=cmd_lookalikes)
