"""``python -m device.split provision|bench|eval|leakage`` (prints JSON)."""
from __future__ import annotations

import argparse
import json
import sys


def _feature(sp) -> None:
    from device.split.cellnet import DEFAULT_FEATURE, FEATURE_FILES
    sp.add_argument("--feature", choices=sorted(FEATURE_FILES), default=DEFAULT_FEATURE,
                    help="cell feature to share: unit (cells_unit.npz; a node opens squared "
                         "response norms only) or gabor (the gate's cells_pca.npz; a node opens "
                         "the Gabor responses at its pixels)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m device.split")
    sub = p.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("provision", help="dealer: write shards, triples and keys to a folder")
    sp.add_argument("--out", required=True)
    sp.add_argument("--mode", choices=["shared", "plain"], default="shared")
    sp.add_argument("--capacity", type=int, default=1000)
    sp.add_argument("--inferences", type=int, default=100)
    sp.add_argument("--matches", type=int, default=100)
    _feature(sp)
    sp = sub.add_parser("bench", help="split_bench: two node processes")
    sp.add_argument("--users", type=int, default=1000)
    sp.add_argument("--inferences", type=int, default=5)
    sp.add_argument("--transport", choices=["tcp", "unix", "serial"], default="tcp")
    sp.add_argument("--mode", choices=["shared", "plain"], default="shared")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--pace", action="store_true", help="serial: hold the node link to the "
                                                        "921,600-baud line rate")
    _feature(sp)
    sp = sub.add_parser("eval", help="split vs plaintext feature and decisions (in-process)")
    sp.add_argument("--data", default=None, help="standard-layout ROI folder (default: Tongji)")
    sp.add_argument("--inputs", type=int, default=1000)
    sp.add_argument("--subjects", type=int, default=100)
    sp.add_argument("--mode", choices=["shared", "plain"], default="shared")
    _feature(sp)
    sp = sub.add_parser("leakage", help="transcript uniformity and LS input reconstruction")
    sp.add_argument("--data", default=None)
    sp.add_argument("--images", type=int, default=5)
    sp.add_argument("--guess", action="append", default=[], metavar="NAME=NPZ",
                    help="gabor feature, claim 8: also try this bank (the 'gabor' array of a "
                         "cells npz) as node 0's guess of the kernels")
    a = p.parse_args(argv)
    if a.cmd == "provision":
        from device.split.provision import provision_dir
        provision_dir(a.out, mode=a.mode, capacity=a.capacity, inferences=a.inferences,
                      matches=a.matches, feature=a.feature)
        out = {"out": a.out}
    elif a.cmd == "bench":
        from device.split.bench import split_bench
        out = split_bench(users=a.users, inferences=a.inferences, transport=a.transport,
                          seed=a.seed, mode=a.mode, pace=a.pace, feature=a.feature)
    elif a.cmd == "eval":
        from device.split.evaluate import split_eval
        out = split_eval(a.data, inputs=a.inputs, subjects=a.subjects, mode=a.mode,
                         log=lambda m: print(m, file=sys.stderr), feature=a.feature)
    else:
        from device.split.evaluate import leakage_report
        import numpy as np
        guesses = {}
        for g in a.guess:
            name, _, path = g.partition("=")
            with np.load(path) as z:
                guesses[name] = z["gabor"]
        out = leakage_report(a.data, images=a.images, guesses=guesses)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
