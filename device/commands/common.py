"""What the command modules share: the config, the store, recorded bursts, stderr lines."""
from __future__ import annotations

import sys
import time


def err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def load_cfg(a):
    from device.config import load_config
    return load_config(a.config)


def open_store(cfg):
    from device.gate.gate import open_store as _open
    return _open(cfg)


def admin_audit(cfg) -> dict:
    """Fields of an admin command's audit record: the terminal and who ran it."""
    import getpass
    try:
        who = getpass.getuser()
    except (KeyError, OSError):        # no login name for this uid (a container)
        import os
        who = f"uid {os.getuid()}"
    return {"terminal": cfg.gate.terminal, "operator": who[:64]}


def read_bursts(paths, views):
    from device.sources.replay import ReplaySource
    out = []
    for p in paths:
        src = ReplaySource(p, views=views)
        src.start()
        out += [src.capture_burst() for _ in range(len(src))]
    return out


def audit_dict(r) -> dict:
    return {"seq": r.seq, "ts": r.ts,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.ts)), "kind": r.kind,
            **r.payload}


def add_config(sp) -> None:
    sp.add_argument("--config", default=None, help="gate configuration (TOML); default: "
                    "built-in defaults (device/palmgate.example.toml)")
