"""Split mode's commands: ``palmgate node`` (one node until the terminal says bye) and
``palmgate split provision|bench|eval|leakage`` (prints JSON)."""
from __future__ import annotations

import json
import sys


def _feature(sp) -> None:
    from device.recognition.files import SPLIT_DEFAULT_FEATURE, SPLIT_FEATURE_FILES
    sp.add_argument("--feature", choices=sorted(SPLIT_FEATURE_FILES),
                    default=SPLIT_DEFAULT_FEATURE,
                    help="cell feature to share: unit (cells_unit.npz; a node opens squared "
                         "response norms only) or gabor (the gate's cells_pca.npz; a node opens "
                         "the Gabor responses at its pixels)")


def cmd_node(a) -> int:
    """Run one node of split mode (seed 003) until the terminal says bye."""
    from device.split.node import main_node
    return main_node(a.role, a.dir, a.peer, a.terminal, a.threshold, a.allow_reveal)


def add_split_parsers(sub) -> None:
    sp = sub.add_parser("provision", help="dealer: write shards, triples and keys to a folder")
    sp.add_argument("--out", required=True)
    sp.add_argument("--mode", choices=["shared", "plain"], default="shared")
    sp.add_argument("--capacity", type=int, default=1000)
    sp.add_argument("--inferences", type=int, default=100)
    sp.add_argument("--matches", type=int, default=100)
    _feature(sp)
    sp = sub.add_parser("seal-keys", help="terminal: seal the dealer's terminal_keys.npz of "
                                          "[split] dir under the device key "
                                          "(terminal_keys.sealed, 0600) and delete it")
    sp.add_argument("--config", required=True, help="the gate's configuration (TOML)")
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
                    help="gabor feature, secret-shared-kernel mode (claim 8): also try this "
                         "bank (the 'gabor' array of a cells npz) as node 0's guess of the "
                         "kernels")


def cmd_split(a) -> int:
    """Provision, bench, evaluate or measure the leakage of split mode; prints JSON."""
    if a.cmd == "seal-keys":
        from device.config import load_config
        from device.gate.split_stage import _device_key
        from device.split.link_keys import seal_plain_keys
        cfg = load_config(a.config)
        if not cfg.split.dir:
            raise ValueError("split.dir is not set in the configuration")
        out = {"sealed": str(seal_plain_keys(cfg.split.dir, _device_key(cfg)))}
    elif a.cmd == "provision":
        from device.split.provision import provision_dir
        provision_dir(a.out, mode=a.mode, capacity=a.capacity, inferences=a.inferences,
                      matches=a.matches, feature=a.feature)
        out = {"out": a.out}
    elif a.cmd == "bench":
        from device.eval.split_bench import split_bench
        out = split_bench(users=a.users, inferences=a.inferences, transport=a.transport,
                          seed=a.seed, mode=a.mode, pace=a.pace, feature=a.feature)
    elif a.cmd == "eval":
        from device.eval.split_eval import split_eval
        out = split_eval(a.data, inputs=a.inputs, subjects=a.subjects, mode=a.mode,
                         log=lambda m: print(m, file=sys.stderr), feature=a.feature)
    else:
        from device.eval.split_eval import leakage_report
        import numpy as np
        guesses = {}
        for g in a.guess:
            name, _, path = g.partition("=")
            with np.load(path) as z:
                guesses[name] = z["gabor"]
        out = leakage_report(a.data, images=a.images, guesses=guesses)
    print(json.dumps(out, indent=2))
    return 0


def register(sub) -> None:
    sp = sub.add_parser("node", help="run one node of split mode (seed 003): feature and "
                                     "match on secret shares with a peer node")
    sp.add_argument("--role", type=int, choices=[0, 1], required=True,
                    help="0 decides (receives the opened scores); 1 listens for its peer")
    sp.add_argument("--dir", required=True, help="provisioning folder with nodeR_shard.npz, "
                    "nodeR_triples.npz[, nodeR_gallery.npz] (palmgate split provision)")
    sp.add_argument("--peer", required=True, help="tcp:HOST:PORT, unix:PATH or "
                                                  "serial:PORT[@BAUD]")
    sp.add_argument("--terminal", required=True, help="where the terminal connects "
                                                      "(tcp:/unix:/serial:)")
    sp.add_argument("--threshold", type=float, default=None,
                    help="accept threshold (node 0); default: the one of the feature the "
                         "shard was provisioned with (device.split.node.DEFAULT_THRESHOLDS)")
    sp.add_argument("--allow-reveal", action="store_true",
                    help="evaluation only: answer reveal jobs with this node's feature share")
    sp.set_defaults(fn=cmd_node)
    sp = sub.add_parser("split", help="split mode (seed 003): provision the nodes, bench, "
                                      "evaluate against plaintext, leakage report")
    add_split_parsers(sp.add_subparsers(dest="cmd", required=True))
    sp.set_defaults(fn=cmd_split)
