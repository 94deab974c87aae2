"""What the command modules share: the config, the store, recorded bursts, stderr lines."""
from __future__ import annotations

import sys
import time


def err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


DEFAULT_CONFIG = "/etc/palmgate/palmgate.toml"


def config_path(given: str | None) -> str:
    """``--config``, else $PALMGATE_CONFIG, else /etc/palmgate/palmgate.toml when it exists;
    otherwise stop with how to make one (never a silent store in the working directory)."""
    import os
    if given:
        return given
    env = os.environ.get("PALMGATE_CONFIG")
    if env:
        return env
    if os.path.exists(DEFAULT_CONFIG):
        return DEFAULT_CONFIG
    raise ValueError(f"no configuration: give --config FILE, set PALMGATE_CONFIG, or make "
                     f"{DEFAULT_CONFIG} with `sudo palmgate init --dir /etc/palmgate` (a "
                     f"documented palmgate.toml, the device key and an empty store; `palmgate "
                     f"demo` needs none)")


def load_cfg(a):
    from device.config import load_config
    return load_config(config_path(a.config))


def operator(a) -> str:
    """Who ran an admin command, for its audit record: --operator, else the login user."""
    import getpass
    name = getattr(a, "operator", None)
    if not name:
        try:
            name = getpass.getuser()
        except Exception:           # noqa: BLE001 - no passwd entry (a container)
            name = "unknown"
    return str(name)[:64]


def add_operator(sp) -> None:
    sp.add_argument("--operator", default=None, metavar="NAME",
                    help="who does this, for the audit record (default: the login user)")


# Python argument names in library messages -> the command-line option that does the same
CLI_WORDS = (("use replace=True to re-enrol", "use --replace to re-enrol"),
             ("replace=True", "--replace"),
             ("(create it with create=True, e.g. `palmgate-calibrate ... --create-key`)",
              "(make one with `palmgate init --dir DIR`, or set paths.create_key = true "
              "in the configuration)"),
             ("create=True", "paths.create_key = true"),
             ("device_key= or key_path=", "paths.device_key"))


def cli_words(msg: str) -> str:
    for py, cli in CLI_WORDS:
        msg = msg.replace(py, cli)
    return msg


def open_store(cfg, **kw):
    from device.gate.gate import open_store as _open
    return _open(cfg, **kw)


def admin_audit(cfg, a=None) -> dict:
    """Fields of an admin command's audit record: the terminal and who ran it (--operator,
    else the login user)."""
    return {"terminal": cfg.gate.terminal, "operator": operator(a)}


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
                    "$PALMGATE_CONFIG, else /etc/palmgate/palmgate.toml (palmgate init "
                    "--dir DIR writes one)")
