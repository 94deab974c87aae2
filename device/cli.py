"""``palmgate``: the gate's command line. Argument parsing only: each group of commands lives in
a module of :mod:`device.commands` that registers its parsers and calls a function elsewhere."""
from __future__ import annotations

import argparse
import os
import sys

from device import __version__
from device.commands import (attempts, audit, backup, demo, enrol, evaluate, gate, holidays,
                             init, lookalikes, record, site, split, store, users)

GROUPS = (demo, evaluate, gate, enrol, users, lookalikes, holidays, attempts, audit, store,
          split, site, init, backup, record)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="palmgate",
        description="PalmGate: offline palm-scan gate terminal (multi-view palm recognition, "
                    "liveness, protected templates, turnstile relay).")
    p.add_argument("--version", action="version", version=f"palmgate {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return p


def main(argv=None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    if not getattr(a, "fn", None):
        p.print_help()
        return 0
    from device.ops.hardening import private_umask
    old = private_umask()       # files this command creates (store, keys, logs): owner only
    try:
        return a.fn(a)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        from device.commands.common import cli_words
        print(f"palmgate: error: {cli_words(str(e))}", file=sys.stderr)
        return 2
    finally:
        os.umask(old)           # an in-process caller (tests, a wrapper) gets its own back


if __name__ == "__main__":
    raise SystemExit(main())
