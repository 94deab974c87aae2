"""Command line of the store stress (see tools/stress_store/__init__.py)."""
from __future__ import annotations

import argparse
import json
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.stress_store")
    sub = p.add_subparsers(dest="mode", required=True)
    a = sub.add_parser("admin", help="admin CLI commands from other processes while "
                                     "`palmgate run` runs")
    a.add_argument("--commands", type=int, default=1000)
    a.add_argument("--parallel", type=int, default=2, help="admin command workers")
    a.add_argument("--no-liveness", action="store_true", help="faster decisions (the store "
                                                              "is what is under test)")
    k = sub.add_parser("kill", help="SIGKILLs at random moments of processes that change "
                                    "the store")
    k.add_argument("--kills", type=int, default=1000)
    k.add_argument("--mix", default="0.7,0.15,0.15",
                   help="shares of store-worker, CLI-command and `palmgate run` victims")
    for s in (a, k):
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--dir", default=None, help="work folder (default: a new temporary "
                                                  "one)")
    t = sub.add_parser("attacks", help="the insider and power-cut cases of issue 18 (items 3, "
                                       "9b) against the importable device package")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--dir", default=None)
    w = sub.add_parser("_store-worker")             # the kill mode's victim
    w.add_argument("--config", required=True)
    w.add_argument("--seed", type=int, default=0)
    ns = p.parse_args(argv)
    if ns.mode == "_store-worker":
        from tools.stress_store.kill import store_worker
        store_worker(ns.config, ns.seed)
        return 0
    if ns.mode == "attacks":
        from tools.stress_store.attacks import run_attacks
        print(json.dumps(run_attacks(ns.seed, ns.dir), indent=1, default=str))
        return 0
    if ns.mode == "admin":
        from tools.stress_store.admin import run_admin
        rep = run_admin(ns.commands, ns.parallel, ns.seed, ns.dir,
                        liveness=not ns.no_liveness)
        ok = rep["corrupt_stores"] == 0 and rep["unexpected_exit"] == 0 and \
            rep["visibility"]["mismatched"] == 0
    else:
        from tools.stress_store.kill import run_kill
        mix = tuple(float(x) for x in ns.mix.split(","))
        rep = run_kill(ns.kills, ns.seed, ns.dir, mix=mix)
        ok = rep["store_opens_failed"] == 0 and rep["lost"] == 0 and \
            rep["half_or_unrecorded"] == 0
    rep["ok"] = ok
    print(json.dumps(rep, indent=1, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
