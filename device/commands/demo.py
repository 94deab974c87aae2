"""`palmgate demo`: the real gate loop on synthetic people through a simulated relay."""
from __future__ import annotations

import json


def cmd_demo(a) -> int:
    """The real gate loop on synthetic people: enrol, then genuine / impostor / attack
    presentations through a simulated relay; decisions with stage timings, a contact sheet."""
    from device.eval.demo import run_demo
    print(json.dumps(run_demo(people=a.people, per_kind=a.per_kind, seed=a.seed, out=a.out,
                              views=a.views, precision=a.precision, models=a.models,
                              sensor=a.sensor, panel=a.panel),
                     indent=2))
    return 0


def register(sub) -> None:
    sp = sub.add_parser("demo", help="run the main job on an embedded default (no camera, "
                                     "no relay hardware): synthetic people enrolled, then "
                                     "genuine/impostor/attack presentations through the gate")
    sp.add_argument("--people", type=int, default=4, help="synthetic people to enrol")
    sp.add_argument("--per-kind", type=int, default=3, help="presentations of each kind")
    sp.add_argument("--views", type=int, default=3)
    sp.add_argument("--precision", choices=["fp32", "int8"], default=None,
                    help="model precision (default: the gate's, [gate] precision = int8)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--out", default=None, help="folder for the store, key and contact sheet "
                                                "(default: a new temporary folder)")
    sp.add_argument("--models", default=None, help="models folder (default: the shipped one)")
    sp.add_argument("--sensor", choices=["nir", "xray"], default=None,
                    help="transmission sensor of the simulated gate (default: NIR when its "
                         "models are shipped, else X-ray)")
    sp.add_argument("--panel", choices=["osdp", "wiegand"], default=None,
                    help="the gate as an access panel's reader: osdp = libosdp's control "
                         "panel on a socat pty pair (Secure Channel, the key installed by the "
                         "panel; needs libosdp and socat), wiegand = a receiver on mock GPIO "
                         "pins (needs gpiozero); the summary gains a `panel` object")
    sp.set_defaults(fn=cmd_demo)
