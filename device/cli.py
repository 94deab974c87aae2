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


def cmd_evaluate(a) -> int:
    """ISO/IEC 19795-style verification test of a matcher on a data set."""
    from device.evaluation import evaluate
    if a.protected or a.precision != "fp32":
        raise ValueError("--protected and --precision int8 need the protected matcher and the "
                         "learned feature model, which this build does not ship yet")
    report = evaluate(a.dir, level=a.level, views=a.views, protocol=a.protocol,
                      matcher=a.matcher, out=a.out,
                      progress=lambda what, n: print(f"{what} {n} images", file=sys.stderr))
    print(json.dumps(report, indent=2))
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

    sp = sub.add_parser("evaluate", help="verification test (EER, TAR@FAR, DET) on a data set "
                                         "in the standard layout DIR/<subject>/<session>_<sample>")
    sp.add_argument("dir")
    sp.add_argument("--level", choices=["roi", "hand"], default="roi")
    sp.add_argument("--views", type=int, default=1, help="samples per capture (N)")
    sp.add_argument("--protocol", choices=["cross-session", "all-pairs"],
                    default="cross-session")
    sp.add_argument("--protected", action="store_true", help="match protected templates")
    sp.add_argument("--precision", choices=["int8", "fp32"], default="fp32")
    sp.add_argument("--matcher", default=None,
                    help="cells (the gate's feature, default), bocv or compcode (classical "
                         "baselines)")
    sp.add_argument("--out", required=True)
    sp.set_defaults(fn=cmd_evaluate)
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
