"""``palmgate``: the gate's command line. Thin: every command calls a function elsewhere."""
from __future__ import annotations

import argparse
import json
import sys

from device import __version__


def cmd_demo(a) -> int:
    """Until the gate loop lands: synthesise a few palm identities with the shipped ONNX
    generation model and show that the real-trained identity extractor tells them apart."""
    from device.demo import run_demo
    print(json.dumps(run_demo(subjects=a.subjects, samples=a.samples, seed=a.seed,
                              out=a.out), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="palmgate",
        description="PalmGate: offline palm-scan gate terminal (multi-view palm recognition, "
                    "liveness, protected templates, turnstile relay).")
    p.add_argument("--version", action="version", version=f"palmgate {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sp = sub.add_parser("demo", help="run the main job on an embedded default (no camera, "
                                     "no relay hardware)")
    sp.add_argument("--subjects", type=int, default=8)
    sp.add_argument("--samples", type=int, default=4)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--out", default=None, help="also write the synthetic palms and a contact "
                                                "sheet here")
    sp.set_defaults(fn=cmd_demo)
    return p


def main(argv=None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    if not getattr(a, "fn", None):
        p.print_help()
        return 0
    try:
        return a.fn(a)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"palmgate: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
