"""Where the device key lives: never beside the template store by default.

``[paths] device_key`` set: that file. Empty (the default): ``$PALMGATE_DEVICE_KEY`` if set,
else ``/etc/palmgate/device.key`` where ``/etc/palmgate`` exists (the unit: the systemd unit's
ConfigurationDirectory, ideally a separate read-only partition; docs/security.md), else
``~/.config/palmgate/device.key`` (a workstation). Configurations of earlier versions that
left it empty found the key at ``palmgate/device.key``, beside the default store: while the new
place holds no key and that old one does, the old one is used and a warning says to move it.
A key inside the store's folder is used too, with the same warning: whoever copies that
folder copies the key that opens every record in it.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("palmgate.store")

ENV = "PALMGATE_DEVICE_KEY"
SYSTEM_DIR = Path("/etc/palmgate")
LEGACY_DEFAULT = Path("palmgate/device.key")


def default_key_path(env=None, system_dir: Path = SYSTEM_DIR) -> Path:
    env = os.environ if env is None else env
    if env.get(ENV):
        return Path(env[ENV])
    if system_dir.is_dir():
        return system_dir / "device.key"
    base = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "palmgate" / "device.key"


def beside_store(key: Path, store: Path) -> bool:
    """Whether the key sits in the store's folder (or below it)."""
    try:
        k, s = key.resolve(), store.resolve().parent
    except OSError:
        return False
    return k.parent == s or s in k.parents


def resolve_key_path(configured, store, env=None, system_dir: Path = SYSTEM_DIR) -> Path:
    """The device key file for ``[paths] device_key`` = ``configured`` and the store path."""
    store = Path(store)
    if configured:
        key = Path(configured)
    else:
        key = default_key_path(env, system_dir)
        if not key.exists():
            for old in (LEGACY_DEFAULT, store.parent / "device.key"):
                if old.exists():
                    log.warning("device key found at the old default %s, beside the store: move "
                                "it out of the state folder (to %s, or set [paths] device_key; "
                                "docs/security.md)", old, key)
                    return old
    if key.exists() and beside_store(key, store):
        log.warning("device key %s is in the template store's folder: a copy of that folder "
                    "opens every record in it; keep it elsewhere (docs/security.md)", key)
    return key
