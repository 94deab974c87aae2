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


def read_bursts(paths, views):
    """The recorded bursts of every folder in ``paths``, in order."""
    from device.sources.replay import read_bursts as read
    return [b for p in paths for b in read(p, views=views)]


def audit_dict(r) -> dict:
    return {"seq": r.seq, "ts": r.ts,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.ts)), "kind": r.kind,
            **r.payload}


def add_config(sp) -> None:
    sp.add_argument("--config", default=None, help="gate configuration (TOML); default: "
                    "built-in defaults (device/palmgate.example.toml)")
